"""Deploys through the engine on a local account, under load: pipelines with bake + deploy, real
HAProxy, real processes, and a bounded loopback load generator the whole time. Each asserts that
no request failed and that every response after the switch came from the expected version."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.registry import provider_for
from gennaker.engine import operations as ops
from gennaker.runtime import Runtime, build_runtime
from gennaker.sample_app import SOURCE_DIR
from gennaker.sandbox.traffic import LoadGenerator, Response, failures, versions, window
from gennaker.spec.config import load_config
from tests.conftest import free_port
from tests.core.conftest import FAST, detail, finished, stage_status, wait_for
from tests.core.test_durability import kill, spawn_worker, stop

ACCOUNT = "laptop"


@dataclass
class Local:
    rt: Runtime
    provider: Any
    lb_port: int
    config: Path
    tmp: Path

    def start(
        self, version: str, strategy: str = "red_black", extra: str = "", env: str = "", health: str = "30s"
    ) -> str:
        path = self.tmp / f"deploy-{version}-{strategy}.yml"
        path.write_text(pipeline(strategy, extra, env, health))
        pipe = self.rt.load_pipeline(str(path))
        return ops.start_execution(self.rt.db, pipe, {"version": version}, "tester", base_dir=str(self.tmp))

    def load(self, seconds: float = 90) -> LoadGenerator:
        return LoadGenerator("127.0.0.1", self.lb_port, threads=3, pause=0.01, max_seconds=seconds, max_requests=60_000)

    def group(self, name: str) -> Any:
        return self.provider.get_server_group(name)


def pipeline(strategy: str, extra: str = "", env: str = "", health: str = "30s") -> str:
    return f"""name: shop-deploy
