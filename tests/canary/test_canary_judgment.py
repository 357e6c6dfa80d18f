"""The canary stage's other endings, through the engine on a local account (real groups, real
HAProxy), with scripted metric series: a marginal score pauses for a judgment (promote / abort), an
operator may end the analysis early, a cancel destroys the pair; one fetch per source per interval."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gennaker.engine import operations as ops
from gennaker.metrics import store as canary_store
from gennaker.metrics.sources import Fetched, MetricQuery, Scope, Series
from gennaker.sample_app import SOURCE_DIR
from tests.canary.test_api_console import console
from tests.canary.test_canary_local import ACCOUNT, Local, _groups, _stage, _weights, local
from tests.core.conftest import finished, stage_status, wait_for

__all__ = ["local"]

PIPELINE = """name: shop-canary-{name}
application: shop
stages:
  - {{id: bake, type: bake, account: {account}, source: "{source}", version: "2.0.0"}}
  - id: canary
    type: canary
    requires: [bake]
    account: {account}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    env: {{APP_VERSION: "2.0.0"}}
    load_balancers: [shop-web]
    traffic: 10%
    poll_interval: 100ms
    analysis:
      lifetime: {lifetime}
      interval: 1s
      step: 250ms
      on_marginal: pause
      metrics:
        - {{name: errors, source: scripted, query: errors, direction: increase}}
        - {{name: latency, source: scripted, query: latency, direction: increase}}
"""


class Scripted:
    """A metric source answering fixed series: the canary's ``errors`` rise when ``bad``."""

    name = "scripted"

    def __init__(self, bad: bool) -> None:
        self.bad = bad
        self.fetches: list[tuple[str, ...]] = []

    def check(self, query: str) -> str | None:
        return None

    def fetch(
        self, queries: Sequence[MetricQuery], scopes: Sequence[Scope], start: datetime, end: datetime, step: float
    ) -> Fetched:
        self.fetches.append(tuple(s.server_group for s in scopes))
        baseline, canary = scopes
        flat = Series(tuple(float(i) for i in range(20)), tuple(1.0 + (i % 3) * 0.01 for i in range(20)))
        high = Series(flat.timestamps, tuple(v + 5 for v in flat.values))
        return {
            baseline.server_group: {q.name: flat for q in queries},
            canary.server_group: {q.name: high if (self.bad and q.query == "errors") else flat for q in queries},
        }


def _start(local: Local, name: str, bad: bool, lifetime: str = "3s") -> tuple[str, Scripted]:
    source = Scripted(bad)
    local.rt.services.metric_sources = {"scripted": source}
    path = local.tmp / f"{name}.yml"
    path.write_text(PIPELINE.format(name=name, account=ACCOUNT, source=SOURCE_DIR, lifetime=lifetime))
    pipe = local.rt.load_pipeline(str(path))
    return ops.start_execution(local.rt.db, pipe, {}, "tester", base_dir=str(local.tmp)), source


def _asking(local: Local, eid: str) -> dict[str, Any]:
    def asked() -> Any:
        stage = _stage(local, eid)
        return stage if stage.get("awaiting_judgment") else None

    found: dict[str, Any] = wait_for(asked, timeout=60)
    return found


def _clean(local: Local) -> None:
    assert _groups(local) == {"shop-web-v001"}
    assert _weights(local) == {"shop-web-v001-1": 1}


def test_a_marginal_score_pauses_and_a_promote_passes_it(local: Local) -> None:
    eid, source = _start(local, "marginal", bad=True)
    # errors High, latency Pass: 50, marginal, at or below the marginal threshold: paused.
    wait_for(lambda: "marginal" in (_stage(local, eid).get("message") or ""), timeout=60)
    stage = _stage(local, eid)
    assert stage["awaiting_judgment"] and stage["judgment_request"]["options"] == ["promote", "abort"]
    assert len(source.fetches) == 1  # one fetch for the interval, for both groups
    assert source.fetches[0] == ("shop-web-baseline-v001", "shop-web-canary-v001")
    time.sleep(1.5)  # paused: no further judgement while waiting
    assert len(source.fetches) == 1
    ops.judge(local.rt.db, eid, "canary", "rita", "promote", "looks fine to me")
    ex = finished(local.rt, eid, timeout=60)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, eid)
    outputs = _stage(local, eid)["outputs"]
    assert outputs["promoted_by"] == "rita" and outputs["result"] == "marginal" and outputs["score"] == 50
    assert canary_store.get_analysis(local.rt.db, outputs["report"]["id"])["status"] == "succeeded"
    _clean(local)


def test_an_operator_aborts_a_running_analysis(local: Local) -> None:
    eid, _ = _start(local, "abort", bad=False, lifetime="60s")
    _asking(local, eid)
    ops.judge(local.rt.db, eid, "canary", "rita", "abort", None)
    ex = finished(local.rt, eid, timeout=60)
    assert ex["status"] == "FAILED", stage_status(local.rt, eid)
    stage = _stage(local, eid)
    assert "rita aborted the canary" in (stage.get("message") or "")
    assert canary_store.get_analysis(local.rt.db, stage["outputs"]["report"]["id"])["status"] == "failed"
    _clean(local)


def test_a_cancel_destroys_the_pair(local: Local) -> None:
    eid, _ = _start(local, "cancel", bad=False, lifetime="60s")
    _asking(local, eid)
    ops.cancel(local.rt.db, eid, "tester")
    ex = finished(local.rt, eid, timeout=30)
    assert ex["status"] == "CANCELED"
    wait_for(lambda: _groups(local) == {"shop-web-v001"}, timeout=30)
    wait_for(lambda: _weights(local) == {"shop-web-v001-1": 1}, timeout=10)
    report = _stage(local, eid)["outputs"]["report"]
    wait_for(lambda: canary_store.get_analysis(local.rt.db, report["id"])["status"] == "canceled", timeout=10)


def test_a_good_canary_passes_with_one_fetch_per_interval(local: Local) -> None:
    eid, source = _start(local, "good", bad=False)
    ex = finished(local.rt, eid, timeout=90)
    assert ex["status"] == "SUCCEEDED", stage_status(local.rt, eid)
    outputs = _stage(local, eid)["outputs"]
    assert (outputs["result"], outputs["score"], outputs["judgements"]) == ("pass", 100, 3)
    assert len(source.fetches) == 3
    _clean(local)
    # The stage page links the report; the report draws the series.
    with console(str(local.rt.db.engine.url)) as (client, headers):
        page = client.get(f"/executions/{eid}/stages/canary", headers=headers)
        assert page.status_code == 200, page.text
        link = f'href="/canary/{outputs["report"]["id"]}" data-testid="canary-report"'
        assert link in page.text and "score 100.0 (pass)" in page.text
        report = client.get(outputs["report"]["path"], headers=headers)
        assert report.status_code == 200 and report.text.count('data-testid="canary-line"') == 6
