"""The engine end to end on SQLite with an in-process worker: graph, outputs, operations, failures."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from gennaker.engine import operations as ops
from gennaker.engine.messages import RunTask
from gennaker.engine.queue import Delivery
from gennaker.engine.worker import Worker
from gennaker.errors import Conflict, Forbidden, GennakerError
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.spec.models import StageConfig
from gennaker.stages.base import Capabilities, StageType, Task, TaskContext, TaskResult
from gennaker.store.tables import messages
from tests.core.conftest import FAST, detail, finished, stage_status, start, wait_for

HEAD = "name: p\napplication: shop\nparameters: [{name: version, default: '1.0.0'}]\n"


def test_parallel_branches_run_concurrently(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = (
        HEAD
        + """stages:
  - {id: build, type: run, command: "echo '::output artifact=shop.tgz'"}
  - {id: a, type: run, requires: [build], command: "sleep 1.5"}
  - {id: b, type: run, requires: [build], command: "sleep 1.5"}
  - {id: c, type: run, requires: [build], command: "sleep 1.5"}
  - {id: join, type: run, requires: [a, b, c], command: "echo ${stages.build.outputs.artifact}"}
"""
    )
    eid = start(runtime, tmp_path, text)
    d = finished(runtime, eid)
    assert d["status"] == "SUCCEEDED"
    st = {s["stage_id"]: s for s in d["stages"]}
    branch = [st[x] for x in "abc"]
    # all three overlap: each started before any of them ended
    assert max(s["started_at"] for s in branch) < min(s["ended_at"] for s in branch)
    assert st["join"]["started_at"] >= max(s["ended_at"] for s in branch)
    assert st["build"]["outputs"]["artifact"] == "shop.tgz"
    with runtime.db.read() as conn:
        from gennaker.engine import logs

        assert [r["line"] for r in logs.read(conn, eid, "join") if r["stream"] == "stdout"] == ["shop.tgz"]


def test_parameters_env_and_when(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = (
        HEAD
        + """stages:
  - {id: a, type: run, command: 'echo "::output v=$VERSION"', env: {VERSION: "${trigger.params.version}"}}
  - {id: "yes", type: run, requires: [a], when: "${stages.a.outputs.v} == '2.0'", command: "true"}
  - {id: "no", type: run, requires: [a], when: "${stages.a.outputs.v} != '2.0'", command: "false"}
  - {id: after, type: run, requires: ["no"], command: "true"}
"""
    )
    eid = start(runtime, tmp_path, text, {"version": "2.0"})
    assert finished(runtime, eid)["status"] == "SUCCEEDED"
    assert stage_status(runtime, eid) == {"a": "SUCCEEDED", "yes": "SUCCEEDED", "no": "SKIPPED", "after": "SUCCEEDED"}


def test_failure_stops_pipeline_and_continue_on_failure(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = (
        HEAD
        + """stages:
  - {id: soft, type: run, command: "exit 3", continue_on_failure: true}
  - {id: hard, type: run, requires: [soft], command: "echo boom >&2; exit 4"}
  - {id: never, type: run, requires: [hard], command: "true"}
"""
    )
    eid = start(runtime, tmp_path, text)
    d = finished(runtime, eid)
    assert d["status"] == "FAILED"
    assert stage_status(runtime, eid) == {"soft": "FAILED_CONTINUE", "hard": "FAILED", "never": "NOT_STARTED"}
    assert "exit code 4" in d["message"]


def test_retries_with_backoff(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    marker = tmp_path / "count"
    text = (
        HEAD
        + f"""stages:
  - id: flaky
    type: run
    retries: {{count: 2, backoff: 0.2s}}
    command: "echo x >> {marker}; test $(wc -l < {marker}) -ge 3"
"""
    )
    eid = start(runtime, tmp_path, text)
    d = finished(runtime, eid)
    assert d["status"] == "SUCCEEDED"
    assert marker.read_text().count("x") == 3
    assert d["stages"][0]["attempt"] == 3


def test_timeout_fails_and_kills_command(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    text = (
        HEAD
        + f"""stages:
  - {{id: slow, type: run, timeout: 1s, command: "echo $$ > {pidfile}; exec sleep 30"}}
