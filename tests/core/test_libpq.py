"""store/libpq.py: on PostgreSQL the hot statements run on libpq beneath psycopg, prepared once per
connection, a transaction's BEGIN pipelined with its first statement. They must write and read what
SQLAlchemy's execution would, keep the transaction's meaning, fail as it fails, and never hold the
GIL while the server works. (One test holds SQLite's statements to their fast path too.)"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import ARRAY, Connection, Float, Numeric, String, any_, bindparam, cast, func, insert, select, text
from sqlalchemy.exc import DataError, IntegrityError

from gennaker.engine import runner
from gennaker.runtime import Runtime
from gennaker.store import hot
from gennaker.store.tables import engine_counters as counters
from gennaker.store.tables import executions, stages
from tests.conftest import POSTGRES_URL, admin_conn

_INSERT_COUNTER = insert(counters).values(name=bindparam("n"), value=bindparam("v"))
_COUNTER = select(counters.c.value).where(counters.c.name == bindparam("n"))


def _prepared_here(conn: Any) -> list[str]:
    """The prepared statements of this connection's server session."""
    return sorted(conn.execute(text("SELECT name FROM pg_prepared_statements")).scalars())


def test_a_hot_statement_is_prepared_once_per_connection_and_psycopg_prepares_none(pg_runtime: Runtime) -> None:
    db = pg_runtime.db
    with db.engine.connect() as conn:
        for _ in range(3):
            with conn.begin():
                hot.execute(conn, runner._SEL_EXEC, {"eid": "x"})
                for _ in range(6):  # (psycopg would prepare a statement run five times)
                    conn.execute(select(executions.c.id).where(executions.c.id == "y")).all()
        with conn.begin():
            names = _prepared_here(conn)
    assert len(names) == 1 and names[0].startswith("gennaker_"), names


def test_prepared_statements_survive_a_rollback(pg_runtime: Runtime) -> None:
    """psycopg deallocates all of a session's prepared statements at a rollback if it prepared any of
    its own; ours were lost with them ("prepared statement gennaker_8 does not exist")."""
    db = pg_runtime.db
    with db.engine.connect() as conn:
        for _ in range(3):
            with conn.begin() as tx:
                hot.execute(conn, _COUNTER, {"n": "none"})
                for _ in range(6):
                    conn.execute(select(counters.c.name).where(counters.c.name == "z")).all()
                tx.rollback()
        with conn.begin():
            assert hot.execute(conn, _COUNTER, {"n": "none"}).all() == []


def test_a_transaction_begun_by_a_hot_statement_commits_and_rolls_back_whole(pg_runtime: Runtime) -> None:
    db = pg_runtime.db
    with db.engine.connect() as conn:
        with conn.begin() as tx:
            hot.execute(conn, _INSERT_COUNTER, {"n": "undone", "v": 1})  # (its BEGIN went with it)
            assert conn.execute(select(counters.c.value).where(counters.c.name == "undone")).scalar_one() == 1
            tx.rollback()
        with conn.begin():
            hot.execute(conn, _INSERT_COUNTER, {"n": "kept", "v": 2})
            conn.execute(insert(counters).values(name="kept-too", value=3))
    with db.read() as conn:
        rows = dict(conn.execute(select(counters.c.name, counters.c.value)).all())
    assert rows.get("kept") == 2 and rows.get("kept-too") == 3 and "undone" not in rows


def test_an_error_in_a_transaction_s_first_statement_leaves_the_connection_usable(pg_runtime: Runtime) -> None:
    """The first statement went in a pipeline with BEGIN: after its error the connection has left the
    pipeline and serves the next transaction (psycopg's statements and ours)."""
    db = pg_runtime.db
    with db.begin() as conn:
        hot.execute(conn, _INSERT_COUNTER, {"n": "once", "v": 1})
    with db.engine.connect() as conn:
        pid = conn.execute(select(func.pg_backend_pid())).scalar_one()
        conn.rollback()
        with pytest.raises(IntegrityError, match="duplicate key"), conn.begin():
            hot.execute(conn, _INSERT_COUNTER, {"n": "once", "v": 2})
        with conn.begin():
            assert hot.execute(conn, _COUNTER, {"n": "once"}).scalar_one() == 1
            assert conn.execute(select(func.pg_backend_pid())).scalar_one() == pid  # (the same connection)


