"""Triggers Gennaker fires itself, as durable jobs: schedules (once per time across replicas, across a
daylight-saving change, after downtime), pipeline chains (with the parent's outputs, cycles refused)
and new images (on simulated AWS)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from gennaker.api.app import create_app
from gennaker.cloud.aws.session import AwsSessions
from gennaker.cloud.aws.shop import _image_from, seed_shop
from gennaker.engine import jobs
from gennaker.engine.jobs import Job, JobContext, JobRunner
from gennaker.runtime import Runtime, build_runtime
from gennaker.sandbox.server import config_text
from gennaker.spec.config import config_from_text
from gennaker.store.tables import executions
from gennaker.triggers.schedule import bootstrap, cron_key, next_fire
from gennaker.triggers.tables import trigger_deliveries
from tests.conftest import admin_client
from tests.core.conftest import (
    FAST,
    pg_runtime,  # noqa: F401  (the fixture)
    wait_for,
)

NIGHTLY = """name: nightly
application: shop
parameters: [{name: version, default: "none"}]
triggers:
  - {type: cron, schedule: "0 3 * * 1-5", timezone: Europe/Berlin, missed: MISSED, params: {version: latest}}
stages:
  - {id: build, type: run, command: 'echo "::output v=$V"', env: {V: "${trigger.params.version}"}}
"""


def register(rt: Runtime, text: str) -> None:
    with admin_client(create_app(rt)) as admin:
        r = admin.post("/api/pipelines", json={"yaml": text})
        assert r.status_code == 201, r.text


def started(rt: Runtime, pipeline: str) -> list[Any]:
    with rt.db.read() as conn:
        return conn.execute(select(executions).where(executions.c.pipeline == pipeline)).all()


def utc(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp()


def test_a_schedule_means_local_time_on_both_sides_of_a_clock_change() -> None:
    # Berlin moves from CET (UTC+1) to CEST (UTC+2) on Sunday 2026-03-29
    friday = next_fire("0 3 * * 1-5", "Europe/Berlin", utc("2026-03-26T12:00:00"))
    monday = next_fire("0 3 * * 1-5", "Europe/Berlin", utc("2026-03-27T12:00:00"))
    assert friday == utc("2026-03-27T02:00:00")  # 03:00 CET
    assert monday == utc("2026-03-30T01:00:00")  # 03:00 CEST, the weekend skipped
    assert next_fire("*/15 * * * *", "UTC", utc("2026-01-01T00:07:00")) == utc("2026-01-01T00:15:00")


def job_for(rt: Runtime, pipeline: str, at: float, schedule: str = "0 3 * * 1-5") -> Job:
    payload = {"pipeline": pipeline, "index": 0, "schedule": schedule, "timezone": "Europe/Berlin", "at": at}
    return Job(
        id=1, key=cron_key(pipeline, 0, at), kind="triggers.cron", payload=payload, attempt=1, max_attempts=8, due_at=at
    )


def test_one_scheduled_time_starts_one_execution_across_replicas(pg_runtime: Runtime) -> None:  # noqa: F811
    rt = pg_runtime
    register(rt, NIGHTLY.replace("MISSED", "run_once"))
    other = build_runtime(str(rt.db.engine.url.render_as_string(hide_password=False)), config=rt.config, settings=FAST)
    at = time.time() - 1
    job = job_for(rt, "nightly", at)
    barrier = threading.Barrier(4)

    def replica(r: Runtime) -> None:
        barrier.wait()
        r.triggers.cron(job, JobContext(db=r.db, worker_id="w"))

    threads = [threading.Thread(target=replica, args=(r,)) for r in (rt, other, rt, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.db.dispose()
    [ex] = started(rt, "nightly")
    assert ex.trigger["type"] == "cron" and ex.trigger["params"] == {"version": "latest"}
    assert ex.trigger["label"].startswith("cron ") and ex.trigger["scheduled_at"] == at
    with rt.db.read() as conn:
        outcomes = sorted(r.outcome for r in conn.execute(select(trigger_deliveries.c.outcome)))
    assert outcomes == ["duplicate", "duplicate", "duplicate", "started"]


@pytest.mark.parametrize(("missed", "fires"), [("run_once", 1), ("skip", 0)])
def test_a_time_missed_during_downtime_fires_once_or_not_at_all(runtime: Runtime, missed: str, fires: int) -> None:
    register(runtime, NIGHTLY.replace("MISSED", missed))
    outcome = runtime.triggers.cron(
        job_for(runtime, "nightly", time.time() - 3600), JobContext(db=runtime.db, worker_id="w")
    )
    assert len(started(runtime, "nightly")) == fires
    [nxt] = outcome.then  # the next time is scheduled either way, after now (not after the missed one)
    assert nxt.due_at > time.time()


def test_a_changed_schedule_does_not_fire_the_old_one(runtime: Runtime) -> None:
    register(runtime, NIGHTLY.replace("MISSED", "run_once"))
    runtime.triggers.cron(
        job_for(runtime, "nightly", time.time(), schedule="0 4 * * *"), JobContext(db=runtime.db, worker_id="w")
    )
    assert started(runtime, "nightly") == []


def test_reconcile_schedules_the_next_firing_once_whoever_starts_it(runtime: Runtime) -> None:
    register(runtime, NIGHTLY.replace("MISSED", "run_once"))
    with runtime.db.begin() as conn:
        bootstrap(conn, time.time())
        bootstrap(conn, time.time())  # a second replica starting in the same slot
    runner = JobRunner(runtime.db, runtime.triggers.handlers(), "w1")
    assert runner.run_due() == 1  # one reconcile
    at = next_fire("0 3 * * 1-5", "Europe/Berlin", time.time())
    with runtime.db.read() as conn:
        assert jobs.get(conn, cron_key("nightly", 0, at)) is not None


BUILD = """name: build-shop
application: shop
stages:
  - {id: build, type: run, command: 'echo "::output image=ami-123"'}
