"""The canary stage end to end on a local account: real HAProxy, real processes, real traffic, the
engine with a worker, metrics from the haproxy source. A good version passes; a version answering
5 % of its requests with 500 fails and its pair is destroyed, with no failed request outside the
canary's share."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.registry import provider_for
from gennaker.engine import operations as ops
from gennaker.metrics import store as canary_store
from gennaker.runtime import Runtime, build_runtime
from gennaker.sample_app import SOURCE_DIR
from gennaker.sandbox.traffic import LoadGenerator, failures, versions
from gennaker.spec.config import load_config
from tests.conftest import free_port
from tests.core.conftest import FAST, detail, finished, stage_status, wait_for
from tests.core.test_durability import kill, spawn_worker, stop

ACCOUNT = "laptop"

SEED = f"""name: shop-seed
application: shop
stages:
  - {{id: bake, type: bake, account: {ACCOUNT}, source: "{SOURCE_DIR}", version: "1.0.0"}}
  - id: deploy
    type: deploy
    requires: [bake]
    account: {ACCOUNT}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    env: {{APP_VERSION: "1.0.0"}}
    capacity: {{min: 1, max: 1, desired: 1}}
    load_balancers: [shop-web]
    poll_interval: 100ms
"""

# Errors are judged (critical); latency and rate are reported only (muted): a 5 % error rate needs
# about 40 canary requests per step to show in nearly every step, so the test sends the pair half
# of the traffic and judges 1 s steps.
CANARY = """name: shop-canary
application: shop
stages:
  - {{id: bake, type: bake, account: {account}, source: "{source}", version: "{version}"}}
  - id: canary
    type: canary
    requires: [bake]
    account: {account}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    env: {{APP_VERSION: "1.0.0"}}
    load_balancers: [shop-web]
    capacity: 1
    traffic: 50%
    poll_interval: 100ms
    analysis:
      warmup: 1s
      lifetime: 20s
      interval: 10s
      step: 1s
      on_marginal: fail
      metrics:
        - {{name: errors, source: haproxy, query: http_5xx_rate, direction: increase, critical: true}}
        - {{name: latency, source: haproxy, query: response_time, direction: increase, muted: true}}
        - {{name: rate, source: haproxy, query: request_rate, muted: true}}
