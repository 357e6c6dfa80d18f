"""REST endpoints of the access-control layer: who am I, API tokens, and the audit log export."""

from __future__ import annotations

import csv
import io
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field
from starlette.concurrency import run_in_threadpool

from gennaker.errors import Forbidden, InvalidInput
from gennaker.web import store
from gennaker.web.access import Principal
from gennaker.web.deps import principal, web_state
from gennaker.web.security import covers, roles_of
from gennaker.web.state import WebState

router = APIRouter(prefix="/api", tags=["access"])
WebDep = Annotated[WebState, Depends(web_state)]
PrincipalDep = Annotated[Principal, Depends(principal)]


class Me(BaseModel):
    user: str
    auth: str
    roles: list[str]
    is_admin: bool
    access_control: bool


def _printable(value: Any) -> Any:
    """NaN and infinity as text: they are refused all the same, and the 422 that names them must be
    JSON (a bare NaN in it turned the refusal into a 500)."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the token is for (e.g. 'jenkins').")
    user: str | None = Field(
        default=None, max_length=200, description="Whose token (admins only; default: the caller)."
    )
    roles: list[str] | None = Field(
        default=None, max_length=50, description="Its roles (default: the caller's; never more than the caller's)."
    )
    expires_in_days: Annotated[float | None, BeforeValidator(_printable)] = Field(
        default=None,
        gt=0,
        le=3650,
        allow_inf_nan=False,
        description="Its lifetime; never past that of a token creating it.",
    )


class Token(BaseModel):
    id: str
    name: str
    prefix: str
    user: str
    roles: list[str]
    created_at: float
    created_by: str
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    parent_id: str | None = Field(default=None, description="The token it was minted with: it dies with it.")


class NewToken(Token):
    token: str = Field(description="The secret: shown once, stored only as a hash.")


class Done(BaseModel):
    ok: bool = True


@router.get("/whoami", summary="The caller, as access control sees it")
def whoami(web: WebDep, me: PrincipalDep) -> Me:
    return Me(
        user=me.name, auth=me.auth, roles=sorted(me.roles), is_admin=me.is_admin, access_control=web.auth is not None
    )


def create_token_for(web: WebState, me: Principal, body: TokenIn) -> dict[str, Any]:
    """Anyone signed in may make tokens for themselves with at most their own roles; admins for anyone
    configured. A token made with a token is its child: no longer-lived, no stronger, revoked with it."""
    user = body.user or me.name
    roles = sorted(set(body.roles if body.roles is not None else me.roles))
    parent = None
    if web.auth is not None:
        if user not in web.auth.users:  # a token works only while its user exists: refuse a dead one
            raise InvalidInput(f"no user '{user}' in auth.users: tokens are for configured users")
        if not me.is_admin:
            if user != me.name:
                raise Forbidden(f"{me.name} may not create tokens for {user} (admins only)")
            extra = [r for r in roles if not covers(me.roles, r)]
            if extra:
                raise Forbidden(f"a token cannot have roles its creator lacks: {', '.join(sorted(extra))}")
        if me.auth == "token" and me.token_id:
            parent = store.token_by_id(web.db, me.token_id, roles_of(web.auth))
            if parent is None:
                raise Forbidden("the token used to create this one is no longer valid")
    expires = body.expires_in_days * 86400 if body.expires_in_days else None
    return store.create_token(web.db, body.name, user, roles, me.name, expires, parent=parent)


@router.post("/tokens", summary="Create an API token (its secret is shown once)", status_code=201)
async def create_token(body: TokenIn, web: WebDep, me: PrincipalDep) -> NewToken:
    return NewToken(**await run_in_threadpool(create_token_for, web, me, body))


@router.get("/tokens", summary="List API tokens (yours; admins see all)")
def list_tokens(web: WebDep, me: PrincipalDep) -> list[Token]:
    with web.db.read() as conn:
        rows = store.list_tokens(conn, None if me.is_admin else me.name)
    return [Token(**r) for r in rows]


def revoke_token_for(web: WebState, me: Principal, token_id: str) -> None:
    with web.db.read() as conn:
        token = store.get_token(conn, token_id)
    if not me.is_admin and token["user"] != me.name:
        raise Forbidden(f"{me.name} may not revoke another user's token")
    store.revoke_token(web.db, token_id)


@router.post("/tokens/{token_id}/revoke", summary="Revoke an API token")
async def revoke_token(token_id: str, web: WebDep, me: PrincipalDep) -> Done:
    await run_in_threadpool(revoke_token_for, web, me, token_id)
    return Done()


def audit_rows(
    web: WebState,
    me: Principal,
    application: str | None,
    actor: str | None,
    execution: str | None,
    before: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    if not (me.is_admin or (application and me.can("viewer", application))):
        raise Forbidden("the audit log of all applications is for admins; name an application you can read")
    with web.db.read() as conn:
        return store.read_audit(conn, application, actor, execution, before, limit)


@router.get("/audit", summary="The audit log: who did what, when, from where (newest first)")
async def audit(
    request: Request,
    web: WebDep,
    me: PrincipalDep,
    application: str | None = None,
    actor: str | None = None,
    execution: str | None = None,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="Entries older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    rows = await run_in_threadpool(audit_rows, web, me, application, actor, execution, before, limit)
    if format == "csv":
        buf = io.StringIO()
        cols = [
            "id",
            "at",
            "actor",
            "auth",
            "action",
            "method",
            "path",
            "application",
            "execution_id",
            "stage_id",
            "status_code",
            "client",
            "user_agent",
            "hits",
        ]
        writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
        return Response(buf.getvalue(), media_type="text/csv")
    return rows


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(...)`` in a path or user agent
    an attacker chose) gets a leading apostrophe, so it is shown as text (OWASP's CSV injection rule)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
