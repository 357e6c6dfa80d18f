"""Everything the console and the access-control layer share, built once per app by ``mount`` and
kept on ``app.state.web`` (no module-level state)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from gennaker.runtime import Runtime
from gennaker.store.db import Database
from gennaker.web.security import LoginLimiter, Sessions
from gennaker.web.settings import AuthSettings, ServerSettings, auth_settings, server_settings

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


@dataclass
class WebState:
    runtime: Runtime
    auth: AuthSettings | None
    server: ServerSettings
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
        secret = auth.secret_key if auth and auth.secret_key else None
        if auth is not None and secret is None:
            log.warning("auth.secret_key is not set: using a random key; sessions end when the server restarts")
        sessions = Sessions(secret or secrets.token_urlsafe(48), (auth.session_hours if auth else 12) * 3600)
        rate = auth.login_rate if auth else None
        limiter = LoginLimiter(rate.attempts if rate else 5, rate.per_seconds if rate else 60.0)
        templates = Jinja2Templates(directory=str(HERE / "templates"))
        from gennaker.web import filters

        filters.install(templates.env)
        return cls(runtime=runtime, auth=auth, server=server, sessions=sessions, limiter=limiter,
                   templates=templates)

    def client_address(self, scope: MutableMapping[str, Any], headers: dict[str, str]) -> str:
        """The caller's address; a configured reverse proxy's X-Forwarded-For names the real one."""
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        forwarded = headers.get("x-forwarded-for")
        if forwarded and peer in self.server.forwarded_allow:
            return forwarded.split(",")[-1].strip() or peer
        return peer

    def secure_cookies(self, headers: dict[str, str]) -> bool:
        if self.auth is not None:
            return self.auth.secure_cookies
        return headers.get("x-forwarded-proto") == "https"

    def render_error(self, status: int, message: str, call: Any) -> str:
        template = self.templates.env.get_template("error.html")
        return template.render(status=status, message=message, principal=call.principal, csrf=call.csrf,
                               auth_on=self.auth is not None)