def test_values_are_written_and_read_as_sqlalchemy_writes_and_reads_them(pg_runtime: Runtime) -> None:
    db = pg_runtime.db
    odd = 'a"b\\c,{d} é'
    values = {
        "context": None,  # JSON null, not SQL NULL (SQLAlchemy's JSON default)
        "outputs": {"s": odd, "n": [1.5, None, True]},
        "tasks": [],
        "message": odd,
        "started_at": 1e300,
        "ended_at": -0.0,
        "worker_id": None,
        "attempt": 2**31 - 1,
    }
    rows = []
    for run in (lambda c, s, p: c.execute(s, p), hot.execute):
        with db.begin() as conn:
            conn.execute(
                insert(stages).values(
                    execution_id="e",
                    stage_id=odd,
                    idx=0,
                    name="n",
                    type="wait",
                    status="RUNNING",
                    **{k: [] for k in ("requires", "dependents", "config", "context", "outputs", "tasks")},
                )
            )
            run(conn, runner._UPD_STAGE, {"_eid": "e", "_sid": odd, **values})
            # the id (with quotes, a backslash, a comma and braces) read back through an array parameter
            rows.append([tuple(r) for r in run(conn, runner._SEL_STAGES[False], {"eid": "e", "ids": [odd, "x"]})])
            raw = conn.execute(text("SELECT context::text, outputs::text FROM stages WHERE execution_id = 'e'")).one()
            rows.append(tuple(raw))
            conn.execute(stages.delete())
    assert rows[0] == rows[2] and rows[1] == rows[3]
    assert rows[1][0] == "null" and rows[0][0][1] == odd


def test_what_it_cannot_send_or_read_goes_through_the_cursor(pg_runtime: Runtime) -> None:
    """A parameter of a type it does not send (a Numeric's processor), a value of a Python type it does
    not encode (a Decimal for a Float), a result column of a type it does not read (a timestamp)."""
    from decimal import Decimal

    cases: list[tuple[Any, dict[str, Any]]] = [
        (select(cast(bindparam("x", type_=Numeric(10, 2)), String).label("v")), {"x": Decimal("1.25")}),
        (select(cast(bindparam("x", type_=Float), String).label("v")), {"x": Decimal("2.5")}),
        (select(func.to_timestamp(bindparam("t", type_=Float)).label("at")), {"t": 0.0}),
    ]
    db = pg_runtime.db
    for statement, params in cases:
        with db.begin() as conn:
            expected = conn.execute(statement, params).all()
            assert hot.execute(conn, statement, params).all() == expected
            assert hot.execute(conn, statement, params).all() == expected  # (and again, once it knows)


def test_waiting_for_the_server_lets_the_other_threads_run(pg_runtime: Runtime) -> None:
    """A statement the server takes a second over leaves the GIL to the process's other threads (a
    worker's task threads): psycopg's libpq binding holds it in a blocking read of a result."""
    sleep = select(cast(func.pg_sleep(bindparam("s", type_=Float)), String).label("slept"))
    counted = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counted[0] += 1

    def counted_during(work: Any) -> int:
        counted[0] = 0
        stop.clear()
        t = threading.Thread(target=count)
        t.start()
        try:
            work()
        finally:
            stop.set()
            t.join()
        return counted[0]

    with pg_runtime.db.begin() as conn:
        hot.execute(conn, sleep, {"s": 0.0})  # (prepared and described: the next run is libpq's alone)
        assert any(n.startswith("gennaker_") for n in _prepared_here(conn))
        idle = counted_during(lambda: time.sleep(1.0))
        waiting = counted_during(lambda: hot.execute(conn, sleep, {"s": 1.0}))
    assert waiting > idle * 0.3, (waiting, idle)


