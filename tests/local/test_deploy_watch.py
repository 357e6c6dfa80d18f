"""Watched deploys on a local account, through the engine, under real traffic: a version answering
a fifth of its requests with 500 is caught by an haproxy ``http_5xx_rate`` condition after cutover
and rolled back to the previous group; a good one passes the watch; a worker killed mid-watch is
replaced and the rollback happens once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.registry import provider_for
from gennaker.engine import logs as stage_logs
from gennaker.engine import operations as ops
from gennaker.runtime import Runtime, build_runtime
from gennaker.sample_app import SOURCE_DIR
from gennaker.sandbox.traffic import LoadGenerator, failures, versions, window
from gennaker.spec.config import load_config
from tests.conftest import free_port
from tests.core.conftest import FAST, detail, finished, stage_status, wait_for
from tests.core.test_durability import kill, spawn_worker, stop

ACCOUNT = "laptop"

PIPELINE = """name: shop-deploy
application: shop
parameters: [{{name: version, required: true}}, {{name: error_rate, default: "0"}}]
stages:
  - {{id: bake, type: bake, account: {account}, source: "{source}", version: "${{trigger.params.version}}"}}
  - id: deploy
    type: deploy
    requires: [bake]
    account: {account}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    env: {{APP_VERSION: "${{trigger.params.version}}", ERROR_RATE: "${{trigger.params.error_rate}}"}}
    capacity: {{min: 1, max: 1, desired: 1}}
    load_balancers: [shop-web]
    health_timeout: 30s
    poll_interval: 200ms
{watch}"""

WATCH = """    watch:
      for: {seconds}s
      metrics:
        - {{name: errors, source: haproxy, query: http_5xx_rate, op: ">", threshold: 0.02, for: 2s, step: 1s}}
