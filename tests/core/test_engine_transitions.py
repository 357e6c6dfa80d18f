"""How a stage hands over to the next: the next stage starts in the transaction that finishes the one
before (one commit per stage of a chain), its first task is handed to the same thread with the rows
that transaction wrote, and none of that may lose, repeat or reorder work."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import event

from gennaker.engine import queue
from gennaker.engine.messages import Message, StartStage
from gennaker.engine.queue import Delivery
from gennaker.engine.runner import Engine
from gennaker.runtime import Runtime
from gennaker.stages.base import Capabilities, StageConfig, StageType, Task, TaskContext, TaskResult
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