"""
    )
    eid = start(runtime, tmp_path, text)
    d = finished(runtime, eid, timeout=15)
    assert d["status"] == "FAILED" and "timed out" in d["stages"][0]["message"]
    pid = int(pidfile.read_text())
    wait_for(lambda: not _alive(pid), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[1].split()[0] != "Z"


def test_cancel_terminates_running_command(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    text = HEAD + f"stages:\n  - {{id: long, type: run, command: 'echo $$ > {pidfile}; exec sleep 60'}}\n"
    eid = start(runtime, tmp_path, text)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())
    assert _alive(pid)
    ops.cancel(runtime.db, eid, "alice", "changed my mind")
    wait_for(lambda: not _alive(pid), timeout=10)
    d = detail(runtime, eid)
    assert d["status"] == "CANCELED" and d["stages"][0]["status"] == "CANCELED"
    with runtime.db.read() as conn:
        from gennaker.engine import views

        actions = [(o["action"], o["actor"]) for o in views.execution_operations(conn, eid)]
    assert ("cancel", "alice") in actions
    with pytest.raises(Conflict):
        ops.cancel(runtime.db, eid, "alice")


def test_manual_judgment_roles_and_outputs(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = (
        HEAD
        + """stages:
  - id: gate
    type: manual_judgment
    instructions: check the canary
    roles: [release-managers]
  - {id: after, type: run, requires: [gate], command: "echo ${stages.gate.outputs.judgment}"}
"""
    )
    eid = start(runtime, tmp_path, text)
    wait_for(lambda: stage_status(runtime, eid)["gate"] == "WAITING")
    with pytest.raises(GennakerError, match="not an option"):
        ops.judge(runtime.db, eid, "gate", "bob", "maybe", None)
    with pytest.raises(Forbidden):
        ops.judge(runtime.db, eid, "gate", "bob", "approve", None, actor_roles={"developers"})
    ops.judge(runtime.db, eid, "gate", "carol", "approve", "looks good", actor_roles={"release-managers"})
    d = finished(runtime, eid)
    assert d["status"] == "SUCCEEDED"
    gate = d["stages"][0]
    assert gate["outputs"]["judgment"] == "approve" and gate["outputs"]["judged_by"] == "carol"
    assert gate["judgment"]["comment"] == "looks good"


def test_reject_stops_as_terminal(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = (
        HEAD
        + "stages:\n  - {id: gate, type: manual_judgment}\n  - {id: x, type: run, requires: [gate], command: 'true'}\n"
    )
    eid = start(runtime, tmp_path, text)
    wait_for(lambda: stage_status(runtime, eid)["gate"] == "WAITING")
    ops.judge(runtime.db, eid, "gate", "dave", "reject", "not today")
    d = finished(runtime, eid)
    assert d["status"] == "TERMINAL"
    assert stage_status(runtime, eid) == {"gate": "TERMINAL", "x": "NOT_STARTED"}


def test_judgment_timeout_fails(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    eid = start(runtime, tmp_path, HEAD + "stages:\n  - {id: gate, type: manual_judgment, timeout: 0.5s}\n")
    d = finished(runtime, eid, timeout=10)
    assert d["status"] == "FAILED" and "timed out" in d["stages"][0]["message"]


def test_wait_skip(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    eid = start(runtime, tmp_path, HEAD + "stages:\n  - {id: soak, type: wait, duration: 4h}\n")
    wait_for(lambda: stage_status(runtime, eid)["soak"] == "WAITING")
    ops.skip(runtime.db, eid, "soak", "erin", runtime.skippable)
    d = finished(runtime, eid, timeout=10)
    assert d["status"] == "SUCCEEDED" and d["stages"][0]["outputs"]["skipped"] is True


def test_pause_and_resume(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = (
        HEAD
        + "stages:\n  - {id: a, type: wait, duration: 0.3s}\n  - {id: b, type: run, requires: [a], command: 'true'}\n"
    )
    eid = start(runtime, tmp_path, text)
    wait_for(lambda: detail(runtime, eid)["status"] == "RUNNING")
    ops.pause(runtime.db, eid, "frank")
    time.sleep(1.0)
    assert detail(runtime, eid)["status"] == "PAUSED"
    assert stage_status(runtime, eid)["b"] == "NOT_STARTED"
    ops.resume(runtime.db, eid, "frank")
    assert finished(runtime, eid)["status"] == "SUCCEEDED"


def test_restart_failed_stage_runs_it_and_what_follows(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    log = tmp_path / "log"
    text = (
        HEAD
        + f"""stages:
  - {{id: first, type: run, command: "echo first >> {log}"}}
  - {{id: check, type: run, requires: [first], command: "echo check >> {log}; test -f {flag}"}}
  - {{id: last, type: run, requires: [check], command: "echo last >> {log}"}}
