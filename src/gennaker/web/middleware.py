"""The access-control middleware (pure ASGI, so server-sent event streams pass through untouched).

For every HTTP request it first checks the Host header against the allow-list (a DNS-rebinding page
sends a name that is not ours: 400), then works out who is calling (API token, trusted proxy header,
session cookie or nobody), puts that on ``request.state`` (``user``, ``roles``, ``is_admin``,
``principal``, ``csrf``) for the routes, checks the Origin, CSRF and the access rules for unsafe
methods, writes the audit log entry, and adds security headers to every response. The one-time login
link of a server without an ``auth:`` section (``/login?token=``) is spent here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from anyio import to_thread

from gennaker.web import store
from gennaker.web.access import Principal
from gennaker.web.credentials import LOGIN_LINK_NAME, spend_login_link
from gennaker.web.rules import Target, conceal, resolve_mutation, resolve_read
from gennaker.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    new_csrf,
    roles_of,
    same_token,
)
from gennaker.web.settings import in_networks
from gennaker.web.state import WebState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
MAX_FORM = 1 << 20
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc load their scripts from a CDN with inline bootstrapping: they get framing
# protection but not the strict CSP (the console never serves them).
NO_CSP = ("/docs", "/redoc")
PUBLIC_PREFIXES = ("/static/", "/login", "/api/health", "/openapi.json", "/docs", "/redoc", "/favicon")
# For load balancers and orchestrators, which carry no credentials; they say nothing about applications.
PUBLIC_PATHS = ("/healthz", "/readyz")
METRICS_PATH = "/metrics"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


@dataclass
class Call:
    """One request as the middleware sees it."""

    method: str
    path: str
    headers: dict[str, str]
    cookies: dict[str, str]
    client: str  # for the record (a configured proxy's X-Forwarded-For)
    peer: str  # the TCP peer, for trust decisions
    is_api: bool
    principal: Principal
    csrf: str
    set_csrf_cookie: bool = False


class Guard:
    def __init__(self, app: ASGIApp, web: WebState):
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _headers(scope).get("host", "")
        if not self.web.host_allowed(host):
            await self._bad_host(send, host)
            return
        call = await to_thread.run_sync(self._identify, scope)
        state = scope.setdefault("state", {})
        state["principal"] = call.principal
        state["csrf"] = call.csrf
        state["client"] = call.client
        state["user"] = call.principal.name  # never the X-Gennaker-User header, unless access control is off
        if self.web.auth is not None:
            state["roles"] = set(call.principal.roles)
            state["is_admin"] = call.principal.is_admin
        send = self._secured(send, call)
        if call.method == "GET" and call.path == "/login" and self.web.mode == "local":
            link = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            if link:
                await self._login_link(call, send, link[0])
                return

        if call.method not in UNSAFE:
            await self._read(scope, receive, send, call)
            return

        receive, submitted = await self._csrf_submitted(scope, receive, call)
        target = await to_thread.run_sync(resolve_mutation, self.web.db, call.path)
        status = {"code": 500}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(call, target, submitted)
            if refusal:
                await self._refuse(call, send, *refusal)
                status["code"] = refusal[0]
            else:
                await self.app(scope, receive, recording_send)
        finally:
            await to_thread.run_sync(self._audit, call, target, status["code"])

    # --- who is calling -------------------------------------------------------------------------

    def _identify(self, scope: Scope) -> Call:
        headers = _headers(scope)
        cookies = _cookies(headers)
        client = self.web.client_address(scope, headers)
        peer = self.web.peer(scope)
        path: str = scope["path"]
        session = self.web.sessions.load(cookies.get(SESSION_COOKIE))
        principal = self._principal(headers, peer, session)
        csrf = session["c"] if session and principal.auth == "session" else cookies.get(CSRF_COOKIE, "")
        call = Call(
            method=scope["method"],
            path=path,
            headers=headers,
            cookies=cookies,
            client=client,
            peer=peer,
            # answered (and refused) in JSON, with no login page or CSRF cookie: machines call these
            is_api=path == "/api" or path.startswith(("/api/", "/hooks/")) or path == METRICS_PATH,
            principal=principal,
            csrf=csrf,
        )
        if not call.csrf:
            call.csrf = new_csrf()
            call.set_csrf_cookie = not call.is_api
        return call

    def _principal(self, headers: dict[str, str], peer: str, session: dict[str, Any] | None) -> Principal:
        auth = self.web.auth
        if auth is None:  # --insecure-no-auth: callers name themselves, as before access control
            return Principal(name=(headers.get("x-gennaker-user") or "anonymous")[:200], auth="off")
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            token = store.token_for_secret(self.web.db, bearer[7:].strip(), roles_of(auth))
            if token is None or token["name"] == LOGIN_LINK_NAME:
                return Principal(name="anonymous", auth="bad-token")  # a login link is for /login only
            return Principal(name=token["user"], roles=frozenset(token["roles"]), auth="token", token_id=token["id"])
        th = auth.trusted_headers
        # The TCP peer, not X-Forwarded-For: a proxy is trusted for what it is, not for what it says.
        if th.trusts(peer) and headers.get(th.user_header.lower()):
            groups = [g.strip() for g in headers.get(th.groups_header.lower(), "").split(",") if g.strip()]
            return Principal(
                name=headers[th.user_header.lower()],
                auth="header",
                roles=frozenset(groups) | frozenset(th.default_roles),
            )
        if session:
            user = auth.users.get(session["u"])
            if user is not None:  # a user removed from the config is signed out at once
                return Principal(name=session["u"], roles=frozenset(user.roles), auth="session")
        return Principal(name="anonymous", roles=frozenset(auth.anonymous_roles), auth="anonymous")

    # --- decisions ------------------------------------------------------------------------------

    async def _read(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        p = call.principal
        if self.web.auth is None or call.path.startswith(PUBLIC_PREFIXES) or call.path in ("/", *PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        if call.path == METRICS_PATH and in_networks(call.peer, self.web.server.metrics_scrapers):
            await self.app(scope, receive, send)  # an allow-listed scraper, by its TCP peer
            return
        if p.auth == "bad-token":
            await self._refuse(call, send, 401, "invalid, revoked or expired API token")
            return
        if call.path == METRICS_PATH and p.readable() is not None:
            # Totals over every application (pipeline names are labels): a role on some is not enough.
            if not p.authenticated:
                await self._refuse(call, send, 401, "pass an API token (or scrape from an allow-listed address)")
            else:
                await self._refuse(call, send, 403, f"{p.name} needs the viewer role on every application")
            return
        application = await to_thread.run_sync(resolve_read, self.web.db, call.path)
        if p.can("viewer", application):
            await self.app(scope, receive, send)
            return
        if not p.authenticated:
            await self._refuse(call, send, 401, "sign in to read this")
            return
        what = f"application '{application}'" if application else "any application"
        await self._refuse(call, send, 403, f"{p.name} has no viewer role on {what}")

    def _refusal(self, call: Call, target: Target, submitted: str | None) -> tuple[int, str] | None:
        # Browsers send Origin with every unsafe request; "null" is a sandboxed frame or a file page,
        # anything else not ours is another site. A missing Origin is a non-browser client (a cookie
        # still needs its CSRF token below).
        origin = call.headers.get("origin")
        if origin is not None and not self.web.origin_allowed(origin, call.headers.get("host", "")):
            return 403, f"cross-origin request refused (Origin: {origin[:100]})"
        # Ambient credentials (cookies) need proof the page made the request; a bearer token is proof
        # enough. Console forms always carry a token, even with access control off.
        needs_csrf = not call.is_api or call.principal.auth == "session"
        if needs_csrf and not same_token(submitted, call.csrf):
            return 403, "missing or wrong CSRF token (reload the page and try again)"
        if self.web.auth is None or target.level == "public":
            return None
        p = call.principal
        if p.auth == "bad-token":
            return 401, "invalid, revoked or expired API token"
        concealed = conceal(target, p)  # another application's execution or pipeline is not found
        if concealed:
            return concealed
        if target.level == "user":
            allowed = p.authenticated
        elif target.level == "judge":
            allowed = (
                p.can_judge(target.application or "", list(target.stage_roles))
                if target.application
                else p.can("operator", None)
            )
        else:
            allowed = p.can(target.level, target.application)
        if allowed:
            return None
        if not p.authenticated:
            return 401, "sign in (or pass an API token) to do this"
        if target.level == "judge" and target.stage_roles:
            need = f"one of the roles {', '.join(target.stage_roles)}"
        else:
            need = f"the {target.level} role" + (
                f" on application '{target.application}'" if target.application else ""
            )
        return 403, f"{p.name} may not {target.action}: it needs {need}"

    async def _csrf_submitted(self, scope: Scope, receive: Receive, call: Call) -> tuple[Receive, str | None]:
        """The CSRF token the request carries (header, or form field), and a receive that replays the body."""
        header = call.headers.get(CSRF_HEADER.lower())
        ctype = call.headers.get("content-type", "")
        if header or not ctype.startswith("application/x-www-form-urlencoded"):
            return receive, header
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body = message.get("body", b"")
            size += len(body)
            if size > MAX_FORM:
                break
            chunks.append(body)
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        fields = parse_qs(raw.decode("latin-1"), keep_blank_values=True)
        value = fields.get(CSRF_FIELD, [None])[0]
        return replay, value

    async def _bad_host(self, send: Send, host: str) -> None:
        body = (
            f"Host '{host[:100]}' is not one of this server's names (server.allowed_hosts in gennaker.yml)\n"
        ).encode()
        await send(
            {"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"text/plain; charset=utf-8")]}
        )
        await send({"type": "http.response.body", "body": body})

    async def _login_link(self, call: Call, send: Send, secret: str) -> None:
        """Spend a one-time login link: a session for its user, then on to the console."""
        user = await to_thread.run_sync(spend_login_link, self.web.db, secret)
        if user is None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (
                            b"location",
                            b"/login?"
                            + urlencode(
                                {
                                    "err": "That login link was already "
                                    "used or has expired: restart the server for a new one."
                                }
                            ).encode(),
                        )
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        secure = "; Secure" if self.web.secure_cookies(call.headers) else ""
        session = await to_thread.run_sync(self.web.sessions.start, user, new_csrf())
        cookie = (
            f"{SESSION_COOKIE}={session}; Max-Age={self.web.sessions.whole_seconds}; Path=/; HttpOnly; "
            f"SameSite=Lax{secure}"
        )
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/applications"),
                    (b"set-cookie", cookie.encode()),
                    (b"set-cookie", f"{CSRF_COOKIE}=; Max-Age=0; Path=/".encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        await to_thread.run_sync(self._audit, call, Target(action="login_link", level="public"), 303)

    async def _refuse(self, call: Call, send: Send, status: int, message: str) -> None:
        if not call.is_api and status == 401 and call.method not in UNSAFE:
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", f"/login?next={quote(call.path)}".encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if call.is_api:
            body = json.dumps({"error": "Unauthorized" if status == 401 else "Forbidden", "message": message})
            ctype = b"application/json"
        else:
            body = self.web.render_error(status, message, call)
            ctype = b"text/html; charset=utf-8"
        headers = [(b"content-type", ctype)]
        if status == 401 and call.is_api:
            headers.append((b"www-authenticate", b'Bearer realm="gennaker"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})

    def _secured(self, send: Send, call: Call) -> Send:
        secure = self.web.secure_cookies(call.headers)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not call.path.startswith(NO_CSP):
                    headers.append((b"content-security-policy", CSP.encode()))
                else:
                    headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
                if secure:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                if call.set_csrf_cookie:
                    cookie = f"{CSRF_COOKIE}={call.csrf}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", (cookie + ("; Secure" if secure else "")).encode()))
                message["headers"] = headers
            await send(message)

        return wrapped

    # --- audit ----------------------------------------------------------------------------------

    def _audit(self, call: Call, target: Target, status: int) -> None:
        if call.path.startswith("/static/"):
            return
        p = call.principal
        store.write_audit(
            self.web.db,
            self.web.server.audit_retention,
            actor=p.name,
            auth=p.auth,
            action=target.action,
            method=call.method,
            path=call.path,
            application=target.application,
            execution_id=target.execution,
            stage_id=target.stage,
            status_code=status,
            client=call.client,
            user_agent=call.headers.get("user-agent", "")[:500],
            details={"token": p.token_id} if p.token_id else {},
        )
