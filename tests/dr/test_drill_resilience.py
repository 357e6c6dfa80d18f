"""A drill's steps are safe to repeat: a worker lost right after each AWS call that makes something
(a volume, a database, a server group) is replaced without a second one; a cancel mid-drill tears
down at once (delivered twice: same end) and ends the drill CANCELED."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.aws.dr import AwsDrSite
from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.dr import store
from gennaker.stages.base import TaskContext
from gennaker.stages.dr_drill import DrDrill
from tests.cloud.conftest import Clock, Interrupted, WorkerKilled, interrupt_when, run_stage
from tests.dr.conftest import ACCOUNT
from tests.dr.seed import DR, PRIMARY, DrWorld
from tests.dr.test_drills import _left

RAW = {"account": ACCOUNT, "from_region": PRIMARY, "to_region": DR, "scenario": "region_loss",
       "objectives": {"rto": "30m", "rpo": "1h"}}  # fmt: skip


def _die_after_first_call(monkeypatch: pytest.MonkeyPatch, cls: type, name: str, calls: list[str]) -> None:
    real = getattr(cls, name)

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        calls.append(name)
        if calls.count(name) == 1:
            raise WorkerKilled  # the call went through; nothing the task returned is saved
        return result

    monkeypatch.setattr(cls, name, wrapped)


def test_worker_lost_after_each_create_makes_no_second_one(
    world: DrWorld, services: SimpleNamespace, sessions: AwsSessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for cls, name in ((AwsDrSite, "restore_volume"), (AwsDrSite, "restore_db"), (AwsProvider, "create_server_group")):
        _die_after_first_call(monkeypatch, cls, name, calls)
    run = run_stage(DrDrill(), RAW, services)
    assert run.status == "SUCCEEDED", run.message
    assert run.kills == 3  # each create went through once and its result was lost
    report = run.outputs["report"]
    assert [s["status"] for s in report["steps"]].count("FAIL") == 0
    teardown = report["teardown"]
    assert sum(line.startswith("deleted volume") for line in teardown) == 1, teardown
    assert sum(line.startswith("deleted db instance") for line in teardown) == 1, teardown
    assert sum(line.startswith("destroyed server group") for line in teardown) == 1, teardown
    assert _left(sessions, run.outputs["drill_id"]) == []


def test_cancel_mid_drill_tears_down_and_ends_canceled(
    world: DrWorld, services: SimpleNamespace, sessions: AwsSessions
) -> None:
    saved: dict[str, Any] = {}

    def serving(task: str, context: dict[str, Any]) -> bool:
        drill = context.get("drill") or {}
        return bool(drill) and drill["steps"][drill["cursor"]]["name"] == "attach_volumes"

    with pytest.raises(Interrupted):
        run_stage(DrDrill(), RAW, services, on_call=interrupt_when(serving, saved))
    drill_id = saved["drill"]["id"]
    assert any(x.startswith("auto scaling group") for x in _left(sessions, drill_id))
    stage = DrDrill()
    config = stage.Config.model_validate({"id": "deploy", "type": "dr_drill", **RAW})
    logs: list[str] = []
    for _ in range(2):  # delivered twice: the same end state, no error
        ctx = TaskContext(execution_id="ex-1", stage_id="deploy", pipeline="p", application="shop", trigger={},
                          config=config, context=dict(saved), outputs={}, attempt=1, stage_started_at=0.0,
                          services=services, log=logs.append, now=Clock().now)  # fmt: skip
        stage.on_cancel(ctx)
    assert _left(sessions, drill_id) == []
    with services.db.read() as conn:
        row = store.get_drill(conn, drill_id)
    assert row["status"] == "CANCELED"
    assert any("destroyed server group" in line for line in logs)


def test_a_drill_stopped_by_its_timeout_ends_failed(
    world: DrWorld, services: SimpleNamespace, sessions: AwsSessions
) -> None:
    saved: dict[str, Any] = {}
    raw = {**RAW, "timeout": "10m"}

    def deployed(task: str, context: dict[str, Any]) -> bool:
        drill = context.get("drill") or {}
        return bool(drill) and drill["steps"][drill["cursor"]]["name"] == "serving"

    with pytest.raises(Interrupted):
        run_stage(DrDrill(), raw, services, on_call=interrupt_when(deployed, saved))
    stage = DrDrill()
    config = stage.Config.model_validate({"id": "deploy", "type": "dr_drill", **raw})
    clock = Clock()
    ctx = TaskContext(execution_id="ex-1", stage_id="deploy", pipeline="p", application="shop", trigger={},
                      config=config, context=dict(saved), outputs={}, attempt=1, stage_started_at=clock.t - 601,
                      services=services, log=lambda _line: None, now=clock.now)  # fmt: skip
    stage.on_cancel(ctx)  # what the engine does when the stage's timeout expires
    with services.db.read() as conn:
        row = store.get_drill(conn, saved["drill"]["id"])
    assert row["status"] == "FAILED" and "timed out after 10m" in row["report"]["missing"][-1]
    assert _left(sessions, row["id"]) == []


def test_worker_lost_between_tagging_and_inverting_the_health_check_still_inverts_it(
    world: DrWorld, services: SimpleNamespace, sessions: AwsSessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gennaker.cloud.aws.dr import TAG_DRILL, TAG_INVERTED_FROM
    from tests.dr.seed import standby_serving

    standby_serving(sessions, ACCOUNT, world)  # the secondary must be alive for failover_dns
    real_status = AwsDrSite.health_check_status
    seen: list[bool] = []
    died: list[bool] = []

    def tag_then_die(self: AwsDrSite, drill_id: str, check_id: str, original: bool) -> None:
        if not died:  # the first attempt tagged the check and was lost before it inverted it
            died.append(True)
            self._c("route53").change_tags_for_resource(
                ResourceType="healthcheck",
                ResourceId=check_id,
                AddTags=[{"Key": TAG_DRILL, "Value": drill_id}, {"Key": TAG_INVERTED_FROM, "Value": "false"}],
            )
            raise WorkerKilled
        self._c("route53").update_health_check(HealthCheckId=check_id, Inverted=not original)

    def status(self: AwsDrSite, check_id: str) -> list[str]:
        seen.append(bool(self.health_check(check_id)["HealthCheckConfig"].get("Inverted")))  # type: ignore[index]
        return real_status(self, check_id)

    monkeypatch.setattr(AwsDrSite, "invert_health_check", tag_then_die)
    monkeypatch.setattr(AwsDrSite, "health_check_status", status)
    run = run_stage(DrDrill(), {**RAW, "scenario": "failover_dns", "dns_wait": "1s"}, services)
    assert died and seen and all(seen), (seen, run.status, run.message)  # inverted while the drill looked at it
    hc = sessions.client(ACCOUNT, DR, "route53").get_health_check(HealthCheckId=world.health_check)["HealthCheck"]
    assert hc["HealthCheckConfig"].get("Inverted") is False, run.message  # and put back