"""
    )
    eid = start(runtime, tmp_path, text)
    assert finished(runtime, eid)["status"] == "FAILED"
    flag.write_text("")
    ops.restart(runtime.db, eid, "check", "gina")
    assert finished(runtime, eid)["status"] == "SUCCEEDED"
    assert log.read_text().split() == ["first", "check", "check", "last"]


def test_concurrency_limit_queues_executions(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = (
        "name: serial\napplication: shop\nconcurrency: {limit: 1}\n"
        "stages:\n  - {id: a, type: run, command: 'sleep 0.5'}\n"
    )
    ids = [start(runtime, tmp_path, text) for _ in range(3)]
    details = [finished(runtime, i) for i in ids]
    assert all(d["status"] == "SUCCEEDED" for d in details)
    spans = sorted((d["started_at"], d["ended_at"]) for d in details)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), spans


def test_expression_error_at_run_time_fails_stage(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = (
        HEAD
        + """stages:
  - {id: a, type: run, command: "true"}
  - {id: b, type: run, requires: [a], command: "echo ${stages.a.outputs.missing}"}
"""
    )
    eid = start(runtime, tmp_path, text)
    d = finished(runtime, eid)
    assert d["status"] == "FAILED" and "has no 'missing'" in d["stages"][1]["message"]


def test_unknown_parameter_is_rejected(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(GennakerError, match="unknown parameter"):
        start(runtime, tmp_path, HEAD + "stages:\n  - {id: a, type: run, command: 'true'}\n", {"nope": 1})


def test_zombie_execution_is_repaired(runtime: Runtime, tmp_path: Path) -> None:
    """An execution RUNNING with no message left (e.g. a lost write) is found and finished."""
    from sqlalchemy import delete

    from gennaker.store.tables import messages

    eid = start(
        runtime,
        tmp_path,
        HEAD
        + "stages:\n  - {id: a, type: wait, duration: 0.2s}\n  - {id: b, type: run, requires: [a], command: 'true'}\n",
    )
    w = runtime.worker()
    w.start()
    wait_for(lambda: stage_status(runtime, eid)["a"] == "WAITING")
    w.stop()
    with runtime.db.begin() as conn:
        conn.execute(delete(messages))
    w2 = runtime.worker()
    w2.start()  # a worker checks for zombies when it starts, then periodically
    try:
        assert finished(runtime, eid)["status"] == "SUCCEEDED"
    finally:
        w2.stop()


def test_restart_after_parallel_failure_reruns_canceled_branch(
    runtime: Runtime, worker: Worker, tmp_path: Path
) -> None:
    flag = tmp_path / "ok"
    text = (
        HEAD
        + f"""stages:
  - {{id: slow, type: run, command: "sleep 2"}}
  - {{id: flaky, type: run, command: "test -f {flag}"}}
  - {{id: join, type: run, requires: [slow, flaky], command: "true"}}
