"""The ``auth:`` and ``server:`` sections of gennaker.yml, validated here (the config module only knows
the outer shape). No ``auth:`` section means access control is off: the pre-console behaviour, where a
caller names itself with the X-Gennaker-User header.

Role strings (a user's ``roles``, a token's roles, or a proxy's groups):

- ``admin``, ``operator``, ``viewer``: that level on every application;
- ``<application>:<level>``, e.g. ``shop:operator``: that level on one application;
- anything else (``release-managers``) is a plain role that a ``manual_judgment`` may name.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gennaker.errors import ConfigError

LEVELS = {"viewer": 1, "operator": 2, "admin": 3}


class UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password_hash: str = Field(description="An argon2 hash, as printed by `gennaker users add`.")
    roles: list[str] = Field(default_factory=list)

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, v: str) -> str:
        if not v.startswith("$argon2"):
            raise ValueError("password_hash must be an argon2 hash (make one with `gennaker users add`)")
        return v


class TrustedHeaders(BaseModel):
    """For teams behind an SSO proxy that authenticates people and passes who they are in headers."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    # Only requests from these addresses may assert a user: anyone else could forge the header.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    # Extra roles every proxy-authenticated user gets (e.g. [viewer]).
    default_roles: list[str] = Field(default_factory=list)


class LoginRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=5, ge=1)
    per_seconds: float = Field(default=60.0, gt=0)


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Signs session and CSRF cookies. Without one (here or in $GENNAKER_SECRET_KEY) a random key is made
    # at start: sessions then end when the server restarts and do not work across several servers.
    secret_key: str | None = Field(default=None, min_length=32)
    session_hours: float = Field(default=12.0, gt=0)
    secure_cookies: bool = True  # set false only for plain-HTTP development on localhost
    anonymous_roles: list[str] = Field(default_factory=list)  # e.g. [viewer] to let anyone read
    login_rate: LoginRate = Field(default_factory=LoginRate)
    users: dict[str, UserEntry] = Field(default_factory=dict)
    trusted_headers: TrustedHeaders = Field(default_factory=TrustedHeaders)


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="allow")  # the server command owns the rest of this section

    # Addresses of reverse proxies whose X-Forwarded-For names the real client (for the audit log).
    forwarded_allow: list[str] = Field(default_factory=list)


def _parse(model: type[BaseModel], section: str, raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{section}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid '{section}' configuration: {problems}") from None


def auth_settings(raw: dict[str, Any]) -> AuthSettings | None:
    """The validated ``auth:`` section, or None when access control is off."""
    if not raw:
        return None
    settings: AuthSettings = _parse(AuthSettings, "auth", raw)
    if not settings.enabled:
        return None
    if settings.secret_key is None and os.environ.get("GENNAKER_SECRET_KEY"):
        settings.secret_key = os.environ["GENNAKER_SECRET_KEY"]
    return settings


def server_settings(raw: dict[str, Any]) -> ServerSettings:
    settings: ServerSettings = _parse(ServerSettings, "server", raw)
    return settings