"""


def version_source(tmp: Path, version: str, error_rate: str = "0") -> Path:
    """A version of the sample application: its code sets its own version and error rate (as a
    bad release would), and runs the real one."""
    directory = tmp / f"app-{version}"
    directory.mkdir()
    (directory / "real_app.py").write_text((SOURCE_DIR / "app.py").read_text())
    (directory / "app.py").write_text(
        "import os, runpy\n"
        f"os.environ['APP_VERSION'] = {version!r}\n"
        f"os.environ['ERROR_RATE'] = {error_rate!r}\n"
        "runpy.run_path('real_app.py', run_name='__main__')\n"
    )
    return directory


@dataclass
class Local:
    rt: Runtime
    provider: Any
    lb_port: int
    tmp: Path
    worker: Any

    def start(self, name: str, text: str) -> str:
        path = self.tmp / f"{name}.yml"
        path.write_text(text)
        pipe = self.rt.load_pipeline(str(path))
        return ops.start_execution(self.rt.db, pipe, {}, "tester", base_dir=str(self.tmp))

    def run(self, name: str, text: str, timeout: float = 120) -> dict[str, Any]:
        return finished(self.rt, self.start(name, text), timeout=timeout)

    def start_canary(self, version: str, error_rate: str = "0") -> str:
        source = version_source(self.tmp, version, error_rate)
        return self.start(f"canary-{version}", CANARY.format(account=ACCOUNT, source=source, version=version))

    def canary(self, version: str, error_rate: str = "0") -> dict[str, Any]:
        return finished(self.rt, self.start_canary(version, error_rate), timeout=120)

    def load(self) -> LoadGenerator:
        return LoadGenerator("127.0.0.1", self.lb_port, threads=6, pause=0.0, max_seconds=120, max_requests=100_000)


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
    monkeypatch.setenv("GENNAKER_CONFIG", str(config))
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=load_config(str(config)), settings=FAST)
    provider = provider_for(rt.services, ACCOUNT)
    worker = rt.worker(threads=4)
    worker.start()
    try:
        local = Local(rt, provider, lb_port, tmp_path, worker)
        seeded = local.run("seed", SEED, timeout=60)
        assert seeded["status"] == "SUCCEEDED", stage_status(rt, seeded["id"])
        yield local
    finally:
        worker.stop()
        for group in provider.instances.groups():  # instances outlive Gennaker by design
            provider.instances.destroy(group.name, timeout=2)
        provider.haproxy.stop(timeout=2)
        rt.db.dispose()


def _stage(local: Local, execution_id: str) -> dict[str, Any]:
    return next(s for s in detail(local.rt, execution_id)["stages"] if s["stage_id"] == "canary")


def _groups(local: Local) -> set[str]:
    return {g.name for g in local.provider.list_server_groups(application="shop", with_health=False)}


def _weights(local: Local) -> dict[str, int]:
    return {r.server: r.weight for r in local.provider.server_stats()}


def test_a_good_version_passes_and_the_pair_is_gone(local: Local) -> None:
    with local.load() as load:
        load.wait_for(100)
        ex = local.canary("2.0.0")
        load.wait_for(load.count() + 50)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, ex["id"])
    stage = _stage(local, ex["id"])
    outputs = stage["outputs"]
    assert outputs["result"] == "pass" and outputs["score"] == 100
    assert (outputs["baseline_server_group"], outputs["canary_server_group"]) == (
        "shop-web-baseline-v001",
        "shop-web-canary-v001",
    )
    assert outputs["report"]["path"] == f"/canary/{outputs['report']['id']}"
    # Both judgements stored, each with the series the report draws.
    analysis = canary_store.get_analysis(local.rt.db, outputs["report"]["id"])
    assert analysis["status"] == "succeeded" and [j["index"] for j in analysis["judgements"]] == [1, 2]
    errors = analysis["judgements"][0]["metrics"][0]
    assert errors["name"] == "errors" and errors["label"] == "Pass" and len(errors["canary"]["v"]) >= 8
    answers = load.snapshot()
    assert not failures(answers) and {"1.0.0", "2.0.0"} <= versions(answers)
    # The pair is destroyed and production has its normal weight (all the traffic) again.
    assert _groups(local) == {"shop-web-v001"}
    assert _weights(local) == {"shop-web-v001-1": 1}


def test_a_version_with_5_percent_errors_fails_and_is_rolled_back(local: Local) -> None:
    with local.load() as load:
        load.wait_for(100)
        started = time.monotonic()
        ex = local.canary("2.0.0-bad", error_rate="0.05")
        took = time.monotonic() - started
        load.wait_for(load.count() + 200)
    assert ex["status"] == "FAILED", stage_status(local.rt, ex["id"])
    stage = _stage(local, ex["id"])
    assert stage["outputs"]["result"] == "fail" and stage["outputs"]["score"] == 0
    assert "destroyed" in (stage.get("message") or ""), stage.get("message")
    analysis = canary_store.get_analysis(local.rt.db, stage["outputs"]["report"]["id"])
    assert analysis["status"] == "failed"
    assert analysis["judgements"][-1]["metrics"][0]["label"] == "High"
    assert took < 60, f"the canary took {took:.0f}s to fail"
    answers = load.snapshot()
    failed = failures(answers)
    # Only the canary answered with errors: production and the baseline lost nothing.
    assert failed and {r.version for r in failed} == {"2.0.0-bad"}, failed[:3]
    share = sum(1 for r in answers if r.version == "2.0.0-bad") / len(answers)
    assert share < 0.5
    assert _groups(local) == {"shop-web-v001"}
    assert _weights(local) == {"shop-web-v001-1": 1}


def test_a_worker_killed_mid_analysis_and_another_finishes_it(local: Local) -> None:
    local.worker.stop()  # from here on, workers are processes that can be killed
    url = str(local.rt.db.engine.url)
    with local.load() as load:
        load.wait_for(100)
        eid = local.start_canary("2.0.0")
        first = spawn_worker(url)
        try:
            wait_for(lambda: _stage(local, eid)["outputs"].get("judgements") == 1, timeout=90)
            kill(first)  # between the first and the second judgement
            second = spawn_worker(url)
            try:
                ex = finished(local.rt, eid, timeout=90)
            finally:
                stop(second)
        finally:
            if first.poll() is None:
                kill(first)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, eid)
    outputs = _stage(local, eid)["outputs"]
    analysis = canary_store.get_analysis(local.rt.db, outputs["report"]["id"])
    assert [j["index"] for j in analysis["judgements"]] == [1, 2] and analysis["status"] == "succeeded"
    assert not failures(load.snapshot())
    assert _groups(local) == {"shop-web-v001"}
    assert _weights(local) == {"shop-web-v001-1": 1}