"""
    )
    eid = start(runtime, tmp_path, text)
    assert finished(runtime, eid)["status"] == "FAILED"
    assert stage_status(runtime, eid) == {"slow": "CANCELED", "flaky": "FAILED", "join": "NOT_STARTED"}
    flag.write_text("")
    ops.restart(runtime.db, eid, "flaky", "gina")
    assert finished(runtime, eid)["status"] == "SUCCEEDED"
    assert stage_status(runtime, eid) == {"slow": "SUCCEEDED", "flaky": "SUCCEEDED", "join": "SUCCEEDED"}


def test_when_reading_a_skipped_stage_output_is_false_not_an_error(
    runtime: Runtime, worker: Worker, tmp_path: Path
) -> None:
    text = (
        HEAD
        + """stages:
  - {id: gate, type: run, when: "1 == 2", command: 'echo "::output ok=yes"'}
  - {id: after, type: run, requires: [gate], when: "${stages.gate.outputs.ok} == 'yes'", command: "true"}
  - {id: last, type: run, requires: [after], command: "true"}
"""
    )
    eid = start(runtime, tmp_path, text)
    assert finished(runtime, eid)["status"] == "SUCCEEDED"
    assert stage_status(runtime, eid) == {"gate": "SKIPPED", "after": "SKIPPED", "last": "SUCCEEDED"}


def test_cancel_during_retry_backoff_cancels_the_stage(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    text = HEAD + "stages:\n  - {id: a, type: run, retries: {count: 3, backoff: 30s}, command: 'exit 1'}\n"
    eid = start(runtime, tmp_path, text)
    wait_for(lambda: (detail(runtime, eid)["stages"][0]["message"] or "").startswith("retrying"))
    ops.cancel(runtime.db, eid, "hank")
    st = detail(runtime, eid)["stages"][0]
    assert (st["status"], st["ended_at"] is not None) == ("CANCELED", True)


def test_leftover_poll_does_not_delay_completion(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    """A judgment's far-future re-poll left in the queue must not keep a finished execution RUNNING."""
    from gennaker.engine import queue
    from gennaker.engine.messages import RunTask

    eid = start(runtime, tmp_path, HEAD + "stages:\n  - {id: gate, type: manual_judgment}\n")
    wait_for(lambda: stage_status(runtime, eid)["gate"] == "WAITING")
    st = detail(runtime, eid)["stages"][0]
    with runtime.db.begin() as conn:  # what a re-poll committed just as the judgment came in looks like
        queue.push(conn, RunTask(eid, "gate", task=st["task_index"], attempt=st["attempt"]), due_at=time.time() + 3600)
    ops.judge(runtime.db, eid, "gate", "ivy", "approve", None)
    assert finished(runtime, eid, timeout=10)["status"] == "SUCCEEDED"


class Pausing(StageType):
    """Pauses for people the way a rolling deploy does between steps: by asking in its context."""

    type = "pausing"
    Config = StageConfig
    capabilities = Capabilities(judgeable=True)

    def tasks(self, config: object) -> list[Task]:
        return [Task("pause", self.pause)]

    def pause(self, ctx: TaskContext) -> TaskResult:
        judged = ctx.context.get("judgment")
        if judged:
            return TaskResult.succeeded(outputs={"choice": judged["choice"]})
        ask = {"options": ["continue", "rollback"], "roles": ["release-managers"], "instructions": "go on?"}
        return TaskResult.running(after=3600, context={"awaiting_judgment": ask})


class Undeclared(Pausing):
    """Asks in its context too, but its type does not declare that it may be judged."""

    type = "undeclared"
    capabilities = Capabilities()


JUDGMENTS = (
    HEAD
    + """stages:
  - {id: gate, type: manual_judgment}
  - {id: roll, type: pausing}
  - {id: other, type: undeclared}
  - {id: soak, type: wait, duration: 1h}
"""
)


def awaiting_both_ways(runtime: Runtime, eid: str) -> dict[str, bool]:
    """Each stage's ``awaiting_judgment`` as the read model says it, checked against the same rule in
    SQL (the console's filter and lists) and against the console's AWAITING JUDGMENT filter."""
    from sqlalchemy import select

    from gennaker.engine import views
    from gennaker.store.tables import executions, stages
    from gennaker.web import queries

    with runtime.db.read() as conn:
        shown = {s["stage_id"]: s["awaiting_judgment"] for s in views.execution_detail(conn, eid)["stages"]}
        in_sql = {s["stage_id"]: s["awaiting_judgment"] for s in views.stage_summaries(conn, [eid])[eid]}
        clause = views.awaiting_judgment_clause()
        by_clause = set(conn.execute(select(stages.c.stage_id).where(stages.c.execution_id == eid, clause)).scalars())
        filtered = conn.execute(
            select(executions.c.id).where(executions.c.id == eid, queries._status_clause([queries.AWAITING]))
        ).all()
    assert shown == in_sql and by_clause == {k for k, v in shown.items() if v}
    assert bool(filtered) == any(shown.values())
    return shown


