"""SQLite transactions as the engine relies on them: a write transaction takes the write lock at its
start (BEGIN IMMEDIATE: writers queue rather than fail half-way on a lock upgrade), a read takes none
(readers never block a writer), and a change is all or nothing on every path into the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from gennaker.store.db import Database, open_database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = open_database(f"sqlite:///{tmp_path / 't.db'}")
    with d.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return d


def _other_writer(db: Database) -> sqlite3.Connection:
    return sqlite3.connect(str(db.engine.url.database), timeout=0, isolation_level=None)


def test_a_write_transaction_holds_the_write_lock_from_its_start(db: Database) -> None:
    other = _other_writer(db)
    # no statement in the transaction yet: the lock is taken by its BEGIN
    with db.begin(), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # free again once it ended
    other.execute("ROLLBACK")


def test_a_read_takes_no_write_lock(db: Database) -> None:
    other = _other_writer(db)
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (1)")
        other.execute("COMMIT")
        # the read's snapshot is its own: it began before that commit
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0


@pytest.mark.parametrize("path", ["database", "engine"])
def test_a_change_that_fails_half_way_leaves_nothing(db: Database, path: str) -> None:
    begin = db.begin if path == "database" else db.engine.begin
    with pytest.raises(RuntimeError), begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("half way")
    with db.engine.connect() as conn:  # a plain connection is in a transaction too
        conn.execute(text("INSERT INTO t VALUES (2)"))
        assert conn.connection.dbapi_connection.in_transaction
        conn.rollback()
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
