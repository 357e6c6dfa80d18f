"""How a stage hands over to the next: the next stage starts in the transaction that finishes the one
before (one commit per stage of a chain), its first task is handed to the same thread with the rows
that transaction wrote, and none of that may lose, repeat or reorder work."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Connection, event, select, text, update
from sqlalchemy.exc import DBAPIError

from gennaker.engine import counters, queue
from gennaker.engine.events import ExecutionEvent, write_in_savepoint
from gennaker.engine.messages import Message, RunTask, StartExecution, StartStage
from gennaker.engine.queue import Delivery
from gennaker.engine.runner import Engine, LeaseLost
from gennaker.runtime import Runtime, tell_each
from gennaker.stages.base import Capabilities, StageConfig, StageType, Task, TaskContext, TaskResult
from gennaker.store.tables import messages
from tests.core.conftest import FAST, detail, finished, stage_status, start

HEAD = "name: p\napplication: shop\n"


def chain(n: int, stage: str = "type: wait, duration: 0s") -> str:
    lines = [HEAD + "stages:"]
    for i in range(n):
        req = f", requires: [s{i - 1}]" if i else ""
        lines.append(f"  - {{id: s{i}, {stage}{req}}}")
    return "\n".join(lines) + "\n"


def drive(rt: Runtime, worker_id: str = "w-test", engine: Engine | None = None) -> int:
    """Handle messages on this thread the way a worker's task thread does (claim, then take each next
    message the handler hands back) until none is due. Returns how many were handled."""
    engine = engine or rt.worker(threads=1).engine
    handled = 0
    while batch := queue.claim(rt.db, worker_id, time.time(), FAST.lease, 1, FAST.worker_ttl):
        current: Delivery[Message] | None = batch[0]
        while current is not None:
            current = engine.handle(current, worker_id, take_next=True)
            handled += 1
    return handled


def drive_counting_commits(rt: Runtime) -> tuple[int, int]:
    """``drive``, and how many transactions committed meanwhile (the worker's registration not)."""
    engine = rt.worker(threads=1).engine  # (registering a worker commits)
    commits = 0

    def on_commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(rt.db.engine, "commit", on_commit)
    try:
        handled = drive(rt, engine=engine)
    finally:
        event.remove(rt.db.engine, "commit", on_commit)
    return handled, commits


def test_a_chain_costs_one_transaction_per_stage(runtime: Runtime, tmp_path: Path) -> None:
    n = 40
    eid = start(runtime, tmp_path, chain(n))
    handled, commits = drive_counting_commits(runtime)
    assert detail(runtime, eid)["status"] == "SUCCEEDED"
    # StartExecution (which starts the first stage) and one RunTask per stage, each one transaction;
    # no StartStage message at all; one claim transaction at the start and one that finds nothing
    assert handled == n + 1
    assert commits == n + 1 + 2


def test_the_thread_that_ends_an_execution_takes_the_next_in_the_same_transaction(
    runtime: Runtime, tmp_path: Path
) -> None:
    ids = [start(runtime, tmp_path, chain(2)) for _ in range(3)]
    handled, commits = drive_counting_commits(runtime)
    assert [detail(runtime, e)["status"] for e in ids] == ["SUCCEEDED"] * 3
    # 3 times (StartExecution + 2 RunTasks); the claims: the first, and the last one that finds nothing
    assert (handled, commits) == (9, 9 + 2)


class Counted(StageType[StageConfig]):
    """Counts its task's runs; its configuration fails to resolve the first ``fail_resolving`` times."""

    type = "counted"
    Config = StageConfig
    capabilities = Capabilities()
    runs: ClassVar[Counter[str]] = Counter()
    fail_resolving: ClassVar[int] = 0

    def resolve_config(self, raw: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
        if Counted.fail_resolving > 0:
            Counted.fail_resolving -= 1
            raise RuntimeError("a bug in the stage type")
        return super().resolve_config(raw, scope)

    def tasks(self, config: object) -> list[Task]:
        return [Task("count", self.count)]

    def count(self, ctx: TaskContext[Any]) -> TaskResult:
        Counted.runs[ctx.stage_id] += 1
        return TaskResult.succeeded()


def test_a_stage_that_cannot_start_inline_is_queued_and_the_one_before_is_not_run_again(
    runtime: Runtime, tmp_path: Path
) -> None:
    runtime.registry["counted"] = Counted()
    Counted.runs.clear()
    Counted.fail_resolving = 0
    eid = start(
        runtime, tmp_path, HEAD + "stages:\n  - {id: a, type: counted}\n  - {id: b, type: counted, requires: [a]}\n"
    )
    engine = runtime.worker(threads=1).engine
    first = queue.claim(runtime.db, "w1", time.time(), FAST.lease, 1, FAST.worker_ttl)[0]
    run_a = engine.handle(first, "w1", take_next=True)  # StartExecution: a starts inline
    assert run_a is not None
    Counted.fail_resolving = 1  # starting b raises once
    queued = engine.handle(run_a, "w1", take_next=True)  # a ends; b gets a StartStage message instead
    assert queued is not None and isinstance(queued.message, StartStage)
    assert stage_status(runtime, eid) == {"a": "SUCCEEDED", "b": "NOT_STARTED"}
    assert engine.handle(queued, "w1") is None  # b's own handler starts it (and its task is queued)
    drive(runtime, "w1")
    assert detail(runtime, eid)["status"] == "SUCCEEDED"
    assert Counted.runs == {"a": 1, "b": 1}


def test_a_worker_gone_after_handing_itself_the_next_task_loses_nothing(runtime: Runtime, tmp_path: Path) -> None:
    """The commit that finished a stage started the next and leased its first task to this worker; the
    worker dies before running it (kill -9 here). Another worker runs it once the lease runs out."""
    runtime.registry["counted"] = Counted()
    Counted.runs.clear()
    eid = start(
        runtime, tmp_path, HEAD + "stages:\n  - {id: a, type: counted}\n  - {id: b, type: counted, requires: [a]}\n"
    )
    engine = runtime.worker(threads=1).engine
    first = queue.claim(runtime.db, "dead", time.time(), FAST.lease, 1, FAST.worker_ttl)[0]
    run_a = engine.handle(first, "dead", take_next=True)
    assert run_a is not None
    run_b = engine.handle(run_a, "dead", take_next=True)
    assert run_b is not None and run_b.snapshot is not None  # b's first task, with b's row as written
    # the dead worker's lease holds: nobody else may take b's task before it runs out
    assert queue.claim(runtime.db, "other", time.time(), FAST.lease, 1, FAST.worker_ttl) == []
    w = runtime.worker(threads=1)
    w.start()
    try:
        done = finished(runtime, eid, timeout=FAST.lease + 10)
    finally:
        w.stop()
    assert done["status"] == "SUCCEEDED"
    assert Counted.runs == {"a": 1, "b": 1}


def test_a_long_run_of_skipped_stages_neither_recurses_nor_stops_early(runtime: Runtime, tmp_path: Path) -> None:
    text = chain(300, "type: wait, duration: 0s, when: \"${parameters.go} == 'yes'\"").replace(
        "stages:", "parameters:\n  - {name: go, default: 'no'}\nstages:\n  - {id: first, type: wait, duration: 0s}", 1
    )
    text = text.replace(
        "{id: s0, type: wait, duration: 0s, when:", "{id: s0, type: wait, duration: 0s, requires: [first], when:"
    )
    eid = start(runtime, tmp_path, text)
    drive(runtime)
    d = detail(runtime, eid)
    assert d["status"] == "SUCCEEDED"
    assert Counter(s["status"] for s in d["stages"]) == {"SKIPPED": 300, "SUCCEEDED": 1}


def test_a_first_dependent_that_ends_at_once_leaves_its_siblings_to_run(runtime: Runtime, tmp_path: Path) -> None:
    """a lets b and c through; b starts in a's transaction and is skipped at once. c, queued in the
    same transaction before b started, must still run: the execution is not complete without it."""
    text = HEAD + (
        "stages:\n"
        "  - {id: a, type: wait, duration: 0s}\n"
        "  - {id: b, type: wait, duration: 0s, requires: [a], when: 'false'}\n"
        "  - {id: c, type: wait, duration: 0s, requires: [a]}\n"
    )
    eid = start(runtime, tmp_path, text)
    drive(runtime)
    d = detail(runtime, eid)
    assert (d["status"], stage_status(runtime, eid)) == (
        "SUCCEEDED",
        {"a": "SUCCEEDED", "b": "SKIPPED", "c": "SUCCEEDED"},
    )


def test_fan_in_starts_the_joining_stage_once(runtime: Runtime, worker: Any, tmp_path: Path) -> None:
    runtime.registry["counted"] = Counted()
    Counted.runs.clear()
    branches = "".join(f"  - {{id: b{i}, type: counted, requires: [a]}}\n" for i in range(12))
    join = "  - {id: z, type: counted, requires: [" + ", ".join(f"b{i}" for i in range(12)) + "]}\n"
    eid = start(runtime, tmp_path, HEAD + "stages:\n  - {id: a, type: counted}\n" + branches + join)
    assert finished(runtime, eid)["status"] == "SUCCEEDED"
    assert Counted.runs == {"a": 1, "z": 1, **{f"b{i}": 1 for i in range(12)}}


# ---- one statement for the ack and the lock (PostgreSQL), the same outcome on both databases -------


def _queued(rt: Runtime, eid: str) -> list[tuple[str, int | None]]:
    with rt.db.read() as conn:
        rows = conn.execute(select(messages.c.kind, messages.c.payload).where(messages.c.execution_id == eid))
        return sorted((r.kind, (r.payload or {}).get("attempt")) for r in rows)


def _started_one_stage(rt: Runtime, tmp_path: Path, worker_id: str = "w1") -> tuple[str, Engine, Delivery[Message]]:
    """An execution of one no-op stage, started: its first task is leased to ``worker_id``, not run."""
    eid = start(rt, tmp_path, chain(1))
    engine = rt.worker(threads=1).engine
    first = queue.claim(rt.db, worker_id, time.time(), FAST.lease, 1, FAST.worker_ttl)[0]
    run = engine.handle(first, worker_id, take_next=True)
    assert run is not None and isinstance(run.message, RunTask)
    return eid, engine, run


def _push_poll(rt: Runtime, eid: str, attempt: int) -> None:
    with rt.db.begin() as conn:  # a re-poll an hour away, as a waiting stage leaves one
        queue.push(conn, RunTask(eid, "s0", task=0, attempt=attempt), due_at=time.time() + 3600)


def test_a_stage_s_last_task_drops_its_leftover_polls_but_never_a_later_attempt_s(
    each_db: Runtime, tmp_path: Path
) -> None:
    eid, engine, run = _started_one_stage(each_db, tmp_path)
    _push_poll(each_db, eid, 1)  # this attempt's: a leftover once the stage ends
    _push_poll(each_db, eid, 2)  # a later attempt's (a restarted stage's poll): not this handling's to drop
    assert engine.handle(run, "w1") is None
    assert stage_status(each_db, eid) == {"s0": "SUCCEEDED"}
    assert _queued(each_db, eid) == [("RunTask", 2)]


def test_a_lost_lease_rolls_back_the_whole_handling(each_db: Runtime, tmp_path: Path) -> None:
    eid, engine, run = _started_one_stage(each_db, tmp_path)
    _push_poll(each_db, eid, 1)
    with each_db.db.begin() as conn:  # the lease ran out and another worker claimed the task
        conn.execute(update(messages).where(messages.c.id == run.id).values(lease_owner="w2"))
    with pytest.raises(LeaseLost):
        engine.handle(run, "w1")
    assert stage_status(each_db, eid) == {"s0": "WAITING"}  # nothing this handling wrote stayed
    assert _queued(each_db, eid) == [("RunTask", 1), ("RunTask", 1)]  # neither the task's nor the poll went


def test_a_message_for_an_execution_that_is_gone_is_acked(each_db: Runtime) -> None:
    with each_db.db.begin() as conn:
        queue.push(conn, StartExecution("no-such-execution"), due_at=time.time())
    assert drive(each_db) == 1
    assert _queued(each_db, "no-such-execution") == []


# ---- listeners: their writes in a savepoint of their own, their reads in none ----------------------


def _told_on_end(rt: Runtime, listen: Callable[[Connection, ExecutionEvent], None]) -> None:
    rt.engine.on_event = tell_each([(listen, lambda e: e.event == "pipeline.complete")])


def test_a_listener_whose_writes_fail_leaves_the_change_whole(each_db: Runtime, tmp_path: Path) -> None:
    def listen(conn: Connection, _e: ExecutionEvent) -> None:
        def write() -> None:
            counters.increment(conn, "listener_rows")
            raise RuntimeError("a bug after the first row")

        write_in_savepoint(conn, "the test listener", write)

    _told_on_end(each_db, listen)
    eid = start(each_db, tmp_path, chain(2))
    drive(each_db)
    assert detail(each_db, eid)["status"] == "SUCCEEDED"
    with each_db.db.read() as conn:
        assert "listener_rows" not in counters.totals(conn)  # its own row was undone with it


def test_a_listener_that_raises_before_writing_is_logged_and_the_change_commits(
    each_db: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def listen(_conn: Connection, _e: ExecutionEvent) -> None:
        raise ValueError("a bug in deciding what to write")

    _told_on_end(each_db, listen)
    eid = start(each_db, tmp_path, chain(1))
    drive(each_db)
    assert detail(each_db, eid)["status"] == "SUCCEEDED"
    assert "a bug in deciding what to write" in caplog.text


def test_a_read_the_database_fails_in_a_listener_fails_the_change_which_is_retried(
    each_db: Runtime, tmp_path: Path
) -> None:
    """Without a savepoint a failed statement has lost the transaction on PostgreSQL (its COMMIT would
    quietly roll back): the handling must fail, and commit nothing, rather than look done."""
    broken = [True]

    def listen(conn: Connection, _e: ExecutionEvent) -> None:
        if broken[0]:
            conn.execute(text("SELECT * FROM no_such_table"))

    _told_on_end(each_db, listen)
    eid, engine, run = _started_one_stage(each_db, tmp_path)
    with pytest.raises(DBAPIError):
        engine.handle(run, "w1")
    assert (detail(each_db, eid)["status"], stage_status(each_db, eid)) == ("RUNNING", {"s0": "WAITING"})
    broken[0] = False
    assert engine.handle(run, "w1") is None  # the same delivery again, as after a release
    assert detail(each_db, eid)["status"] == "SUCCEEDED"
