"""The ``auth:`` and ``server:`` sections of gennaker.yml, validated here (the config module only knows
the outer shape). No ``auth:`` section still means access control: the server makes a local admin
credential on first start (see ``gennaker.web.credentials``); only ``gennaker server --insecure-no-auth``
(``server.insecure_no_auth``, loopback binds only) turns it off, where callers name themselves with the
X-Gennaker-User header.

Role strings (a user's ``roles``, a token's roles, or a proxy's groups):

- ``admin``, ``operator``, ``viewer``: that level on every application;
- ``<application>:<level>``, e.g. ``shop:operator``: that level on one application;
- anything else (``release-managers``) is a plain role that a ``manual_judgment`` may name.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gennaker.errors import ConfigError
from gennaker.spec.durations import Duration

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
    # Only requests whose TCP peer is one of these addresses or networks (CIDR) may assert a user: anyone
    # else could forge the header. No default: a loopback client is not a proxy just by being local.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Extra roles every proxy-authenticated user gets (e.g. [viewer]).
    default_roles: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            network(entry)
        return v

    def trusts(self, peer: str) -> bool:
        return self.enabled and in_networks(peer, self.trusted_proxies)


class LoginRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=5, ge=1)
    per_seconds: float = Field(default=60.0, gt=0)


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Signs session and CSRF cookies. Without one (here or in $GENNAKER_SECRET_KEY) the servers use a key
    # kept in their database (made by the first), so sessions hold across restarts and replicas.
    secret_key: str | None = Field(default=None, min_length=32)
    session_hours: float = Field(default=12.0, gt=0)
    secure_cookies: bool = True  # set false only for plain-HTTP development on localhost
    anonymous_roles: list[str] = Field(default_factory=list)  # e.g. [viewer] to let anyone read
    login_rate: LoginRate = Field(default_factory=LoginRate)
    users: dict[str, UserEntry] = Field(default_factory=dict)
    trusted_headers: TrustedHeaders = Field(default_factory=TrustedHeaders)


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Where `gennaker server` listens (its --host/--port win). The Host allow-list starts from these.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # Host names (without port) requests may carry in their Host header, besides the bind address and
    # localhost, 127.0.0.1 and ::1: a name that is not ours is a DNS-rebinding page talking to us.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Origins (scheme://host[:port]) allowed to make unsafe requests besides those of the allowed hosts.
    allowed_origins: list[str] = Field(default_factory=list)
    # Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For names the real client (for
    # the audit log).
    forwarded_allow: list[str] = Field(default_factory=list)
    # Addresses or networks (CIDR) of Prometheus servers that may read GET /metrics without a token
    # (anyone else needs a token or session with the viewer role on every application).
    metrics_scrapers: list[str] = Field(default_factory=list)
    # The console's address as people reach it (behind a load balancer), for links in notifications.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=500)
    # Set by `gennaker server --insecure-no-auth`: no access control at all (loopback binds only).
    insecure_no_auth: bool = False
    # How long the audit log keeps entries (e.g. 90d); older ones are pruned as new ones are written.
    audit_retention: Duration = Field(default=90 * 86400.0, gt=0)

    @field_validator("forwarded_allow", "metrics_scrapers")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            network(entry)
        return v

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [h.strip().lower().strip("[]") for h in v if h.strip()]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        out = []
        for origin in v:
            if "://" not in origin:
                raise ValueError(f"'{origin}' is not an origin (scheme://host[:port])")
            out.append(origin.rstrip("/").lower())
        return out


def network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(entry.strip().strip("[]"), strict=False)
    except ValueError:
        raise ValueError(f"'{entry}' is not an IP address or network (CIDR)") from None


def in_networks(address: str, entries: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return any(ip in network(e) for e in entries)


def is_loopback(host: str) -> bool:
    """A bind address only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse(model: type[BaseModel], section: str, raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{section}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid '{section}' configuration: {problems}") from None


def auth_settings(raw: dict[str, Any]) -> AuthSettings | None:
    """The validated ``auth:`` section, or None when there is none (or ``enabled: false``): then the
    server runs with its local admin credential (``WebState.build``)."""
    if not raw:
        return None
    settings: AuthSettings = _parse(AuthSettings, "auth", raw)
    if settings.trusted_headers.enabled and not settings.trusted_headers.trusted_proxies:
        raise ConfigError(
            "invalid 'auth' configuration: auth.trusted_headers.trusted_proxies: list the "
            "addresses (or CIDRs) of the proxies allowed to assert users"
        )
    if not settings.enabled:
        return None
    if settings.secret_key is None and os.environ.get("GENNAKER_SECRET_KEY"):
        settings.secret_key = os.environ["GENNAKER_SECRET_KEY"]
    return settings


def server_settings(raw: dict[str, Any]) -> ServerSettings:
    settings: ServerSettings = _parse(ServerSettings, "server", raw)
    return settings
