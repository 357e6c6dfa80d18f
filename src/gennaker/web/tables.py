"""The console's tables: API tokens (stored hashed), server-side sessions, login throttle counters and
the request audit log (who, what, when, from where).

The engine's ``operations`` table records state changes; ``audit_log`` adds the request around them
(client address, outcome), including refused attempts, which never reach the engine. Sessions and
throttle counters live in the database, not in a server's memory, so they hold across replicas.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table

from gennaker.store.schema import metadata

# Bounds on what a caller controls in an audit entry: the log must not grow by what strangers send.
PATH_MAX = 512
USER_AGENT_MAX = 256

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
    # The token this one was minted with: a child never outlives, out-ranks or survives its parent.
    Column("parent_id", String(32)),
    Index("ix_api_tokens_parent", "parent_id"),
)

sessions = Table(
    "sessions",
    metadata,
    # sha256 of the session id the signed cookie carries: a leaked table does not sign anyone in.
    Column("id_hash", String(64), primary_key=True),
    Column("user", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_sessions_expires_at", "expires_at"),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    # "pair:<user>|<address>", "addr:<address>" or "all": one fixed window of attempts each.
    Column("key", String(400), primary_key=True),
    Column("window_start", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Index("ix_login_throttle_window_start", "window_start"),
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
    Column("path", String(PATH_MAX), nullable=False),
    Column("application", String(100)),
    Column("execution_id", String(32)),
    Column("stage_id", String(100)),
    Column("status_code", Integer, nullable=False),
    Column("client", String(100)),
    Column("user_agent", String(USER_AGENT_MAX)),
    Column("details", JSON, nullable=False),
    # Refused anonymous requests are one row per (minute, address, reason) with a count of hits: strangers
    # cannot grow the log by one row per request. Null for entries that are not aggregated.
    Column("hits", Integer, nullable=False, server_default="1"),
    Column("aggregate_key", String(200), unique=True),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_application_at", "application", "at"),
    Index("ix_audit_log_execution", "execution_id"),
)

# Secrets every server replica on this database shares (``credentials.shared_session_key``): made once
# by whichever server needs one first, so no replica signs cookies the others cannot read.
server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("secret", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
)

TABLES = [api_tokens, sessions, login_throttle, audit_log, server_keys]
