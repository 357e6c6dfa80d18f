"""Everything the console and the access-control layer share, built once per app by ``mount`` and
kept on ``app.state.web`` (no module-level state)."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from gennaker.errors import ConfigError
from gennaker.runtime import Runtime
from gennaker.store.db import Database
from gennaker.web.credentials import LOCAL_ADMIN, WILDCARDS, shared_session_key
from gennaker.web.security import LoginLimiter, Sessions
from gennaker.web.settings import (
    AuthSettings,
    ServerSettings,
    UserEntry,
    auth_settings,
    in_networks,
    is_loopback,
    server_settings,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
# A well-formed argon2 prefix that no password verifies against: the local admin signs in only with a
# token (the one-time login link or the credential file), never with a password.
NO_PASSWORD = "$argon2id$no-password"


def local_auth(server: ServerSettings) -> AuthSettings:
    """Access control of a server without an ``auth:`` section: one admin, who holds tokens. On a
    loopback bind anyone on this machine may read (as a viewer); elsewhere reads need a credential too."""
    return AuthSettings(
        secure_cookies=False,
        users={LOCAL_ADMIN: UserEntry(password_hash=NO_PASSWORD, roles=["admin"])},
        anonymous_roles=["viewer"] if is_loopback(server.host) else [],
    )


@dataclass
class WebState:
    runtime: Runtime
    auth: AuthSettings | None  # None only with --insecure-no-auth
    server: ServerSettings
    # "config" (an auth: section), "local" (none: the local admin credential), "off" (--insecure-no-auth)
    mode: str
    sessions: Sessions
    limiter: LoginLimiter
    templates: Jinja2Templates
    # Start-form parameters per (pipeline, document text): parsing a document costs milliseconds.
    parameters: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # The small stage graph (SVG) of a list row per (execution, stage statuses): an execution's
    # stages and names never change, so the drawing only changes with a status; most rows are finished.
    graphs: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.runtime.db

    @classmethod
    def build(cls, runtime: Runtime) -> WebState:
        auth = auth_settings(runtime.config.auth)
        server = server_settings(runtime.config.server)
        if server.insecure_no_auth:
            if auth is not None:
                raise ConfigError("--insecure-no-auth contradicts the auth: section of the configuration")
            if not is_loopback(server.host):
                raise ConfigError(f"--insecure-no-auth only listens on a loopback address, not '{server.host}'")
            mode = "off"
        elif auth is None:
            auth, mode = local_auth(server), "local"
        else:
            mode = "config"
        # Without a configured key, the database's own (shared_session_key): a random key per process
        # signed users out whenever a load balancer sent them to another replica.
        secret = auth.secret_key if auth and auth.secret_key else shared_session_key(runtime.db)
        sessions = Sessions(secret, (auth.session_hours if auth else 12) * 3600, runtime.db)
        rate = auth.login_rate if auth else None
        limiter = LoginLimiter(rate.attempts if rate else 5, rate.per_seconds if rate else 60.0)
        templates = Jinja2Templates(directory=str(HERE / "templates"))
        from gennaker.web import filters

        filters.install(templates.env)
        templates.env.globals["insecure_no_auth"] = mode == "off"  # the warning banner on every page
        templates.env.globals["local_admin_login"] = mode == "local"  # the login page points to the link
        return cls(
            runtime=runtime,
            auth=auth,
            server=server,
            mode=mode,
            sessions=sessions,
            limiter=limiter,
            templates=templates,
        )

    @staticmethod
    def peer(scope: MutableMapping[str, Any]) -> str:
        """The TCP peer: who really connected (never taken from a header)."""
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    def client_address(self, scope: MutableMapping[str, Any], headers: dict[str, str]) -> str:
        """The caller's address for the audit log; a configured reverse proxy's X-Forwarded-For names
        the real one. Only for the record: trust decisions use ``peer``."""
        peer = self.peer(scope)
        forwarded = headers.get("x-forwarded-for")
        if forwarded and in_networks(peer, self.server.forwarded_allow):
            return forwarded.split(",")[-1].strip()[:100] or peer
        return peer

    def host_allowed(self, host_header: str) -> bool:
        """Whether a Host header names this server. A name we do not know is what a DNS-rebinding page
        sends (its own name, now resolving to us); an IP literal cannot be rebound."""
        name = host_name(host_header)
        if not name:
            return False
        if name in LOCAL_NAMES or name in self.server.allowed_hosts:
            return True
        bind = self.server.host.lower().strip("[]")
        if name == bind:
            return True
        if bind in WILDCARDS:
            return _is_ip(name) or name == socket.gethostname().lower()
        return False

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        """Whether an unsafe request's Origin is this server itself (the Host it asked for, already
        checked) or one of ``server.allowed_origins``. ``null`` (sandboxed frames, some redirects) never."""
        origin = origin.strip().lower().rstrip("/")
        if origin in self.server.allowed_origins:
            return True
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in ("http", "https") or "/" in rest:
            return False
        default = "443" if scheme == "https" else "80"
        return _with_port(rest, default) == _with_port(host_header.strip().lower(), default)

    def secure_cookies(self, headers: dict[str, str]) -> bool:
        if self.mode == "config" and self.auth is not None:
            return self.auth.secure_cookies
        return headers.get("x-forwarded-proto") == "https"

    def render_error(self, status: int, message: str, call: Any) -> str:
        template = self.templates.env.get_template("error.html")
        return template.render(
            status=status, message=message, principal=call.principal, csrf=call.csrf, auth_on=self.auth is not None
        )


def host_name(host_header: str) -> str:
    """The name in a Host header, lower case, without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _with_port(hostport: str, default: str) -> str:
    if hostport.startswith("["):
        return hostport if "]:" in hostport else f"{hostport}:{default}"
    return hostport if ":" in hostport else f"{hostport}:{default}"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