def test_a_text_value_with_a_nul_is_refused_as_through_the_cursor_never_cut_short(pg_runtime: Runtime) -> None:
    """libpq reads a text parameter up to its first NUL: 'a\\x00b' was stored as 'a'. PostgreSQL's text
    holds no NUL; psycopg refuses the value, and so does the hot path (by leaving it to psycopg)."""
    plain = select(bindparam("x", type_=String).label("x"))
    by_array = select(stages.c.stage_id).where(stages.c.stage_id == any_(bindparam("ids", type_=ARRAY(String))))
    for statement, params in ((plain, {"x": "a\x00b"}), (by_array, {"ids": ["ok", "a\x00b"]})):
        for run in (Connection.execute, hot.execute):
            with pytest.raises(DataError, match="NUL"), pg_runtime.db.begin() as conn:
                run(conn, statement, params).all()


def test_a_connection_that_does_not_speak_utf8_goes_through_the_cursor() -> None:
    """Text is sent and read as UTF-8 here: on a LATIN1 connection psycopg's cursor runs the statement."""
    from gennaker.store.db import open_database

    admin = admin_conn()
    name = f"gennaker_test_latin1_{uuid.uuid4().hex[:8]}"
    try:
        admin.execute(f"CREATE DATABASE \"{name}\" ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        db = open_database(POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}", migrate=False)
        try:
            statement = select(bindparam("x", type_=String).label("x"))
            with db.begin() as conn:
                assert conn.connection.driver_connection.info.encoding != "utf-8"
                assert hot.execute(conn, statement, {"x": "é"}).all() == [("é",)]
                length = select(func.length(bindparam("x", type_=String)).label("n"))
                assert hot.execute(conn, length, {"x": "é"}).scalar_one() == 1  # (one character, not 2 bytes)
                assert not any(n.startswith("gennaker_") for n in _prepared_here(conn))
        finally:
            db.dispose()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


FAN = """name: fan
application: shop
stages:
  - {id: a, type: wait, duration: 0s}
  - {id: b, type: wait, duration: 0s, requires: [a]}
  - {id: c, type: wait, duration: 0s, requires: [a]}
  - {id: d, type: manual_judgment, requires: [b, c]}
"""


def test_every_statement_the_engine_runs_goes_on_the_fast_path(each_db: Runtime) -> None:
    """None falls back unseen: on PostgreSQL queue.push's INSERT went to the cursor (SQLAlchemy's
    RETURNING of the key nobody reads made its description look foreign). On SQLite: the driver."""
    from gennaker.engine import operations as ops
    from tests.core.conftest import finished, running_worker, wait_for

    eid = ops.start_execution(each_db.db, each_db.pipeline_from_text(FAN), {}, "tester")
    with running_worker(each_db, threads=2):
        wait_for(lambda: _status(each_db, eid, "d") == "WAITING")
        ops.judge(each_db.db, eid, "d", "tester", "approve", None)
        assert finished(each_db, eid)["status"] == "SUCCEEDED"
    ways = getattr(each_db.db.engine.dialect, hot.ATTRIBUTE).ways()
    fast = "driver" if each_db.db.is_sqlite else "libpq"
    assert len(ways) >= 8 and [str(s) for s, way in ways if way != fast] == []


def _status(rt: Runtime, eid: str, sid: str) -> str | None:
    with rt.db.read() as conn:
        row = runner.Engine._stage(conn, eid, sid)
    return None if row is None else str(row.status)


def test_a_connection_that_died_between_transactions_fails_the_pipelined_first_statement_cleanly(
    pg_runtime: Runtime,
) -> None:
    """The server closed the connection while it sat between transactions: the next transaction's first
    statement (sent in a pipeline with its BEGIN) fails as SQLAlchemy's would, the connection is
    invalidated, and the next transaction gets a working one."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from tests.core.test_hot import _terminate

    db = pg_runtime.db
    with db.engine.connect() as conn:
        pid = conn.execute(select(func.pg_backend_pid())).scalar_one()
        conn.rollback()
        _terminate(pid)
        time.sleep(0.2)
        with pytest.raises(OperationalError) as raised, conn.begin():
            hot.execute(conn, runner._SEL_EXEC, {"eid": "x"})
        assert isinstance(raised.value, DBAPIError) and raised.value.connection_invalidated
    with db.begin() as conn:
        assert hot.execute(conn, runner._SEL_EXEC, {"eid": "x"}).all() == []
        assert conn.execute(select(func.pg_backend_pid())).scalar_one() != pid
