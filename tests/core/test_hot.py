"""store/hot.py: the engine's hot statements run on the driver directly (psycopg, sqlite3). They must
read and write exactly as SQLAlchemy's execution of the same statements, and fail as it fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Connection, Integer, Numeric, bindparam, cast, event, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from gennaker.engine import operations as ops
from gennaker.engine import queue, runner
from gennaker.engine.messages import StartStage
from gennaker.runtime import Runtime
from gennaker.store import hot
from gennaker.store.db import Database
from gennaker.store.tables import engine_counters as counters
from gennaker.store.tables import stages
from tests.conftest import admin_conn
from tests.core.conftest import finished, running_worker

CHAIN = """name: chain
application: shop
parameters: [{name: v, default: "0"}]
stages:
  - {id: a, type: wait, duration: 0s}
  - {id: b, type: wait, duration: 0s, requires: [a], name: second}
  - {id: c, type: manual_judgment, requires: [b]}
"""


@pytest.fixture
def execution(each_db: Runtime, worker_on: Any) -> str:
    """An execution waiting at its judgment: a, b done, c waiting, its messages in the queue."""
    from tests.core.conftest import wait_for

    eid = ops.start_execution(each_db.db, each_db.pipeline_from_text(CHAIN), {"v": "1"}, "tester")
    wait_for(lambda: _stage_status(each_db, eid, "c") == "WAITING")
    return eid


@pytest.fixture
def worker_on(each_db: Runtime) -> Iterator[Any]:
    with running_worker(each_db, threads=2) as w:
        yield w


def _stage_status(rt: Runtime, eid: str, sid: str) -> str | None:
    with rt.db.read() as conn:
        row = runner.Engine._stage(conn, eid, sid)
    return None if row is None else str(row.status)


def _both(db: Database, statement: Any, params: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The statement through SQLAlchemy and directly, each in a transaction rolled back."""
    out = []
    for run in (lambda c: c.execute(statement, params), lambda c: hot.execute(c, statement, params)):
        with db.engine.connect() as conn, conn.begin() as tx:
            result = run(conn)
            rows = result.all() if _returns_rows(statement) else []
            out.append([(tuple(r), dict(r._mapping)) for r in rows])
            tx.rollback()
    return out[0], out[1]


def _returns_rows(statement: Any) -> bool:
    return bool(getattr(statement, "exported_columns", None) or getattr(statement, "selected_columns", None))


def test_the_engine_s_statements_read_the_same_rows_directly(each_db: Runtime, execution: str) -> None:
    db = each_db.db
    cases: list[tuple[Any, dict[str, Any]]] = [
        (runner._SEL_EXEC, {"eid": execution}),
        (runner._SEL_STAGE, {"eid": execution, "sid": "b"}),
        (runner._SEL_STAGES[db.is_sqlite], {"eid": execution, "ids": ["a", "c", "b", "nope"]}),
        (runner._SEL_COUNTS_AND_QUEUED, {"eid": execution}),
        (runner._START_EXEC, {"eid": execution, "now": 5.0}),
        (runner._UPD_STAGE.returning(*stages.c), {"_eid": execution, "_sid": "c", "context": {"k": [1, None]}}),
        (runner._SEL_EXEC, {"eid": "no-such-execution"}),
        (queue._CLAIM[not db.is_sqlite], {"now": 1e12, "me": "w", "until": 2e12, "lim": 5, "live_since": 0.0}),
    ]
    for statement, params in cases:
        through_sqlalchemy, direct = _both(db, statement, params)
        assert direct == through_sqlalchemy, statement
    # what they read is what the engine reads: JSON as Python values, floats, and None
    (_, stage), *_ = _both(db, runner._SEL_STAGE, {"eid": execution, "sid": "b"})[1]
    assert stage["name"] == "second" and stage["requires"] == ["a"] and isinstance(stage["started_at"], float)
    assert stage["worker_id"] is None and stage["context"]["capabilities"]["waits"] is True
    ids = _both(db, runner._SEL_STAGES[db.is_sqlite], {"eid": execution, "ids": ["c", "a"]})[1]
    assert sorted(t[1] for t, _ in ids) == ["a", "c"]
    claimed = _both(
        db, queue._CLAIM[not db.is_sqlite], {"now": 1e12, "me": "w", "until": 2e12, "lim": 5, "live_since": 0}
    )
    assert claimed[1] and all(m["attempts"] >= 1 for _, m in claimed[1])  # (the judgment's poll, at least)


