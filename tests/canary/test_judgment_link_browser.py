"""The Go/No-Go after a canary links to the canary's report, in a real browser (Chromium): the
judgment panel names the canary's score and opens its report, and the canary's row in the stage
table links it too. The canary runs through the engine on a local account (real HAProxy, real
groups) with scripted metric series, so it is judged in seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from gennaker.api.app import create_app
from gennaker.engine import operations as ops
from gennaker.runtime import build_runtime
from gennaker.sample_app import SOURCE_DIR
from gennaker.spec.config import Config
from gennaker.web.console import judged_reports
from tests.canary.test_canary_judgment import Scripted
from tests.canary.test_canary_local import ACCOUNT, Local, local
from tests.conftest import free_port
from tests.core.conftest import detail, finished, stage_status, wait_for
from tests.web.conftest import Server, auth_config, browser, login

__all__ = ["browser", "local", "login"]

PIPELINE = f"""name: shop-canary-judged
application: shop
stages:
  - {{id: bake, type: bake, account: {ACCOUNT}, source: "{SOURCE_DIR}", version: "2.0.0"}}
  - id: canary
    name: Deploy Canary
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
      lifetime: 2s
      interval: 1s
      step: 250ms
      metrics:
        - {{name: errors, source: scripted, query: errors, direction: increase}}
        - {{name: latency, source: scripted, query: latency, direction: increase}}
  - {{id: smoke, type: run, requires: [canary], command: "echo smoke tests passed"}}
  - id: go
    name: "Manual Judgment: Go/No Go"
    type: manual_judgment
    requires: [smoke]
    instructions: "The canary scored ${{stages.canary.outputs.score}}: verify the canary scores are correct."
    options: [approve, reject]
"""


@pytest.fixture
def server(local: Local) -> Iterator[Server]:
    """The console, with sign-in, on the canary's database (the local fixture's worker runs the stages)."""
    rt = build_runtime(
        str(local.rt.db.engine.url), config=Config(accounts=local.rt.config.accounts, auth=auth_config().auth)
    )
    port = free_port()
    uv = uvicorn.Server(
        uvicorn.Config(create_app(rt, with_worker=False), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < end and thread.is_alive(), "the console did not start"
        time.sleep(0.05)
    try:
        yield Server(url=f"http://127.0.0.1:{port}", runtime=rt, tokens={})
    finally:
        uv.should_exit = True
        thread.join(timeout=15)
        rt.db.dispose()


def test_the_judgment_after_a_canary_links_its_report(local: Local, server: Server, login: Any) -> None:
    local.rt.services.metric_sources = {"scripted": Scripted(bad=False)}
    eid = local.start("judged", PIPELINE)

    def judging() -> Any:
        return next(
            (s for s in detail(local.rt, eid)["stages"] if s["stage_id"] == "go" and s["awaiting_judgment"]), None
        )

    wait_for(judging, timeout=60)
    stages = {s["stage_id"]: s for s in detail(local.rt, eid)["stages"]}
    report = stages["canary"]["outputs"]["report"]
    assert stages["canary"]["outputs"]["score"] == 100, stage_status(local.rt, eid)

    page = login("rita")
    page.goto(f"{server.url}/executions/{eid}/stages/go")
    assert "The canary scored 100.0" in page.text_content("[data-testid=instructions]")
    link = page.locator("[data-testid=judgment-canary-report] a")
    assert link.count() == 1 and link.get_attribute("href") == f"/canary/{report['id']}"
    assert "Deploy Canary: score 100.0 (pass)" in link.text_content()
    assert page.locator("[data-testid=judge-approve]").count() == 1  # the link sits beside the judge form
    link.click()
    page.wait_for_url(f"{server.url}/canary/{report['id']}")
    assert page.text_content("[data-testid=score]") == "100"

    # The stage table links the canary's report from the canary's row, and from no other row.
    page.goto(f"{server.url}/executions/{eid}")
    rows = page.locator("[data-testid=stage-canary-report]")
    assert rows.count() == 1 and rows.get_attribute("data-stage") == "canary"
    assert rows.get_attribute("href") == f"/canary/{report['id']}"
    assert not [e for e in page.csp_errors if "Content Security Policy" in e], page.csp_errors

    ops.judge(local.rt.db, eid, "go", "rita", "approve", None)
    assert finished(local.rt, eid, timeout=30)["status"] == "SUCCEEDED"


def _stage(stage_id: str, requires: list[str], report: str | None = None) -> dict[str, Any]:
    outputs = {"report": {"id": report, "path": f"/canary/{report}"}, "score": 90.0, "result": "pass"} if report else {}
    return {"stage_id": stage_id, "name": stage_id.title(), "requires": requires, "outputs": outputs}


def test_judged_reports_are_the_nearest_canaries_upstream() -> None:
    stages = [
        _stage("old-canary", [], "r0"),
        _stage("canary", ["old-canary"], "r1"),
        _stage("tests", ["canary"]),
        _stage("go", ["tests"]),
        _stage("own", [], "r2"),
        _stage("alone", []),
    ]
    by_id = {s["stage_id"]: s for s in stages}
    assert [r["id"] for r in judged_reports(stages, by_id["go"])] == ["r1"]  # nearest, not every one
    assert [r["id"] for r in judged_reports(stages, by_id["own"])] == ["r2"]  # a canary judged itself
    assert judged_reports(stages, by_id["alone"]) == [] and judged_reports(stages, None) == []
