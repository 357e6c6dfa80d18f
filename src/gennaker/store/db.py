"""Open a database (SQLite by default, PostgreSQL to scale out) and bring its schema up to date."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.pool import StaticPool

from gennaker.errors import ConfigError
from gennaker.store import hot

MIGRATIONS = Path(__file__).parent / "migrations"


def default_url() -> str:
    env = os.environ.get("GENNAKER_DB")
    if env:
        return env
    data = Path(platformdirs.user_data_dir("gennaker"))
    data.mkdir(parents=True, exist_ok=True)  # the default location makes its own directory; --db does not
    return f"sqlite:///{data / 'gennaker.db'}"


def normalize_url(url: str) -> str:
    """Accept a bare path for SQLite and plain postgresql:// (meaning psycopg 3)."""
    if "://" not in url:
        try:
            return f"sqlite:///{Path(url).expanduser().resolve()}"
        except (OSError, RuntimeError, ValueError) as exc:  # e.g. a NUL, a symlink loop, no home
            raise ConfigError(f"cannot use database path {url!r}: {exc}") from None
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An Engine plus the dialect facts the queue needs. Pass it down; there is no global one."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite, so writers queue instead of deadlocking)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (a deferred BEGIN on SQLite: readers never block writers)."""
        with self.engine.connect() as conn:
            conn.info["readonly"] = True  # info belongs to the pooled DBAPI connection: reset below
            try:
                yield conn
            finally:
                # An invalidated connection (the database went away) has lost its info with it, and
                # touching it would raise over the error that invalidated it.
                if not conn.invalidated:
                    conn.info.pop("readonly", None)

    def dispose(self) -> None:
        self.engine.dispose()


SQLITE_HEADER = b"SQLite format 3\x00"


def _check_sqlite_file(path: str) -> None:
    """Refuse, in one line, a SQLite path that cannot be a database: its directory is missing (a typo
    must not create directories), it is a directory, or it is a file of something else."""
    file = Path(path)
    try:
        if not file.parent.is_dir():
            raise ConfigError(f"cannot open database {path}: directory {file.parent} does not exist")
        if file.is_dir():
            raise ConfigError(f"cannot open database {path}: it is a directory")
        header = b""
        if file.exists():
            with file.open("rb") as fh:
                header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:  # no permission, a name too long for the file system, …
        raise ConfigError(f"cannot open database {path}: {exc.strerror or exc}") from None
    if header and header != SQLITE_HEADER:
        raise ConfigError(f"cannot open database {path}: the file is not a SQLite database")


def _sqlite_engine(url: str) -> Engine:
    path = make_url(url).database or ""
    if path and path != ":memory:" and not path.startswith("file:"):
        _check_sqlite_file(path)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        # every new connection to :memory: is a new, empty database: keep the one that was migrated
        poolclass=StaticPool if path in ("", ":memory:") else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    def _begin(pooled: Any) -> None:
        # Issued by the dialect on the DBAPI connection, not by a "begin" event listener: an engine
        # with any connection event dispatches events around every statement, and the listener's
        # own statement went through all of SQLAlchemy's execution (together a tenth of a no-op
        # stage). ``pooled.info`` is the ``conn.info`` that ``Database.read`` marks.
        pooled.dbapi_connection.execute("BEGIN" if pooled.info.get("readonly") else "BEGIN IMMEDIATE")

    engine.dialect.do_begin = _begin  # type: ignore[method-assign,assignment]  # this engine's dialect only
    setattr(engine.dialect, hot.ATTRIBUTE, hot.HotStatements(engine.dialect))
    return engine


# A pooled connection idle longer than this is pinged before it is handed out. A ping on every checkout
# (pool_pre_ping) is one more round trip per transaction: a third of a no-op stage's database time.
IDLE_PING_AFTER = 1.0


def _json_from_bytes(data: bytes | str) -> Any:
    return json.loads(data.decode() if isinstance(data, bytes) else data)


def _postgres_engine(url: str) -> Engine:
    # JSON columns arrive as UTF-8 bytes: decoded first, json.loads skips guessing their encoding
    # psycopg prepares none of its own statements: at every rollback of a connection with any, it
    # deallocates all the session's prepared statements, store/libpq.py's too (and a read ends in one)
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        json_deserializer=_json_from_bytes,
        connect_args={"prepare_threshold": None},
    )
    setattr(engine.dialect, hot.ATTRIBUTE, hot.HotStatements(engine.dialect))  # this engine's only

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        # A connection back in the pool within the last second was working then; one idle longer may
        # have been closed by the server (a restart, a failover): ping it, and a dead one is replaced
        # (the pool retries the checkout with a new connection on DisconnectionError).
        if time.monotonic() - record.info.get("idle_since", time.monotonic()) <= IDLE_PING_AFTER:
            return
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:  # the driver's error for a dead connection: replace it
            raise DisconnectionError(str(exc)) from exc

    return engine


def open_database(url: str | None = None, migrate: bool = True) -> Database:
    raw = normalize_url(url or default_url())
    try:
        engine = _sqlite_engine(raw) if raw.startswith("sqlite") else _postgres_engine(raw)
    except (ArgumentError, ImportError, ValueError, TypeError) as exc:  # ValueError: e.g. a port "abc"
        raise ConfigError(f"cannot use database URL {_hidden(raw)!r}: {exc}") from None
    db = Database(engine)
    if migrate:
        try:
            upgrade(db)
        except CommandError as exc:  # its schema is of a revision we do not have: a newer Gennaker's
            raise ConfigError(
                f"cannot open database {engine.url.render_as_string(hide_password=True)}: {exc} "
                "(was it made by a newer Gennaker?)"
            ) from None
        except (DBAPIError, ValueError) as exc:  # cannot connect, not a database, a bad URL part
            reason = " ".join(str(exc.orig if isinstance(exc, DBAPIError) else exc).split())  # one line
            raise ConfigError(
                f"cannot open database {engine.url.render_as_string(hide_password=True)}: {reason}"
            ) from None
    return db


def _hidden(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("://", 1)[0] + "://…" if "@" in url else url


def _alembic_config(db: Database) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = db.engine
    return cfg


def _current_heads(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def schema_behind(db: Database) -> set[str]:
    """The migrations this code has that the database lacks (empty: current). For /readyz: a replica
    of a newer release must not take traffic before its schema is there."""
    heads = set(ScriptDirectory.from_config(_alembic_config(db)).get_heads())
    return heads - _current_heads(db)


def upgrade(db: Database) -> None:
    """Migrate to the newest schema; a fast no-op when already there. Concurrent openers wait."""
    cfg = _alembic_config(db)
    heads = set(ScriptDirectory.from_config(cfg).get_heads())
    if _current_heads(db) == heads:
        return
    with _migration_lock(db):
        if _current_heads(db) != heads:
            command.upgrade(cfg, "heads")


@contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    if db.is_sqlite:
        path = db.engine.url.database
        if not path or path == ":memory:":
            yield
            return
        with open(f"{path}.migrate-lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7243001)"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7243001)"))
                conn.commit()
