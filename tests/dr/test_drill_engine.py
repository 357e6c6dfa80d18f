"""A dr_drill stage run by the engine with real worker processes: the worker is SIGKILLed while the
drill has the primary's health check inverted; a new worker finishes the drill and its tear-down,
the health check is put back and nothing tagged with the drill id is left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine import operations as ops
from gennaker.engine.runner import EngineSettings
from gennaker.ops.dr import store
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from tests.core.conftest import finished, wait_for
from tests.core.test_durability import kill, spawn_worker, stop
from tests.dr.conftest import ACCOUNT
from tests.dr.seed import DR, PRIMARY, DrWorld, standby_serving
from tests.dr.test_drills import _left


def test_worker_killed_mid_drill_a_new_one_finishes_and_tears_down(
    world: DrWorld, config: Config, sessions: AwsSessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standby_serving(sessions, ACCOUNT, world)
    cfg_file = tmp_path / "gennaker.yml"
    cfg_file.write_text(json.dumps(config.model_dump(exclude_none=True)))  # JSON is YAML
    stage = {
        "id": "drill", "type": "dr_drill", "account": ACCOUNT, "from_region": PRIMARY, "to_region": DR,
        "scenario": "failover_dns", "objectives": {"rto": "30m", "rpo": "1h"}, "dns_wait": "4s",
    }  # fmt: skip
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=EngineSettings())
    pipeline = rt.pipeline_from_text(json.dumps({"name": "dr", "application": "shop", "stages": [stage]}))
    execution_id = ops.start_execution(rt.db, pipeline, {}, "tester")
    r53 = sessions.client(ACCOUNT, PRIMARY, "route53")

    def inverted() -> bool:
        hc = r53.get_health_check(HealthCheckId=world.health_check)["HealthCheck"]
        return bool(hc["HealthCheckConfig"].get("Inverted"))

    monkeypatch.setenv("GENNAKER_CONFIG", str(cfg_file))
    first = spawn_worker(str(rt.db.engine.url))
    try:
        wait_for(inverted, timeout=60, every=0.1)  # mid-drill: waiting for Route 53 to see it
        kill(first)
    finally:
        if first.poll() is None:
            kill(first)
    with rt.db.read() as conn:
        (running,) = store.recent_drills(conn, "shop")
    assert running["status"] == "RUNNING" and inverted()
    second = spawn_worker(str(rt.db.engine.url))
    try:
        detail: dict[str, Any] = finished(rt, execution_id, timeout=120)
    finally:
        stop(second)
    assert detail["status"] == "SUCCEEDED", detail
    with rt.db.read() as conn:
        rows = store.recent_drills(conn, "shop")
    assert [r["id"] for r in rows] == [running["id"]]  # one drill, finished by the second worker
    assert rows[0]["status"] == "SUCCEEDED" and rows[0]["execution_id"] == execution_id
    assert not inverted()
    assert _left(sessions, running["id"]) == []