def test_a_result_column_that_needs_processing_is_processed_as_sqlalchemy_does(each_db: Runtime) -> None:
    statement = select(
        cast(bindparam("x"), Numeric(10, 2, asdecimal=False)).label("v"),
        bindparam("j", type_=JSON).label("j"),
        bindparam("b", type_=Boolean).label("b"),
    )
    through_sqlalchemy, direct = _both(each_db.db, statement, {"x": "1.25", "j": {"k": [1]}, "b": True})
    assert direct == through_sqlalchemy == [((1.25, {"k": [1]}, True), {"v": 1.25, "j": {"k": [1]}, "b": True})]
    # (psycopg gives a Decimal for the first, sqlite3 a str for the second and an int for the third:
    # the types' processors make them what SQLAlchemy makes them)
    assert [type(v) for v in direct[0][0]] == [float, dict, bool]


def test_a_write_counts_its_rows_and_an_insert_returns_none(each_db: Runtime, execution: str) -> None:
    with each_db.db.begin() as conn:
        done = hot.execute(conn, runner._UPD_STAGE, {"_eid": execution, "_sid": "a", "message": "x"})
        none = hot.execute(conn, runner._UPD_STAGE, {"_eid": execution, "_sid": "zz", "message": "x"})
        pushed = hot.execute(conn, queue._INSERT, {**_message(execution), "held": False, "affinity": None})
        assert (done.rowcount, none.rowcount, pushed.rowcount) == (1, 0, 1)
        assert pushed.all() == []  # (SQLAlchemy's INSERT carries a RETURNING of the key nobody asked for)
        conn.rollback()


def _message(execution: str) -> dict[str, Any]:
    return {
        "kind": "StartStage",
        "execution_id": execution,
        "stage_id": "c",
        "payload": {},
        "due_at": 0.0,
        "attempts": 0,
    }


def test_statements_go_through_sqlalchemy_while_someone_listens_to_them(
    each_db: Runtime, execution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tests and benches that count statements count every one: with a listener, no shortcut."""
    through_sqlalchemy: list[Any] = []
    execute = Connection.execute

    def counted(self: Connection, statement: Any, *a: Any, **kw: Any) -> Any:
        through_sqlalchemy.append(statement)
        return execute(self, statement, *a, **kw)

    monkeypatch.setattr(Connection, "execute", counted)
    seen: list[str] = []

    def on_statement(_conn: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    with each_db.db.read() as conn:
        assert hot.execute(conn, runner._SEL_EXEC, {"eid": execution}).one().id == execution
    assert runner._SEL_EXEC not in through_sqlalchemy  # run on the driver directly
    event.listen(each_db.db.engine, "before_cursor_execute", on_statement)
    try:
        with each_db.db.read() as conn:
            row = hot.execute(conn, runner._SEL_EXEC, {"eid": execution}).one()
    finally:
        event.remove(each_db.db.engine, "before_cursor_execute", on_statement)
    assert row.id == execution and runner._SEL_EXEC in through_sqlalchemy
    assert any(s.startswith("SELECT executions.id") for s in seen)


def test_a_driver_error_is_sqlalchemy_s_and_the_transaction_rolls_back(pg_runtime: Runtime) -> None:
    statement = insert(counters).values(name=bindparam("n"), value=bindparam("v"))
    with pytest.raises(IntegrityError, match="duplicate key"), pg_runtime.db.begin() as conn:
        hot.execute(conn, statement, {"n": "twice", "v": 1})
        hot.execute(conn, statement, {"n": "twice", "v": 2})
    with pg_runtime.db.read() as conn:  # nothing of the failed transaction stayed, and the pool is fine
        assert conn.execute(select(counters.c.name).where(counters.c.name == "twice")).all() == []


def test_a_connection_the_server_dropped_is_invalidated_and_replaced(pg_runtime: Runtime) -> None:
    db = pg_runtime.db
    with pytest.raises(OperationalError) as raised, db.begin() as conn:
        pid = hot.execute(conn, select(_backend_pid()), {}).scalar_one()
        _terminate(pid)
        hot.execute(conn, runner._SEL_EXEC, {"eid": "x"})
    assert isinstance(raised.value, DBAPIError) and raised.value.connection_invalidated
    with db.begin() as conn:  # the next transaction gets a working connection (the dead one is gone)
        assert hot.execute(conn, select(_backend_pid()), {}).scalar_one() != pid


def _backend_pid() -> Any:
    from sqlalchemy import func

    return func.pg_backend_pid().label("pid")


def _terminate(pid: int) -> None:
    admin = admin_conn()
    try:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        admin.close()


def test_a_handling_whose_connection_dies_is_retried_and_runs_once(pg_runtime: Runtime) -> None:
    """The engine on the direct path: a connection killed under a stage's handling loses nothing."""
    killed: list[int] = []
    original = hot.execute

    def kill_once(conn: Connection, statement: Any, params: Any) -> Any:
        if statement is runner._UPD_STAGE_PUSHING and not killed:
            killed.append(original(conn, select(_backend_pid()), {}).scalar_one())
            _terminate(killed[0])
        return original(conn, statement, params)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hot, "execute", kill_once)
        three_waits = CHAIN.replace("manual_judgment", "wait, duration: 0s")
        eid = ops.start_execution(pg_runtime.db, pg_runtime.pipeline_from_text(three_waits), {}, "t")
        with running_worker(pg_runtime, threads=2):
            d = finished(pg_runtime, eid, timeout=60)
    assert killed and d["status"] == "SUCCEEDED"
    assert [s["attempt"] for s in d["stages"]] == [1, 1, 1]


