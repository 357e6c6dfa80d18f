"""Reads and writes of the console's tables: API tokens and the audit log."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gennaker.engine.model import new_id
from gennaker.errors import Conflict, NotFound
from gennaker.store.db import Database
from gennaker.web.security import new_api_token, token_hash
from gennaker.web.tables import api_tokens, audit_log

_TOKEN_COLS = [api_tokens.c.id, api_tokens.c.name, api_tokens.c.prefix, api_tokens.c.user, api_tokens.c.roles,
               api_tokens.c.created_at, api_tokens.c.created_by, api_tokens.c.expires_at,
               api_tokens.c.revoked_at, api_tokens.c.last_used_at]


def create_token(db: Database, name: str, user: str, roles: list[str], created_by: str,
                 expires_in: float | None = None) -> dict[str, Any]:
    """Store a new token (hashed) and return it with its secret, which is never shown again."""
    secret, digest, prefix = new_api_token()
    now = time.time()
    row = {"id": new_id(), "name": name, "token_hash": digest, "prefix": prefix, "user": user, "roles": roles,
           "created_at": now, "created_by": created_by, "expires_at": now + expires_in if expires_in else None}
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
    with db.begin() as conn:
        token = get_token(conn, token_id)
        if token["revoked_at"] is not None:
            raise Conflict(f"token '{token_id}' is already revoked")
        conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=time.time()))


def token_for_secret(db: Database, secret: str) -> dict[str, Any] | None:
    """The live token with this secret, or None (unknown, revoked or expired)."""
    now = time.time()
    with db.read() as conn:
        row = conn.execute(select(*_TOKEN_COLS).where(api_tokens.c.token_hash == token_hash(secret))).first()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at < now):
        return None
    if row.last_used_at is None or now - row.last_used_at > 60:  # at most one write a minute per token
        with db.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now))
    return dict(row._mapping)


def write_audit(db: Database, **entry: Any) -> None:
    entry.setdefault("at", time.time())
    entry.setdefault("details", {})
    with db.begin() as conn:
        conn.execute(insert(audit_log).values(**entry))


def read_audit(conn: Connection, application: str | None = None, actor: str | None = None,
               execution_id: str | None = None, before_id: int | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    q = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if application:
        q = q.where(audit_log.c.application == application)
    if actor:
        q = q.where(audit_log.c.actor == actor)
    if execution_id:
        q = q.where(audit_log.c.execution_id == execution_id)
    if before_id:
        q = q.where(audit_log.c.id < before_id)
    return [dict(r._mapping) for r in conn.execute(q)]