"""
DEPLOY = """name: deploy-shop
application: shop
triggers:
  - {type: pipeline, pipeline: build-shop, status: [SUCCEEDED]}
stages:
  - {id: show, type: run, command: 'echo "::output got=$I"', env: {I: "${trigger.parent.outputs.build.image}"}}
"""


def test_a_pipeline_starts_after_another_with_its_outputs(runtime: Runtime) -> None:
    register(runtime, BUILD)
    register(runtime, DEPLOY)
    app = create_app(runtime, with_worker=True)
    with admin_client(app) as admin:
        parent = admin.post("/api/pipelines/build-shop/executions", json={}).json()["id"]
        child = wait_for(lambda: started(runtime, "deploy-shop"), timeout=30)[0]
        wait_for(lambda: admin.get(f"/api/executions/{child.id}").json()["status"] == "SUCCEEDED")
        assert admin.get(f"/api/executions/{child.id}/stages/show").json()["outputs"]["got"] == "ami-123"
        shown = admin.get(f"/api/executions/{child.id}").json()["trigger"]
    assert shown["type"] == "pipeline" and shown["label"] == f"after build-shop #{parent[:8]}"
    assert shown["parent"]["execution_id"] == parent


def test_the_catalog_reads_a_document_only_for_a_version_it_has_not_parsed(runtime: Runtime) -> None:
    """Every execution's end asks for the registered pipelines (pipeline triggers): their texts are
    not read again while unchanged, and a re-registered document is parsed anew."""
    register(runtime, BUILD)
    register(runtime, DEPLOY)
    catalog = runtime.triggers.catalog
    texts_read: list[str] = []

    def on_statement(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if "pipelines.text" in statement:
            texts_read.append(statement)

    def names() -> list[str]:
        with runtime.db.read() as conn:
            return sorted(p.name for p in catalog.registered(conn))

    event.listen(runtime.db.engine, "before_cursor_execute", on_statement)
    try:
        assert names() == ["build-shop", "deploy-shop"]
        first = len(texts_read)
        assert names() == ["build-shop", "deploy-shop"]
        assert len(texts_read) == first  # nothing changed: no text read
        register(runtime, DEPLOY.replace("status: [SUCCEEDED]", "status: [FAILED]"))
        with runtime.db.read() as conn:
            [deploy] = [p for p in catalog.registered(conn) if p.name == "deploy-shop"]
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", on_statement)
    assert len(texts_read) == first + 1
    assert [str(s) for s in deploy.triggers[0].status] == ["FAILED"]


def test_a_loop_of_pipeline_triggers_is_refused_where_it_is_written(runtime: Runtime) -> None:
    register(runtime, DEPLOY)
    loop = BUILD.replace("stages:", "triggers:\n  - {type: pipeline, pipeline: deploy-shop}\nstages:")
    with admin_client(create_app(runtime)) as admin:
        r = admin.post("/api/pipelines", json={"yaml": loop, "source": "build.yml"})
    assert r.status_code == 422
    [problem] = r.json()["problems"]
    assert (problem["line"], problem["message"]) == (
        4,
        "pipeline triggers would loop: deploy-shop → build-shop → deploy-shop",
    )


def test_a_new_image_on_simulated_aws_starts_the_pipeline(moto_endpoint: str, tmp_path: Path) -> None:
    config = config_from_text(config_text(moto_endpoint))
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=FAST)
    world = seed_shop(AwsSessions(config, max_attempts=3), "sandbox", "us-east-1")
    register(
        rt,
        """name: on-image