def test_a_read_through_the_driver_is_in_the_read_s_transaction(each_db: Runtime, execution: str) -> None:
    """Two reads in one ``Database.read`` see one snapshot whoever writes between them (on SQLite the
    read's deferred BEGIN, on PostgreSQL the driver's), as SQLAlchemy's first statement begins it."""
    with each_db.db.read() as conn:
        before = hot.execute(conn, runner._SEL_STAGE, {"eid": execution, "sid": "c"}).one().message
        assert conn.in_transaction()
        with each_db.db.begin() as other:
            hot.execute(other, runner._UPD_STAGE, {"_eid": execution, "_sid": "c", "message": "changed"})
        again = hot.execute(conn, runner._SEL_STAGE, {"eid": execution, "sid": "c"}).one().message
    if each_db.db.is_sqlite:
        assert again == before  # (SQLite: one snapshot per read transaction)
    with each_db.db.read() as conn:
        assert hot.execute(conn, runner._SEL_STAGE, {"eid": execution, "sid": "c"}).one().message == "changed"


def test_a_message_pushed_directly_is_claimed_as_any(each_db: Runtime) -> None:
    with each_db.db.begin() as conn:
        queue.push(conn, StartStage("e1", "s1"), due_at=0.0)
    (claimed,) = queue.claim(each_db.db, "w", 10.0, 5.0, 10, 10.0)
    assert claimed.message == StartStage("e1", "s1") and claimed.attempts == 1


def test_statements_built_per_call_do_not_grow_the_cache_without_end(each_db: Runtime) -> None:
    with each_db.db.read() as conn:
        for i in range(hot.MAX_STATEMENTS + 50):
            x = bindparam("x", type_=Integer)
            assert hot.execute(conn, select(x.label(f"c{i % 3}")), {"x": i}).scalar_one() == i
    statements = getattr(each_db.db.engine.dialect, hot.ATTRIBUTE)
    assert len(statements._compiled) == hot.MAX_STATEMENTS


def test_the_row_a_stage_s_first_task_is_handed_is_the_row_as_committed(each_db: Runtime) -> None:
    """A stage's start hands its first task the row it wrote (not read back): it must be that row."""
    rt = each_db
    eid = ops.start_execution(rt.db, rt.pipeline_from_text(CHAIN), {"v": "2"}, "tester")
    (start,) = queue.claim(rt.db, "w1", 1e12, 30.0, 1, 10.0)
    first = rt.engine.handle(start, "w1", take_next=True)
    assert first is not None and first.snapshot is not None
    _ex, handed, _config = first.snapshot
    with rt.db.read() as conn:
        stored = conn.execute(select(stages).where(stages.c.execution_id == eid, stages.c.stage_id == "a")).one()
    assert handed._mapping == dict(stored._mapping) and tuple(handed) == tuple(stored)
    assert handed.status == "WAITING" and handed.attempt == 1 and handed.tasks[0]["status"] == "RUNNING"


def test_a_value_computed_at_each_execution_is_left_to_sqlalchemy(each_db: Runtime) -> None:
    values = iter(range(10))
    statement = select(bindparam("n", callable_=lambda: next(values), type_=Integer).label("n"))
    with each_db.db.read() as conn:
        assert [hot.execute(conn, statement, {}).scalar_one() for _ in range(3)] == [0, 1, 2]