def wait_asking(runtime: Runtime, eid: str, *stage_ids: str) -> None:
    for stage_id in stage_ids:
        wait_for(lambda stage_id=stage_id: "awaiting_judgment" in str(_context(runtime, eid, stage_id)))


def test_awaiting_judgment_is_read_from_capabilities(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    """A manual judgment awaits judgment while WAITING; a judgeable stage while its context asks; a stage
    not declared judgeable never does, and may not be judged; a wait is skippable, not judgeable."""
    runtime.registry.update(pausing=Pausing(), undeclared=Undeclared())
    eid = start(runtime, tmp_path, JUDGMENTS)
    wait_asking(runtime, eid, "roll", "other")
    wait_for(lambda: stage_status(runtime, eid)["gate"] == "WAITING")
    assert awaiting_both_ways(runtime, eid) == {"gate": True, "roll": True, "other": False, "soak": False}
    shown = {s["stage_id"]: s for s in detail(runtime, eid)["stages"]}
    assert shown["roll"]["judgment_request"]["options"] == ["continue", "rollback"]
    assert shown["gate"]["judgment_request"] == {"options": ["approve", "reject"], "roles": [], "instructions": ""}
    assert shown["other"]["judgment_request"] is None and shown["soak"]["judgment_request"] is None
    assert shown["soak"]["capabilities"] == {
        "waits": True,
        "skippable": True,
        "judgeable": False,
        "streams_log": False,
        "deploys": False,
    }
    with pytest.raises(Conflict, match="not asking for a judgment"):
        ops.judge(runtime.db, eid, "other", "lee", "continue", None)
    with pytest.raises(Conflict, match="not asking for a judgment"):
        ops.judge(runtime.db, eid, "soak", "lee", "approve", None)
    ops.judge(runtime.db, eid, "gate", "lee", "approve", None)
    assert awaiting_both_ways(runtime, eid)["gate"] is False  # judged: no longer awaiting, even before it moves on
    ops.judge(runtime.db, eid, "roll", "lee", "continue", None)
    wait_for(lambda: stage_status(runtime, eid)["roll"] == "SUCCEEDED")
    assert awaiting_both_ways(runtime, eid) == {"gate": False, "roll": False, "other": False, "soak": False}
    ops.cancel(runtime.db, eid, "lee")


def test_a_judgment_waiting_since_before_capabilities_were_recorded_stays_judgeable(
    runtime: Runtime, worker: Worker, tmp_path: Path
) -> None:
    """An upgrade: a manual judgment started by an engine that did not record capabilities. The worker's
    self-check records them, so it is awaiting judgment and can be judged (not refused as 'not asking')."""
    from sqlalchemy import update

    from gennaker.engine.views import CAPABILITIES
    from gennaker.store.tables import stages

    eid = start(runtime, tmp_path, HEAD + "stages:\n  - {id: gate, type: manual_judgment}\n")
    wait_for(lambda: stage_status(runtime, eid)["gate"] == "WAITING")
    old = {k: v for k, v in _context(runtime, eid, "gate").items() if k != CAPABILITIES}
    with runtime.db.begin() as conn:
        conn.execute(update(stages).where(stages.c.execution_id == eid).values(context=old))
    assert detail(runtime, eid)["stages"][0]["awaiting_judgment"] is False  # what an upgrade would show
    worker.self_check()
    assert awaiting_both_ways(runtime, eid) == {"gate": True}
    ops.judge(runtime.db, eid, "gate", "lee", "approve", None)
    assert finished(runtime, eid, timeout=10)["status"] == "SUCCEEDED"


def test_any_judgeable_stage_may_ask_for_a_judgment(runtime: Runtime, worker: Worker, tmp_path: Path) -> None:
    """A stage type that pauses for people (e.g. a rolling deploy between steps) asks through its context."""
    runtime.registry["pausing"] = Pausing()
    eid = start(runtime, tmp_path, HEAD + "stages:\n  - {id: roll, type: pausing}\n")
    wait_asking(runtime, eid, "roll")
    with pytest.raises(GennakerError, match="not an option"):
        ops.judge(runtime.db, eid, "roll", "kim", "approve", None)
    with pytest.raises(Forbidden):
        ops.judge(runtime.db, eid, "roll", "kim", "continue", None, actor_roles={"developers"})
    ops.judge(runtime.db, eid, "roll", "lee", "continue", None, actor_roles={"release-managers"})
    d = finished(runtime, eid, timeout=10)
    assert d["status"] == "SUCCEEDED" and d["stages"][0]["outputs"]["choice"] == "continue"


def _context(runtime: Runtime, eid: str, stage_id: str) -> dict[str, object]:
    from sqlalchemy import select

    from gennaker.store.tables import stages

    with runtime.db.read() as conn:
        row = conn.execute(select(stages.c.context).where(stages.c.execution_id == eid, stages.c.stage_id == stage_id))
        return dict(row.scalar_one())


def test_a_stage_types_config_is_its_type_parameter() -> None:
    """``class RunStage(StageType[RunConfig])`` with ``Config = RunConfig``: the parameter the type checker
    reads (``TaskContext[RunConfig]``) is the model the engine validates with."""
    from typing import get_args, get_origin

    from gennaker.stages import default_registry
    from gennaker.stages.manual_judgment import ManualJudgmentStage
    from gennaker.stages.run import RunStage
    from gennaker.stages.wait import WaitStage

    parameters = {
        type(t): get_args(b)[0]
        for t in default_registry().values()
        for b in getattr(type(t), "__orig_bases__", ())
        if get_origin(b) is StageType
    }
    assert {RunStage, WaitStage, ManualJudgmentStage} <= set(parameters)
    assert all(parameter is cls.Config for cls, parameter in parameters.items())


class Blocking(StageType):
    """A task that holds its thread until the test lets it go, counting how many runs are inside it."""

    type = "blocking"
    Config = StageConfig
    capabilities = Capabilities()

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.inside = self.most_inside = self.runs = 0

    def tasks(self, config: object) -> list[Task]:
        return [Task("block", self.block)]

    def block(self, ctx: TaskContext) -> TaskResult:
        with self.lock:
            self.runs += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.set()
        self.release.wait(20)
        with self.lock:
            self.inside -= 1
        return TaskResult.succeeded()


def test_a_task_whose_lease_ran_out_is_not_started_again_beside_itself(
    runtime: Runtime, worker: Worker, tmp_path: Path
) -> None:
    """The heartbeat that extends a running task's lease can be late (a stalled process, a database
    lock held for a while). The lease then runs out while the task still runs, and the worker's own
    claim finds the message due again: it must not start the task a second time beside the first
    (on AWS, a canary's pair deployed twice, one pair leaked)."""
    blocking = Blocking()
    runtime.registry["blocking"] = blocking
    eid = start(runtime, tmp_path, "name: p\napplication: shop\nstages:\n  - {id: b, type: blocking}\n")
    assert blocking.entered.wait(10)
    with runtime.db.begin() as conn:  # as if the heartbeat were late: the lease is over
        conn.execute(update(messages).where(messages.c.execution_id == eid).values(lease_until=time.time() - 1))
    time.sleep(1.0)  # the claim loop polls every 20 ms
    blocking.release.set()
    assert finished(runtime, eid, timeout=10)["status"] == "SUCCEEDED"
    assert (blocking.runs, blocking.most_inside) == (1, 1)


def test_a_message_id_the_database_reused_is_not_taken_for_the_message_still_in_hand(runtime: Runtime) -> None:
    """SQLite reuses the id of a deleted row: a handler's commit deletes its message, and a message
    pushed right after may get the same id before the handler's thread has let go of the old one.
    That is a new message, to be handled; only the same message claimed again (its attempts counted
    up by the claim) is one a thread of ours still handles."""
    worker = runtime.worker(threads=2)
    in_hand = Delivery(5, RunTask("e1", "a", 0, 1), attempts=1)
    assert worker._adopt(in_hand)
    assert not worker._adopt(Delivery(5, RunTask("e1", "a", 0, 1), attempts=2))  # claimed again
    reused = Delivery(5, RunTask("e1", "b", 0, 1), attempts=1)
    assert worker._adopt(reused)  # a new row under the old id
    worker._let_go(in_hand)  # the old handler ends: it must not drop the new message from the heartbeat
    assert worker._inflight == {5: reused}
    worker._let_go(reused)
    assert worker._inflight == {}


def test_a_worker_loop_outlives_a_round_that_raises(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    """The heartbeat, the self-check and the upkeep each run on a loop of their own: a round that raises
    (a bug, not only an unreachable database) is logged with its traceback and the loop goes on. A
    heartbeat thread that died would let every lease of its worker run out while its tasks still ran."""
    worker = runtime.worker(threads=1)
    rounds: list[int] = []

    def work() -> None:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("a bug in one round")
        if len(rounds) == 3:
            worker._stop.set()

    worker._every(0.01, work, "heartbeat")
    assert len(rounds) == 3
    assert "heartbeat failed" in caplog.text and "a bug in one round" in caplog.text


def _unreadable_row(rt: Runtime, execution_id: str, stage_id: str | None = None) -> None:
    """A queue row of a kind this version does not know (as a newer one might write during an upgrade)."""
    with rt.db.begin() as conn:
        conn.execute(
            insert(messages).values(
                kind="FutureThing",
                execution_id=execution_id,
                stage_id=stage_id,
                payload={},
                due_at=time.time(),
                held=False,
                attempts=0,
            )
        )


def test_a_queue_row_that_makes_no_message_stops_nothing_else(runtime: Runtime, tmp_path: Path) -> None:
    """Its claim used to raise in the claim loop, which died: nothing ran on that worker again."""
    _unreadable_row(runtime, "e-from-a-newer-version")
    worker = runtime.worker(threads=2)
    worker.start()
    try:
        eid = start(runtime, tmp_path, "name: p\napplication: shop\nstages:\n  - {id: a, type: wait, duration: 0s}\n")
        assert finished(runtime, eid, timeout=10)["status"] == "SUCCEEDED"
        with runtime.db.read() as conn:  # retried later (a newer worker may take it meanwhile), not lost
            row = conn.execute(select(messages).where(messages.c.kind == "FutureThing")).one()
        assert row.attempts >= 1 and row.due_at > time.time() - 0.5 and row.lease_owner is None
    finally:
        worker.stop()


def test_a_queue_row_that_never_makes_a_message_is_dead_lettered_and_fails_its_execution(
    tmp_path: Path,
) -> None:
    rt = build_runtime(
        f"sqlite:///{tmp_path / 'g.db'}", config=Config(), settings=replace(FAST, max_message_attempts=1)
    )
    pipeline = "name: p\napplication: shop\nstages:\n  - {id: a, type: manual_judgment}\n"
    eid = start(rt, tmp_path, pipeline)
    worker = rt.worker(threads=2)
    worker.start()
    try:
        wait_for(lambda: stage_status(rt, eid).get("a") in ("RUNNING", "WAITING"))
        _unreadable_row(rt, eid, "a")
        ex = finished(rt, eid, timeout=10)
    finally:
        worker.stop()
        rt.db.dispose()
    assert ex["status"] == "FAILED"
    stage = next(s for s in ex["stages"] if s["stage_id"] == "a")
    assert "unknown message kind 'FutureThing'" in (stage.get("message") or ""), stage


def test_an_error_that_escapes_a_task_thread_is_logged_not_lost(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A task thread's work runs in a pool future; what escapes it (none of the handler's own errors,
    which are handled inside) would otherwise sit in the future, never seen."""
    worker = runtime.worker(threads=1)
    escaped: Future[None] = Future()
    escaped.set_exception(RuntimeError("escaped the task thread"))
    worker._done(escaped)
    assert "escaped the task thread" in caplog.text