application: shop
triggers:
  - type: image
    account: sandbox
    region: us-east-1
    image_name: "shop-release-*"
    tags: {release: "true"}
    poll_interval: 5s
stages:
  - {id: got, type: run, command: 'echo "::output image=$I"', env: {I: "${trigger.image_id}"}}
""",
    )
    now = [time.time()]
    runner = JobRunner(rt.db, rt.triggers.handlers(), "w1", clock=lambda: now[0])
    with rt.db.begin() as conn:
        bootstrap(conn, now[0])
    runner.run_due()  # reconcile, then the first poll: learns what exists, starts nothing
    assert started(rt, "on-image") == []
    ec2 = AwsSessions(config, max_attempts=3).client("sandbox", "us-east-1", "ec2")
    new = _image_from(ec2, world.release_image_id, "shop-release-2.0.0", {"release": "true"})
    _image_from(ec2, world.release_image_id, "shop-release-2.0.1-rc", {"release": "false"})  # not tagged for it
    now[0] += 6
    runner.run_due()
    [ex] = started(rt, "on-image")
    assert ex.trigger["image_id"] == new and ex.trigger["label"] == f"image {new}"
    now[0] += 6
    runner.run_due()
    assert len(started(rt, "on-image")) == 1  # the same image does not start it again
    rt.db.dispose()


def test_a_canceled_execution_starts_what_waits_for_a_cancel(runtime: Runtime) -> None:
    register(runtime, BUILD.replace('echo "::output image=ami-123"', "sleep 30"))
    register(
        runtime,
        DEPLOY.replace("status: [SUCCEEDED]", "status: [CANCELED]").replace(
            "${trigger.parent.outputs.build.image}", "${trigger.parent.status}"
        ),
    )
    app = create_app(runtime, with_worker=True)
    with admin_client(app) as admin:
        parent = admin.post("/api/pipelines/build-shop/executions", json={}).json()["id"]
        wait_for(lambda: admin.get(f"/api/executions/{parent}/stages/build").json()["status"] == "RUNNING")
        assert admin.post(f"/api/executions/{parent}/cancel", json={"reason": "wrong branch"}).status_code == 200
        child = wait_for(lambda: started(runtime, "deploy-shop"), timeout=30)[0]
        wait_for(lambda: admin.get(f"/api/executions/{child.id}").json()["status"] == "SUCCEEDED")
        assert admin.get(f"/api/executions/{child.id}/stages/show").json()["outputs"]["got"] == "CANCELED"
