"""The console in a real browser (Debian's Chromium driven by Playwright): sign in, start, watch,
judge, cancel, filter; screenshots go to artifacts/."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import ARTIFACTS, CHROMIUM, Server

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")


def node(page: Any, stage: str) -> Any:
    return page.locator(f"#execution svg a[data-stage={stage}]")


def test_wrong_password_is_refused(browser: Any, server: Server) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", "not it")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.text_content("[data-testid=login-error]")
    page.close()


def test_start_watch_judge_and_finish(login: Any, server: Server) -> None:
    page = login("rita")
    ARTIFACTS.mkdir(exist_ok=True)
    # Start a manual execution of the demo pipeline with parameters, from the pipelines tab.
    group = page.locator("[data-testid=group][data-pipeline=demo]")
    group.locator("summary", has_text="Start manual execution").click()
    form = group.locator("[data-testid=start-form]")
    form.locator("input[name='param.version']").fill("2.7.1")
    form.locator("select[name='param.region']").select_option("eu-west-1")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/executions/[0-9a-f]+$"))
    execution_id = page.url.rsplit("/", 1)[1]
    assert "version=2.7.1" in page.text_content("#execution")
    assert "region=eu-west-1" in page.text_content("#execution")

    # Watch stages change status live: the page is never reloaded (a marker set in it survives).
    page.evaluate("window.__notReloaded = true")
    sync_api.expect(node(page, "bake")).to_have_attribute("data-status", "SUCCEEDED", timeout=20_000)
    sync_api.expect(node(page, "canary")).to_have_attribute("data-status", "SUCCEEDED", timeout=20_000)
    for parallel in ("verify", "itest", "utest"):
        assert node(page, parallel).get_attribute("data-status") == "SUCCEEDED"
    sync_api.expect(node(page, "judge")).to_have_attribute("data-status", "WAITING", timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True
    # Parallel branches are drawn side by side: same column (x), different rows (y).
    xs = {s: node(page, s).locator("rect").get_attribute("x") for s in ("verify", "itest", "utest")}
    ys = {s: node(page, s).locator("rect").get_attribute("y") for s in ("verify", "itest", "utest")}
    assert len(set(xs.values())) == 1 and len(set(ys.values())) == 3
    assert int(node(page, "canary").locator("rect").get_attribute("x")) > int(xs["verify"])

    # Open the judgment (clickable stage), read its instructions, approve with a comment.
    node(page, "judge").click()
    page.wait_for_url(re.compile(rf"/executions/{execution_id}/stages/judge$"))
    assert "canary scores are correct" in page.text_content("[data-testid=instructions]")
    page.screenshot(path=str(ARTIFACTS / "console-execution-judgment.png"), full_page=True)
    page.fill("[data-testid=judge-form] input[name=comment]", "scores look fine")
    page.click("[data-testid=judge-continue]")
    sync_api.expect(page.locator("[data-testid=judgment]")).to_contain_text("continue", timeout=10_000)
    assert "scores look fine" in page.text_content("[data-testid=judgment]")
    # The pipeline continues: prod runs, then the 4-hour wait, which we skip.
    sync_api.expect(node(page, "prod")).to_have_attribute("data-status", "SUCCEEDED", timeout=20_000)
    sync_api.expect(node(page, "wait")).to_have_attribute("data-status", "WAITING", timeout=20_000)
    node(page, "wait").click()
    page.click("[data-testid=skip]")
    sync_api.expect(page.locator("[data-testid=execution]")).to_have_attribute(
        "data-status", "SUCCEEDED", timeout=20_000
    )
    # Run-stage details: the Step | Started | Duration | Status table, outputs and the log.
    node(page, "bake").click()
    page.wait_for_url(re.compile(r"/stages/bake$"))
    assert page.locator("[data-testid=tasks] th").all_text_contents() == ["Step", "Started", "Duration", "Status"]
    assert "runCommand" in page.text_content("[data-testid=tasks]")
    assert "ami-123" in page.text_content("[data-testid=outputs]")
    assert "baking 2.7.1" in page.text_content("[data-testid=log]")
    page.screenshot(path=str(ARTIFACTS / "console-execution.png"), full_page=True)
    page.goto(f"{server.url}/applications/shop/pipelines")
    page.screenshot(path=str(ARTIFACTS / "console-pipelines.png"), full_page=True)
    # Audit: the judgment was recorded with who and from where.
    with server.api("alice") as c:
        entries = c.get("/api/audit", params={"execution": execution_id}).json()
    judged = [e for e in entries if e["action"] == "judge"]
    assert judged and judged[0]["actor"] == "rita" and judged[0]["client"] == "127.0.0.1"
    assert judged[0]["status_code"] == 303
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]


def test_live_log_of_a_running_stage(login: Any, server: Server) -> None:
    page = login("olga")
    execution_id = server.start("slow", user="olga")
    page.goto(f"{server.url}/executions/{execution_id}/stages/sleep")
    sync_api.expect(page.locator("[data-testid=log]")).to_contain_text("started", timeout=15_000)
    with server.api("olga") as c:
        c.post(f"/api/executions/{execution_id}/cancel", json={}).raise_for_status()


def test_viewer_cannot_approve(login: Any, server: Server) -> None:
    execution_id = server.start("demo", {"version": "1"})
    server.wait_stage(execution_id, "judge", "WAITING")
    page = login("vic")
    page.goto(f"{server.url}/executions/{execution_id}/stages/judge")
    assert page.locator("[data-testid=judge-form]").count() == 0
    assert page.locator("[data-testid=cannot-judge]").is_visible()
    assert page.locator("[data-testid=cancel]").count() == 0  # and no operator actions either
    with server.api("vic") as c:
        r = c.post(f"/api/executions/{execution_id}/stages/judge/judge", json={"choice": "continue"})
    assert r.status_code == 403
    assert server.status(execution_id)["stages"][5]["status"] == "WAITING"
    with server.api("alice") as c:
        c.post(f"/api/executions/{execution_id}/cancel", json={}).raise_for_status()


def test_judgment_restricted_to_a_role_refuses_another_operator(login: Any, server: Server) -> None:
    execution_id = server.start("demo", {"version": "2"})
    server.wait_stage(execution_id, "judge", "WAITING")
    page = login("olga")
    page.goto(f"{server.url}/executions/{execution_id}/stages/judge")
    assert page.locator("[data-testid=judge-form]").count() == 0
    assert "release-managers" in page.text_content("[data-testid=stage]")
    assert page.locator("[data-testid=cancel]").count() == 1  # she is an operator all the same
    with server.api("olga") as c:
        r = c.post(f"/api/executions/{execution_id}/stages/judge/judge", json={"choice": "continue"})
    assert r.status_code == 403
    assert "release-managers" in r.json()["message"]
    # An admin always may.
    with server.api("alice") as c:
        c.post(f"/api/executions/{execution_id}/stages/judge/judge", json={"choice": "stop"}).raise_for_status()
    server.wait_stage(execution_id, "judge", "TERMINAL")


def test_cancel_a_running_execution(login: Any, server: Server) -> None:
    page = login("olga")
    execution_id = server.start("slow", user="olga")
    page.goto(f"{server.url}/executions/{execution_id}")
    sync_api.expect(node(page, "sleep")).to_have_attribute("data-status", "RUNNING", timeout=15_000)
    page.once("dialog", lambda d: d.accept())  # the confirmation
    page.click("[data-testid=cancel]")
    sync_api.expect(page.locator("[data-testid=execution]")).to_have_attribute(
        "data-status", "CANCELED", timeout=15_000
    )
    assert "canceled by olga" in page.text_content("[data-testid=execution-message]")
    assert node(page, "after").get_attribute("data-status") == "NOT_STARTED"


def test_filters_narrow_the_list(login: Any, server: Server) -> None:
    quick = server.start("quick")
    slow = server.start("slow")
    with server.api("alice") as c:
        c.post(f"/api/executions/{slow}/cancel", json={}).raise_for_status()
    end = time.monotonic() + 20
    while server.status(quick)["status"] != "SUCCEEDED":
        assert time.monotonic() < end, "the quick pipeline did not finish"
        time.sleep(0.1)
    page = login("vic")
    rows = page.locator("[data-testid=execution-row]")
    total = rows.count()
    assert total >= 2
    pipelines = set(page.eval_on_selector_all("[data-testid=execution-row]", "rs => rs.map(r => r.dataset.pipeline)"))
    assert {"quick", "slow"} <= pipelines
    # Pipeline checkbox: only quick's executions remain (live, through htmx, and in the URL).
    page.check("#filters input[name=pipeline][value=quick]")
    page.wait_for_url(re.compile(r"pipeline=quick"))
    sync_api.expect(page.locator("[data-testid=group][data-pipeline=slow]")).to_have_count(0)
    assert set(page.eval_on_selector_all("[data-testid=execution-row]", "rs => rs.map(r => r.dataset.pipeline)")) == {
        "quick"
    }
    page.uncheck("#filters input[name=pipeline][value=quick]")
    # Status checkbox: only canceled executions.
    page.check("#filters input[name=status][value=CANCELED]")
    page.wait_for_url(re.compile(r"status=CANCELED"))
    sync_api.expect(page.locator("[data-testid=execution-row][data-status=SUCCEEDED]")).to_have_count(0)
    statuses = set(page.eval_on_selector_all("[data-testid=execution-row]", "rs => rs.map(r => r.dataset.status)"))
    assert statuses == {"CANCELED"}
    # Search text.
    page.uncheck("#filters input[name=status][value=CANCELED]")
    page.fill("#search", "quic")
    sync_api.expect(page.locator("[data-testid=group][data-pipeline=slow]")).to_have_count(0)
    assert page.locator("[data-testid=group][data-pipeline=quick]").count() == 1
