"""Reads and writes of the console's tables: API tokens and the audit log."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gennaker.engine.model import new_id
from gennaker.errors import Conflict, Forbidden, InvalidInput, NotFound
from gennaker.store.db import Database
from gennaker.web.security import covers, new_api_token, still_granted, token_hash
from gennaker.web.tables import PATH_MAX, USER_AGENT_MAX, api_tokens, audit_log

_TOKEN_COLS = [
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.prefix,
    api_tokens.c.user,
    api_tokens.c.roles,
    api_tokens.c.created_at,
    api_tokens.c.created_by,
    api_tokens.c.expires_at,
    api_tokens.c.revoked_at,
    api_tokens.c.last_used_at,
    api_tokens.c.parent_id,
]
MAX_TOKEN_DAYS = 3650
MAX_CHAIN = 16  # tokens minted with tokens minted with ...: deep enough for any real use, cheap to check
# What a user holds now: their roles, or None when there is no such user (any more).
RolesOf = Callable[[str], Iterable[str] | None]


def _check_token_request(name: str, expires_in: float | None) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("a token needs a name (what it is for, e.g. 'jenkins')")
    if len(name) > 100:
        raise InvalidInput("a token's name has at most 100 characters")
    if expires_in is not None and not (math.isfinite(expires_in) and 0 < expires_in <= MAX_TOKEN_DAYS * 86400):
        raise InvalidInput(f"a token's lifetime must be more than 0 and at most {MAX_TOKEN_DAYS} days")
    return name


def create_token(
    db: Database,
    name: str,
    user: str,
    roles: list[str],
    created_by: str,
    expires_in: float | None = None,
    parent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store a new token (hashed) and return it with its secret, which is never shown again.

    ``parent`` is the live token (as ``token_for_secret`` returns it) the caller used: the new token
    expires no later than it, has no role it lacks, and dies with it."""
    name = _check_token_request(name, expires_in)
    secret, digest, prefix = new_api_token()
    now = time.time()
    expires_at = now + expires_in if expires_in else None
    if parent is not None:
        if parent["depth"] >= MAX_CHAIN:
            raise Conflict(f"a token minted with a token may be at most {MAX_CHAIN} deep")
        extra = [r for r in roles if not covers(parent["roles"], r)]
        if extra:
            raise Forbidden(f"a token cannot have roles the token creating it lacks: {', '.join(sorted(extra))}")
        if parent["expires_at"] is not None:
            expires_at = min(expires_at or math.inf, parent["expires_at"])
    row = {
        "id": new_id(),
        "name": name,
        "token_hash": digest,
        "prefix": prefix,
        "user": user,
        "roles": roles,
        "created_at": now,
        "created_by": created_by,
        "expires_at": expires_at,
        "parent_id": parent["id"] if parent else None,
    }
    with db.begin() as conn:
        conn.execute(insert(api_tokens).values(**row))
    out = {k: v for k, v in row.items() if k != "token_hash"}
    out["token"] = secret
    return out


def list_tokens(conn: Connection, user: str | None = None) -> list[dict[str, Any]]:
    q = select(*_TOKEN_COLS).order_by(api_tokens.c.created_at.desc())
    if user is not None:
        q = q.where(api_tokens.c.user == user)
    return [dict(r._mapping) for r in conn.execute(q)]


