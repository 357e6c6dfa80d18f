"""The initial diagnosis against a real store (SQLite and PostgreSQL) filled by real work: the shop
world in simulated AWS audited before and after a deploy run by the engine, and an alarm on the new
server group ten minutes after the deploy ended."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine import operations as ops
from gennaker.ops.incidents import store as incidents
from gennaker.ops.incidents.diagnosis import DIAGNOSIS_EVENT, diagnose, incident_diagnosis, record_diagnosis
from gennaker.ops.incidents.intake import AlarmTransition, record_transition
from gennaker.ops.incidents.settings import incident_settings
from gennaker.ops.service import audit_and_store
from gennaker.ops.settings import OpsSettings
from gennaker.runtime import Runtime, build_runtime
from gennaker.sandbox.seed import ShopWorld
from gennaker.spec.config import Config
from tests.cloud.conftest import config, deploy_raw, sessions, world
from tests.conftest import fresh_postgres
from tests.core.conftest import FAST, finished

__all__ = ["config", "sessions", "world"]

CHECKS = ["ha.asg.*"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def rt(request: pytest.FixtureRequest, config: Config, tmp_path: Path) -> Iterator[Runtime]:
    if request.param == "sqlite":
        runtime = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=FAST)
        yield runtime
        runtime.db.dispose()
        return
    with fresh_postgres() as (_name, url):
        runtime = build_runtime(url, config=config, settings=FAST)
        try:
            yield runtime
        finally:
            runtime.db.dispose()


def _run(rt: Runtime, text: str, wait: bool = True) -> dict[str, Any]:
    execution_id = ops.start_execution(rt.db, rt.pipeline_from_text(text), {}, "dana")
    return finished(rt, execution_id, timeout=90) if wait else {"id": execution_id}


def _pipeline(name: str, application: str, stage: dict[str, Any]) -> str:
    import json

    return json.dumps({"name": name, "application": application, "stages": [stage]})


def test_a_deploy_ten_minutes_before_the_alarm_is_named(rt: Runtime, world: ShopWorld, sessions: AwsSessions) -> None:
    settings = OpsSettings()
    audit_and_store(rt.db, sessions, settings, checks=CHECKS)  # the inventory before the deploy
    worker = rt.worker(threads=2)
    worker.start()
    try:
        # production with min 1: the new group fails the readiness check on minimum capacity
        stage = {"id": "deploy-prod", "name": "Deploy To Prod", "type": "deploy"}
        capacity = {"min": 1, "max": 4, "desired": 2}
        stage |= deploy_raw(world, capacity=capacity, tags={"Environment": "prod"}, poll_interval=0.2)
        deployed = _run(rt, _pipeline("release", "shop", stage))
        tests = _run(rt, _pipeline("smoke", "shop", {"id": "t", "type": "run", "command": "true"}))
        other = _run(rt, _pipeline("elsewhere", "billing", {"id": "t", "type": "run", "command": "true"}))
    finally:
        worker.stop()
    assert deployed["status"] == "SUCCEEDED", deployed
    audit_and_store(rt.db, sessions, settings, checks=CHECKS)  # the inventory after it
    ended = deployed["stages"][0]["ended_at"]
    alarm_at = ended + 600

    with rt.db.read() as conn:
        d = diagnose(conn, resources=["AutoScalingGroupName=shop-web-v002"], application=None, at=alarm_at)

    (res,) = d.resources
    assert (res.found, res.type, res.name, res.application, res.cluster) == (
        True,
        "autoscaling.group",
        "shop-web-v002",
        "shop",
        "shop-web",
    )
    assert d.application == "shop"  # from the resource's tags: the alarm did not say
    suspect = d.suspect
    assert suspect is not None
    assert (suspect.execution_id, suspect.server_group, suspect.previous_server_group, suspect.cluster) == (
        deployed["id"],
        "shop-web-v002",
        "shop-web-v001",
        "shop-web",
    )
    assert suspect.minutes_before == 10.0 and suspect.status == "SUCCEEDED"
    assert suspect.link == f"/executions/{deployed['id']}/stages/deploy-prod"
    assert any(deployed["id"] in line and "10 min before the alarm" in line for line in d.summary), d.summary
    # the run pipeline is an execution of the application but no deploy; another application's is neither
    listed = {e.id for e in d.activity.executions}
    assert {deployed["id"], tests["id"]} <= listed and other["id"] not in listed
    assert [x.execution_id for x in d.activity.deploys] == [deployed["id"]]
    assert d.clusters == [{"cluster": "shop-web", "account": "sandbox", "region": "us-east-1"}]
    # what the snapshot before the alarm changed: the deploy's group added
    assert d.changes_before.status == "ok"
    assert "shop-web-v002" in {a["name"] or a["id"] for a in d.changes_before.added}
    assert d.changes_since.status == "unknown" and "no inventory snapshot" in (d.changes_since.reason or "")
    failing = {(f["check_id"], f["on_alarm_resource"]) for f in d.findings.items}
    assert ("ha.asg.min_capacity", True) in failing, d.findings
    assert d.findings.link == "/applications/shop/readiness"
    assert d.to_dict()["activity"]["deploys"][0]["execution_id"] == deployed["id"]  # JSON-able

    # An incident the intake opens on that alarm: its diagnosis is kept on the timeline, once.
    alarm = AlarmTransition(
        source="poll",
        account="sandbox",
        region="us-east-1",
        alarm="shop-web-5xx",
        state="ALARM",
        previous="OK",
        reason="Threshold Crossed",
        at=alarm_at,
        dimensions={"AutoScalingGroupName": "shop-web-v002"},
    )
    with rt.db.begin() as conn:
        opened = record_transition(conn, alarm, incident_settings({}))
        assert opened.outcome == "created" and opened.incident_id is not None, opened
        inc = incidents.get(conn, opened.incident_id)
        for _ in range(2):
            record_diagnosis(conn, {**inc, "created_at": alarm_at})  # opened now; diagnosed as of the alarm
    with rt.db.read() as conn:
        events = incidents.timeline(conn, inc["id"])
        kept, stored = incident_diagnosis(conn, inc, events)
    assert [e["kind"] for e in events].count(DIAGNOSIS_EVENT) == 1 and stored
    assert kept["application"] == "shop"  # from the group's tags: the alarm carried none
    assert kept["activity"]["deploys"][0]["execution_id"] == deployed["id"]

    # Seven hours later the same deploy lies outside a six-hour window.
    with rt.db.read() as conn:
        late = diagnose(conn, resources=["AutoScalingGroupName=shop-web-v002"], application="shop", at=ended + 7 * 3600)
    assert late.activity.deploys == [] and late.suspect is None
    assert any("No deploy of shop in the 6 h before the alarm" in line for line in late.summary), late.summary


def test_what_cannot_be_worked_out_says_why(tmp_path: Path) -> None:
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=Config(), settings=FAST)
    with rt.db.read() as conn:
        d = diagnose(
            conn, resources=["arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1"], application=None, at=1e9
        )
    assert [r.found for r in d.resources] == [False]
    assert d.activity.status == "unknown" and "no application" in (d.activity.reason or "")
    assert d.changes_before.status == "unknown" and "no inventory snapshot" in (d.changes_before.reason or "")
    assert d.findings.status == "unknown" and "no readiness audit" in (d.findings.reason or "")
    with pytest.raises(ValueError, match="lookback_hours"), rt.db.read() as conn:
        diagnose(conn, resources=[], application="shop", at=1e9, lookback_hours=0)
    rt.db.dispose()
