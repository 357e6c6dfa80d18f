"""The console's tables: API tokens (stored hashed) and the request audit log (who, what, when, from where).

The engine's ``operations`` table records state changes; ``audit_log`` adds the request around them
(client address, outcome), including refused attempts, which never reach the engine.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, Text

from gennaker.store.schema import metadata

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    # sha256 of the secret: tokens are 256 random bits, so a slow hash adds nothing but latency.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("user", String(200), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("auth", String(20), nullable=False),  # session, token, header, anonymous
    Column("action", String(60), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", Text, nullable=False),
    Column("application", String(100)),
    Column("execution_id", String(32)),
    Column("stage_id", String(100)),
    Column("status_code", Integer, nullable=False),
    Column("client", String(100)),
    Column("user_agent", Text),
    Column("details", JSON, nullable=False),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_application_at", "application", "at"),
    Index("ix_audit_log_execution", "execution_id"),
)

TABLES = [api_tokens, audit_log]