def get_token(conn: Connection, token_id: str) -> dict[str, Any]:
    row = conn.execute(select(*_TOKEN_COLS).where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise NotFound(f"no token '{token_id}'")
    return dict(row._mapping)


def revoke_token(db: Database, token_id: str) -> None:
    """Revoke a token and every token minted with it (use checks the chain too: this keeps the list
    honest)."""
    now = time.time()
    with db.begin() as conn:
        token = get_token(conn, token_id)
        if token["revoked_at"] is not None:
            raise Conflict(f"token '{token_id}' is already revoked")
        ids = [token_id]
        for _ in range(MAX_CHAIN + 1):
            children = [r.id for r in conn.execute(select(api_tokens.c.id).where(api_tokens.c.parent_id.in_(ids)))]
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id.in_(ids), api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if not children:
                break
            ids = children


def token_for_secret(db: Database, secret: str, roles_of: RolesOf) -> dict[str, Any] | None:
    """The live token with this secret, or None (unknown, revoked or expired, its user gone, or any
    token it was minted with revoked, expired or its user gone). Its ``roles`` are what it still
    carries: those it was granted that its user and every token above it still hold; ``expires_at``
    is the earliest of the chain's; ``depth`` counts the tokens above it."""
    token = _live(db, api_tokens.c.token_hash == token_hash(secret), roles_of)
    now = time.time()
    if token is not None and (token["last_used_at"] is None or now - token["last_used_at"] > 60):
        with db.begin() as conn:  # at most one write a minute per token
            conn.execute(update(api_tokens).where(api_tokens.c.id == token["id"]).values(last_used_at=now))
    return token


def token_by_id(db: Database, token_id: str, roles_of: RolesOf) -> dict[str, Any] | None:
    """The live token with this id, as ``token_for_secret`` has it."""
    return _live(db, api_tokens.c.id == token_id, roles_of)


def _live(db: Database, which: Any, roles_of: RolesOf) -> dict[str, Any] | None:
    now = time.time()
    chain: list[Any] = []
    with db.read() as conn:
        row = conn.execute(select(*_TOKEN_COLS).where(which)).first()
        while row is not None:
            chain.append(row)
            if row.parent_id is None or len(chain) > MAX_CHAIN:
                break
            row = conn.execute(select(*_TOKEN_COLS).where(api_tokens.c.id == row.parent_id)).first()
    if not chain or chain[-1].parent_id is not None:  # unknown, or a parent is missing or too deep
        return None
    roles: list[str] | None = None
    expires_at: float | None = None
    for t in reversed(chain):  # from the root down: each token carries at most what the one above does
        held = roles_of(t.user)
        if held is None or t.revoked_at is not None or (t.expires_at is not None and t.expires_at <= now):
            return None
        roles = still_granted(t.roles, held, *([roles] if roles is not None else []))
        if t.expires_at is not None:
            expires_at = t.expires_at if expires_at is None else min(expires_at, t.expires_at)
    return {**chain[0]._mapping, "roles": roles or [], "expires_at": expires_at, "depth": len(chain) - 1}


# --- the audit log --------------------------------------------------------------------------------

AUDIT_RETENTION = 90 * 86400.0  # entries older than this are pruned as new ones are written
DETAILS_MAX = 2000  # characters of JSON
REFUSED_STRANGERS = ("anonymous", "bad-token")  # refusals of these are counted, not listed one by one


def _counted(entry: dict[str, Any]) -> bool:
    """Whether an entry is a stranger's refusal: no valid credential and a 4xx/5xx answer. With access
    control off (``--insecure-no-auth``) callers only name themselves, so their 401/403 (a bad CSRF
    token, a foreign origin) count as strangers' too; their other answers stay entries of their own."""
    status, auth = int(entry.get("status_code", 0)), entry.get("auth")
    return (auth in REFUSED_STRANGERS and status >= 400) or (auth == "off" and status in (401, 403))


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def _bounded(entry: dict[str, Any]) -> dict[str, Any]:
    limits = {
        "actor": 200,
        "auth": 20,
        "action": 60,
        "method": 10,
        "path": PATH_MAX,
        "application": 100,
        "execution_id": 32,
        "stage_id": 100,
        "client": 100,
        "user_agent": USER_AGENT_MAX,
    }
    out = {k: _cut(v, limits.get(k, 10_000)) for k, v in entry.items()}
    text = json.dumps(out.get("details", {}), default=str)
    if len(text) > DETAILS_MAX:
        out["details"] = {"truncated": text[: DETAILS_MAX - 100]}
    return out


def write_audit(db: Database, retention: float = AUDIT_RETENTION, **entry: Any) -> None:
    """Add an entry, bounded in every field. A refused request from someone not signed in adds 1 to the
    entry of its minute, address and reason (status, method) instead of a row of its own, so strangers
    cannot grow the log faster than a few rows a minute per address."""
    entry.setdefault("at", time.time())
    entry.setdefault("details", {})
    entry = _bounded(entry)
    with db.begin() as conn:
        if _counted(entry):
            key = (
                f"{int(entry['at'] // 60)}|{entry['auth']}|{entry['status_code']}|{entry['method']}|"
                f"{entry.get('client') or ''}"
            )
            dialect_insert = sqlite.insert if db.is_sqlite else postgresql.insert
            conn.execute(
                dialect_insert(audit_log)
                .values(**entry, aggregate_key=key)
                .on_conflict_do_update(index_elements=[audit_log.c.aggregate_key], set_={"hits": audit_log.c.hits + 1})
            )
        else:
            conn.execute(insert(audit_log).values(**entry))
        conn.execute(delete(audit_log).where(audit_log.c.at < entry["at"] - retention))  # an index probe


_AUDIT_COLS = [c for c in audit_log.c if c.name != "aggregate_key"]


def read_audit(
    conn: Connection,
    application: str | None = None,
    actor: str | None = None,
    execution_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    q = select(*_AUDIT_COLS).order_by(audit_log.c.id.desc()).limit(limit)
    if application:
        q = q.where(audit_log.c.application == application)
    if actor:
        q = q.where(audit_log.c.actor == actor)
    if execution_id:
        q = q.where(audit_log.c.execution_id == execution_id)
    if before_id:
        q = q.where(audit_log.c.id < before_id)
    return [dict(r._mapping) for r in conn.execute(q)]
