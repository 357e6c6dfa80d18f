"""A canary judged from a real Prometheus that scrapes the local provider's instances through the
file-based service discovery targets the provider writes (one target per running instance, labelled
with its server group), with the issue's PromQL template: ``${scope}`` is the group being measured."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from gennaker.engine import operations as ops
from gennaker.metrics import store as canary_store
from gennaker.runtime import build_runtime
from gennaker.sandbox.traffic import failures
from gennaker.spec.config import load_config
from tests.canary.test_canary_local import ACCOUNT, Local, _groups, _stage, local, version_source
from tests.core.conftest import FAST, finished, stage_status
from tests.metrics.test_prometheus import PROMETHEUS, running_prometheus

__all__ = ["local"]


ERRORS = (
    '(sum(rate(http_requests_total{server_group="${scope}",status=~"5.."}[4s])) or vector(0))'
    ' / sum(rate(http_requests_total{server_group="${scope}"}[4s]))'
)
CANARY = """name: shop-canary-promql
application: shop
stages:
  - {id: bake, type: bake, account: ACCOUNT, source: "SOURCE", version: "VERSION"}
  - id: canary
    type: canary
    requires: [bake]
    account: ACCOUNT
    stack: web
    image: "${stages.bake.outputs.image_id}"
    command: "python3 app.py"
    load_balancers: [shop-web]
    traffic: 50%
    poll_interval: 100ms
    analysis:
      warmup: 5s
      lifetime: 16s
      interval: 8s
      step: 1s
      on_marginal: fail
      metrics:
        - {name: errors, source: prometheus, query: 'ERRORS', direction: increase, critical: true}
""".replace("ACCOUNT", ACCOUNT).replace("ERRORS", ERRORS)


@pytest.fixture
def prometheus(local: Local) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    root = local.tmp / "prometheus-server"
    root.mkdir()
    with running_prometheus(root, f"{local.provider.instances.targets_dir}/*.json") as (url, process):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited: {(root / 'prometheus.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"prometheus did not start: {(root / 'prometheus.log').read_text()[-2000:]}")
        yield url


def test_the_provider_writes_a_target_per_running_instance(local: Local) -> None:
    [production] = [g for g in local.provider.instances.groups()]
    written = json.loads((local.provider.instances.targets_dir / f"{production.name}.json").read_text())
    assert [t["labels"]["server_group"] for t in written] == [production.name]
    assert written[0]["labels"]["application"] == "shop"
    assert written[0]["targets"] == [f"127.0.0.1:{production.running()[0].port}"]


@pytest.mark.parametrize(
    ("version", "error_rate", "status", "result"),
    [("2.0.0", "0", "SUCCEEDED", "pass"), ("2.0.0-bad", "0.05", "FAILED", "fail")],
)
def test_a_canary_judged_by_promql_over_the_providers_targets(
    local: Local, prometheus: str, version: str, error_rate: str, status: str, result: str
) -> None:
    config = local.tmp / "gennaker.yml"
    config.write_text(config.read_text() + f"metrics:\n  prometheus: {{url: '{prometheus}'}}\n")
    rt = build_runtime(str(local.rt.db.engine.url), config=load_config(str(config)), settings=FAST)
    local.worker.stop()
    worker = rt.worker(threads=4)
    worker.start()
    try:
        with local.load() as load:
            load.wait_for(100)
            path = local.tmp / f"canary-{version}.yml"
            source = version_source(local.tmp, version, error_rate)
            path.write_text(CANARY.replace("SOURCE", str(source)).replace("VERSION", version))
            eid = ops.start_execution(rt.db, rt.load_pipeline(str(path)), {}, "tester", base_dir=str(local.tmp))
            ex = finished(rt, eid, timeout=120)
            answers = load.snapshot()
    finally:
        worker.stop()
        rt.db.dispose()
    assert ex["status"] == status, stage_status(local.rt, eid)
    outputs = _stage(local, eid)["outputs"]
    assert outputs["result"] == result
    metric = canary_store.get_analysis(local.rt.db, outputs["report"]["id"])["judgements"][-1]["metrics"][0]
    # read from Prometheus for each group by its own label: the query that reached it named the group
    assert metric["label"] == ("Pass" if result == "pass" else "High"), metric
    assert len(metric["canary"]["v"]) >= 5 and len(metric["baseline"]["v"]) >= 5
    assert {r.version for r in failures(answers)} <= {version}  # nothing outside the canary failed
    assert _groups(local) == {"shop-web-v001"}