"""


@dataclass
class Local:
    rt: Runtime
    provider: Any
    lb_port: int
    tmp: Path

    def start(self, version: str, error_rate: str = "0", watch_seconds: float | None = 4) -> str:
        path = self.tmp / f"deploy-{version}.yml"
        watch = WATCH.format(seconds=watch_seconds) if watch_seconds else ""
        path.write_text(PIPELINE.format(account=ACCOUNT, source=SOURCE_DIR, watch=watch))
        pipe = self.rt.load_pipeline(str(path))
        params = {"version": version, "error_rate": error_rate}
        return ops.start_execution(self.rt.db, pipe, params, "tester", base_dir=str(self.tmp))

    def load(self) -> LoadGenerator:
        return LoadGenerator("127.0.0.1", self.lb_port, threads=3, pause=0.01, max_seconds=90, max_requests=60_000)

    def group(self, name: str) -> Any:
        return self.provider.get_server_group(name)

    def deploy_stage(self, eid: str) -> dict[str, Any]:
        return next(s for s in detail(self.rt, eid)["stages"] if s["stage_id"] == "deploy")

    def log(self, eid: str) -> list[str]:
        with self.rt.db.read() as conn:
            return [r["line"] for r in stage_logs.read(conn, eid, "deploy")]


@pytest.fixture
def local(haproxy_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    lb_port = free_port()
    config = tmp_path / "gennaker.yml"
    config.write_text(
        "accounts:\n"
        f"  {ACCOUNT}:\n"
        "    kind: local\n"
        "    state_dir: local\n"
        "    load_balancers:\n"
        f'      shop-web: {{listen: "127.0.0.1:{lb_port}", health: {{path: /up, interval: 250ms, timeout: 2s}}}}\n'
    )
    monkeypatch.setenv("GENNAKER_CONFIG", str(config))  # for workers started as processes
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=load_config(str(config)), settings=FAST)
    provider = provider_for(rt.services, ACCOUNT)
    local = Local(rt, provider, lb_port, tmp_path)
    try:
        worker = rt.worker(threads=2)
        worker.start()
        try:
            seeded = finished(rt, local.start("1.0.0", watch_seconds=None), timeout=60)
        finally:
            worker.stop()
        assert seeded["status"] == "SUCCEEDED", stage_status(rt, seeded["id"])
        yield local
    finally:
        # Instances outlive Gennaker by design: a test must never leave any behind.
        for group in provider.instances.groups():
            provider.instances.destroy(group.name, timeout=2)
        provider.haproxy.stop(timeout=2)
        rt.db.dispose()


@pytest.fixture
def worker(local: Local) -> Iterator[None]:
    w = local.rt.worker(threads=4)
    w.start()
    try:
        yield
    finally:
        w.stop()


def assert_rolled_back(local: Local, eid: str, ex: dict[str, Any], answers: list[Any], back: float) -> None:
    assert ex["status"] == "FAILED", stage_status(local.rt, eid)
    stage = local.deploy_stage(eid)
    message = stage.get("message") or ""
    assert "watch: condition errors breached:" in message and "> 0.02 in all" in message, message
    assert "rolled back: shop-web-v001 is serving again, shop-web-v002 disabled" in message, message
    watch = stage["outputs"]["watch"]
    assert watch["result"] == "rolled back" and watch["conditions"]["errors"]["state"] == "BREACHED"
    assert watch["conditions"]["errors"]["value"] > 0.02
    old, new = local.group("shop-web-v001"), local.group("shop-web-v002")
    assert old.enabled and len(old.serving_instances()) == 1
    assert new.disabled and not new.in_rotation
    # Only the bad version failed requests, and after the rollback only the old one answers.
    failed = failures(answers)
    assert failed and {r.version for r in failed} == {"2.0.0-bad"}, failed[:3]
    assert versions(window(answers, back)) == {"1.0.0"}


def test_a_version_with_errors_is_rolled_back_by_its_watch(local: Local, worker: None) -> None:
    with local.load() as load:
        load.wait_for(100)
        started = time.monotonic()
        eid = local.start("2.0.0-bad", error_rate="0.2", watch_seconds=30)
        ex = finished(local.rt, eid, timeout=90)
        back = time.monotonic()
        took = back - started
        load.wait_for(load.count() + 100)
    assert_rolled_back(local, eid, ex, load.snapshot(), back)
    assert took < 25, f"the breach took {took:.0f}s to roll back (the watch lasts 30 s)"
    assert sum("rolling back to shop-web-v001" in line for line in local.log(eid)) == 1


def test_a_good_version_passes_its_watch(local: Local, worker: None) -> None:
    with local.load() as load:
        load.wait_for(100)
        eid = local.start("2.0.0", watch_seconds=4)
        ex = finished(local.rt, eid, timeout=90)
        load.wait_for(load.count() + 50)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, eid)
    watch = local.deploy_stage(eid)["outputs"]["watch"]
    assert watch["result"] == "passed" and watch["conditions"]["errors"]["state"] == "OK", watch
    assert watch["polls"] >= 4
    assert not failures(load.snapshot())
    assert local.group("shop-web-v002").enabled and local.group("shop-web-v001").disabled


def test_a_worker_killed_mid_watch_is_replaced_and_rolls_back_once(local: Local) -> None:
    url = str(local.rt.db.engine.url)
    with local.load() as load:
        load.wait_for(100)
        eid = local.start("2.0.0-bad", error_rate="0.2", watch_seconds=30)
        first = spawn_worker(url)
        try:
            # killed while it watches, before the condition's window is complete
            wait_for(lambda: (local.deploy_stage(eid)["outputs"].get("watch") or {}).get("polls"), timeout=60)
            kill(first)
            watch = local.deploy_stage(eid)["outputs"]["watch"]
            assert watch["result"] == "watching", watch  # the kill came before the breach was seen
            until = watch["until"]
            second = spawn_worker(url)
            try:
                ex = finished(local.rt, eid, timeout=60)
                back = time.monotonic()
            finally:
                stop(second)
        finally:
            if first.poll() is None:
                kill(first)
        load.wait_for(load.count() + 100)
    assert_rolled_back(local, eid, ex, load.snapshot(), back)
    assert local.deploy_stage(eid)["outputs"]["watch"]["until"] == until  # the deadline was kept
    log = local.log(eid)
    assert sum("rolling back to shop-web-v001" in line for line in log) == 1, log
    assert sum(line.startswith("watching condition errors") for line in log) == 1, log