application: shop
parameters: [{{name: version, required: true}}]
stages:
  - {{id: bake, type: bake, account: {ACCOUNT}, source: "{SOURCE_DIR}", version: "${{trigger.params.version}}"}}
  - id: deploy
    type: deploy
    requires: [bake]
    account: {ACCOUNT}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    env: {{APP_VERSION: "${{trigger.params.version}}"{env}}}
    capacity: {{min: 2, max: 2, desired: 2}}
    load_balancers: [shop-web]
    strategy: {strategy}
    health_timeout: {health}
    poll_interval: 100ms
{extra}"""


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
    try:
        yield Local(rt, provider, lb_port, config, tmp_path)
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


def seeded(local: Local) -> None:
    """1.0.0 in production (shop-web-v001), before any load."""
    ex = finished(local.rt, local.start("1.0.0"), timeout=60)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, ex["id"])
    assert local.group("shop-web-v001").enabled


def after(answers: list[Response], moment: float) -> set[str]:
    return versions(window(answers, moment))


def no_failures(answers: list[Response]) -> None:
    failed = failures(answers)
    assert not failed, f"{len(failed)} of {len(answers)} requests failed, first: {failed[:3]}"
    assert len(answers) > 100, "too little traffic to prove anything"


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("red_black", ""),
        ("highlander", ""),
        ("rolling_red_black", "    target_percentages: [50, 100]\n"),
    ],
)
def test_deploy_under_load_loses_no_request(local: Local, worker: None, strategy: str, extra: str) -> None:
    seeded(local)
    with local.load() as load:
        load.wait_for(100)
        ex = finished(local.rt, local.start("2.0.0", strategy, extra), timeout=90)
        switched = time.monotonic()
        load.wait_for(100)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, ex["id"])
    answers = load.snapshot()
    no_failures(answers)
    assert after(answers, switched) == {"2.0.0"}
    assert {"1.0.0", "2.0.0"} <= versions(answers)
    old, new = local.group("shop-web-v001"), local.group("shop-web-v002")
    assert new is not None and new.enabled and len(new.healthy_instances()) == 2
    if strategy == "highlander":
        assert old is None
    else:
        assert old is not None and old.disabled and not old.in_rotation


def test_cancel_mid_deploy_puts_the_old_version_back(local: Local, worker: None) -> None:
    seeded(local)
    # Rolling, paused after 50 %: canceled while both versions serve.
    extra = "    target_percentages: [50, 100]\n    pause_between_steps: 60s\n"
    with local.load() as load:
        load.wait_for(100)
        eid = local.start("2.0.0", "rolling_red_black", extra)
        wait_for(lambda: "2.0.0" in versions(load.snapshot()), timeout=60)
        ops.cancel(local.rt.db, eid, "tester")
        ex = finished(local.rt, eid, timeout=30)
        # CANCELED is recorded at once; the worker then runs the deploy's cancel (previous group
        # back, new one out), within a poll or two: the switch back is when that is done. (5 s here
        # alone; 10 s was once too short on CI's loaded machine, where the whole test took 4x longer.)
        wait_for(lambda: not local.group("shop-web-v002").in_rotation, timeout=30)
        back = time.monotonic()
        load.wait_for(100)
    assert ex["status"] == "CANCELED", stage_status(local.rt, eid)
    answers = load.snapshot()
    no_failures(answers)
    assert after(answers, back) == {"1.0.0"}
    old = local.group("shop-web-v001")
    assert old is not None and old.enabled and len(old.healthy_instances()) == 2


def test_a_version_that_never_becomes_healthy_fails_and_the_old_one_keeps_serving(local: Local, worker: None) -> None:
    seeded(local)
    with local.load() as load:
        load.wait_for(100)
        started = time.monotonic()
        eid = local.start("2.0.0", "red_black", env=', UNHEALTHY: "1"', health="5s")
        ex = finished(local.rt, eid, timeout=60)
        took = time.monotonic() - started
        load.wait_for(100)
    assert ex["status"] in ("TERMINAL", "FAILED"), stage_status(local.rt, eid)
    assert took < 5 + 20, f"the deploy took {took:.0f}s to fail with a 5s health timeout"
    deploy = next(s for s in detail(local.rt, eid)["stages"] if s["stage_id"] == "deploy")
    assert "healthy" in (deploy.get("message") or ""), deploy.get("message")
    answers = load.snapshot()
    no_failures(answers)
    assert versions(answers) == {"1.0.0"}
    old = local.group("shop-web-v001")
    assert old is not None and old.enabled and len(old.healthy_instances()) == 2


def test_worker_killed_mid_deploy_and_another_finishes_it(local: Local) -> None:
    seeded_with_a_worker(local)
    url = str(local.rt.db.engine.url)
    extra = "    target_percentages: [50, 100]\n    pause_between_steps: 3s\n"
    with local.load() as load:
        load.wait_for(100)
        eid = local.start("2.0.0", "rolling_red_black", extra)
        first = spawn_worker(url)
        try:
            wait_for(lambda: "2.0.0" in versions(load.snapshot()), timeout=60)  # at the 50 % step
            kill(first)
            assert stage_status(local.rt, eid)["deploy"] == "RUNNING"  # killed mid-deploy
            second = spawn_worker(url)
            try:
                ex = finished(local.rt, eid, timeout=90)
                switched = time.monotonic()
            finally:
                stop(second)
        finally:
            if first.poll() is None:
                kill(first)
        load.wait_for(100)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, eid)
    answers = load.snapshot()
    no_failures(answers)
    assert after(answers, switched) == {"2.0.0"}


def seeded_with_a_worker(local: Local) -> None:
    w = local.rt.worker(threads=2)
    w.start()
    try:
        seeded(local)
    finally:
        w.stop()


def test_rollback_cluster_under_load_serves_the_old_version_again(local: Local, worker: None) -> None:
    seeded(local)
    rollback = local.tmp / "rollback.yml"
    rollback.write_text(
        "name: shop-rollback\napplication: shop\nstages:\n"
        f"  - {{id: rollback, type: rollback_cluster, account: {ACCOUNT}, stack: web, health_timeout: 30s,"
        " poll_interval: 100ms}\n"
    )
    with local.load() as load:
        load.wait_for(100)
        ex = finished(local.rt, local.start("2.0.0"), timeout=90)
        assert ex["status"] == "SUCCEEDED", stage_status(local.rt, ex["id"])
        load.wait_for(100)
        eid = ops.start_execution(local.rt.db, local.rt.load_pipeline(str(rollback)), {}, "tester")
        ex = finished(local.rt, eid, timeout=60)
        back = time.monotonic()
        load.wait_for(100)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, eid)
    answers = load.snapshot()
    no_failures(answers)
    assert after(answers, back) == {"1.0.0"}
    assert "2.0.0" in versions(answers)
    new = local.group("shop-web-v002")
    assert new is not None and new.disabled and not new.in_rotation
