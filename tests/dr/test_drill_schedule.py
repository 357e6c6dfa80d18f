"""A drill on a schedule: a pipeline whose only stage is a ``dr_drill`` and whose trigger is a cron
schedule is registered like any other; its scheduled time starts one execution, the workers run the
drill into the DR region, and the drill's row names the execution the schedule started."""

from __future__ import annotations

import json
import time
from pathlib import Path

from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine.jobs import JobContext
from gennaker.ops.dr import store
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from tests.core.conftest import FAST, finished
from tests.dr.conftest import ACCOUNT
from tests.dr.seed import DR, PRIMARY, DrWorld
from tests.dr.test_drills import _left
from tests.triggers.test_scheduled import job_for, register, started

WEEKLY = {
    "name": "weekly-drill",
    "application": "shop",
    "triggers": [{"type": "cron", "schedule": "0 3 * * 1-5", "timezone": "Europe/Berlin"}],
    "stages": [
        {
            "id": "drill",
            "type": "dr_drill",
            "account": ACCOUNT,
            "from_region": PRIMARY,
            "to_region": DR,
            "scenario": "restore_data",
            "objectives": {"rto": "30m", "rpo": "1h"},
        }
    ],
}


def test_a_scheduled_time_starts_one_drill_that_runs_and_tears_down(
    world: DrWorld, config: Config, sessions: AwsSessions, tmp_path: Path
) -> None:
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=FAST)
    register(rt, json.dumps(WEEKLY))  # JSON is YAML
    at = time.time() - 60
    for _ in range(2):  # the same scheduled time delivered twice (two replicas) starts one execution
        rt.triggers.cron(job_for(rt, "weekly-drill", at), JobContext(db=rt.db, worker_id="w"))
    [execution] = started(rt, "weekly-drill")
    assert execution.trigger["type"] == "cron"
    worker = rt.worker(threads=2)
    worker.start()
    try:
        detail = finished(rt, execution.id, timeout=120)
    finally:
        worker.stop()
    assert detail["status"] == "SUCCEEDED", detail
    with rt.db.read() as conn:
        [drill] = store.recent_drills(conn, "shop")
    assert drill["status"] == "SUCCEEDED" and drill["execution_id"] == execution.id
    assert drill["scenario"] == "restore_data" and drill["rpo_s"] is not None
    assert _left(sessions, drill["id"]) == []  # torn down: nothing tagged with the drill id
