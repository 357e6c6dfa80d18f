"""``metrics: prometheus: {url, timeout}`` in gennaker.yml: a canary with a prometheus metric queries
that Prometheus (a real one, scraping two tiny applications: the fixture of the source's own tests);
a bad URL or timeout is one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gennaker.engine import operations as ops
from gennaker.errors import ValidationFailed
from gennaker.metrics import store as canary_store
from gennaker.runtime import build_runtime
from gennaker.sample_app import SOURCE_DIR
from gennaker.spec.config import config_from_text, load_config
from tests.canary.test_canary_local import ACCOUNT, Local, _groups, _stage, _weights, local
from tests.core.conftest import FAST, finished, stage_status
from tests.metrics.test_prometheus import prometheus

__all__ = ["local", "prometheus"]

# Both groups' value is what the fixture's Prometheus scrapes (two targets up): the same for the
# baseline and the canary, so the canary passes, and only if the source read that Prometheus
# (without a URL the metric is an Error, never a pass). No ${scope} in the query: pipeline validation
# refuses it as an unknown expression root today (reported).
PIPELINE = f"""name: shop-canary-prometheus
application: shop
stages:
  - {{id: bake, type: bake, account: {ACCOUNT}, source: "{SOURCE_DIR}", version: "2.0.0"}}
  - id: canary
    type: canary
    requires: [bake]
    account: {ACCOUNT}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    load_balancers: [shop-web]
    traffic: 10%
    poll_interval: 100ms
    analysis:
      lifetime: 3s
      step: 1s
      metrics:
        - {{name: scraped, source: prometheus, query: 'sum(up{{job="app"}})'}}
"""


def test_a_canary_queries_the_configured_prometheus(local: Local, prometheus: str) -> None:
    config = local.tmp / "gennaker.yml"
    config.write_text(config.read_text() + f"metrics:\n  prometheus: {{url: '{prometheus}/', timeout: 5s}}\n")
    rt = build_runtime(str(local.rt.db.engine.url), config=load_config(str(config)), settings=FAST)
    assert (rt.services.prometheus_url, rt.services.prometheus_timeout) == (prometheus, 5.0)
    local.worker.stop()  # this runtime's worker runs the canary, with the configured Prometheus
    worker = rt.worker(threads=2)
    worker.start()
    try:
        path = local.tmp / "prometheus-canary.yml"
        path.write_text(PIPELINE)
        eid = ops.start_execution(rt.db, rt.load_pipeline(str(path)), {}, "tester", base_dir=str(local.tmp))
        ex = finished(rt, eid, timeout=90)
    finally:
        worker.stop()
        rt.db.dispose()
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, eid)
    outputs = _stage(local, eid)["outputs"]
    assert (outputs["result"], outputs["score"]) == ("pass", 100)
    metric = canary_store.get_analysis(local.rt.db, outputs["report"]["id"])["judgements"][-1]["metrics"][0]
    assert metric["name"] == "scraped" and metric["label"] == "Pass", metric
    assert metric["canary"]["v"] and set(metric["canary"]["v"]) == {2.0}  # two targets up, read from it
    assert _groups(local) == {"shop-web-v001"} and _weights(local) == {"shop-web-v001-1": 1}


def test_without_the_setting_there_is_no_prometheus_url() -> None:
    rt = build_runtime("sqlite://", config=config_from_text("accounts: {}\n"))
    assert rt.services.prometheus_url is None


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        (
            "{url: 'ftp://prom:9090'}",
            "url: must be an http(s) URL such as http://127.0.0.1:9090, not 'ftp://prom:9090'",
        ),
        ("{url: 'localhost:9090'}", "url: must be an http(s) URL"),
        ("{url: 'http://prom:99999'}", "url: has no valid port"),
        ("{url: 'http://prom:9090', timeout: 0s}", "timeout: must be more than 0 and at most 5m"),
        ("{url: 'http://prom:9090', tiemout: 5s}", "tiemout"),
    ],
)
def test_a_bad_prometheus_setting_is_one_line(tmp_path: Path, setting: str, said: str) -> None:
    config = tmp_path / "gennaker.yml"
    config.write_text(f"metrics:\n  prometheus: {setting}\n")
    with pytest.raises(ValidationFailed) as caught:
        load_config(str(config))
    line = str(caught.value)
    assert line.count("\n") == 0 and said in line and line.startswith(f"{config}:2:"), line


def test_the_cli_says_a_bad_prometheus_url_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gennaker.yml"
    config.write_text("metrics:\n  prometheus: {url: 'prometheus:9090'}\n")
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("name: p\napplication: shop\nstages:\n  - {id: one, type: run, command: 'true'}\n")
    r = subprocess.run(
        [sys.executable, "-m", "gennaker", "--config", str(config), "validate", str(pipeline)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().count("\n") == 0 and "url: must be an http(s) URL" in r.stderr, r.stderr
