"""The READINESS tab's DR drills in a real browser (Debian's Chromium driven by Playwright): the last
drill of each scenario with its status, measured RTO/RPO against the objectives and what was
missing, each linked to its report page; scoped to the caller's applications (404 outside them).
Drill rows are written through the drill store (gennaker.ops.dr.store), as a drill would."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gennaker.ops.dr.store import finish_drill, start_drill
from gennaker.runtime import Runtime

from .conftest import ARTIFACTS, CHROMIUM, Server

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")

MISSING = "no snapshot copy of volume vol-0abc in us-west-2: aws ec2 copy-snapshot --source-region us-east-1"


def step(name: str, status: str, duration: float, detail: str) -> dict[str, Any]:
    return {"name": name, "status": status, "duration_s": duration, "detail": detail}


def add_drill(
    rt: Runtime,
    app: str,
    scenario: str,
    status: str,
    *,
    ago: float,
    rto_s: float | None,
    rpo_s: float | None,
    steps: list[dict[str, Any]],
    missing: list[str] | None = None,
    met: bool | None = True,
) -> str:
    started = time.time() - ago
    with rt.db.begin() as conn:
        drill_id = start_drill(
            conn,
            application=app,
            account="prod",
            scenario=scenario,
            from_region="us-east-1",
            to_region="us-west-2",
            objectives={"rto_s": 1800.0, "rpo_s": 900.0},
            started_at=started,
        )
        report = {"steps": steps, "missing": missing or [], "met_objectives": met, "teardown": ["destroyed it"]}
        rpo = [{"store": "vol-0abc", "kind": "ebs", "age_s": rpo_s}] if rpo_s is not None else []
        finish_drill(conn, drill_id, status, report=report, rto_s=rto_s, rpo=rpo, rpo_s=rpo_s, ended_at=started + 60)
    return drill_id


@pytest.fixture(scope="module")
def drills(server: Server) -> dict[str, str]:
    rt = server.runtime
    ok_steps = [
        step("discover", "PASS", 0.4, "in us-west-2: image ami-1 (shop-1.0.0)"),
        step("deploy", "PASS", 1.2, "shop-drill1-v000 behind the standing load balancer"),
        step("serving", "PASS", 300.0, "1 healthy behind shop-dr"),
        step("dns_secondary", "SKIPPED", 0.0, "no Route 53 failover record for shop"),
    ]
    return {
        "old": add_drill(rt, "shop", "region_loss", "FAILED", ago=7200, rto_s=None, rpo_s=None, steps=[], met=None),
        "loss": add_drill(rt, "shop", "region_loss", "SUCCEEDED", ago=3600, rto_s=312.0, rpo_s=600.0, steps=ok_steps),
        "restore": add_drill(
            rt,
            "shop",
            "restore_data",
            "FAILED",
            ago=600,
            rto_s=None,
            rpo_s=7200.0,
            steps=[step("discover", "FAIL", 0.3, MISSING), step("restore_data", "SKIPPED", 0.0, "not run")],
            missing=[MISSING],
            met=False,
        ),
        "other": add_drill(rt, "billing", "failover_dns", "SUCCEEDED", ago=60, rto_s=5.0, rpo_s=None, steps=[]),
    }


def test_readiness_tab_shows_the_last_drills_and_links_their_reports(
    login: Any, server: Server, drills: dict[str, str]
) -> None:
    page = login("vic")  # a viewer of shop
    page.goto(f"{server.url}/applications/shop/readiness")
    panel = page.locator("[data-testid=dr-drills]")
    latest = panel.locator("[data-testid=dr-latest] tbody tr")
    assert latest.count() == 2  # the newest of each scenario drilled: region_loss, restore_data
    loss = panel.locator("tr[data-scenario=region_loss]")
    assert loss.get_attribute("data-drill") == drills["loss"]  # the newest, not the older failed one
    assert loss.locator("[data-testid=drill-status]").inner_text() == "Succeeded"
    assert loss.locator("[data-testid=rto]").inner_text() == "5m12s (≤ 30m)"
    assert loss.locator("[data-testid=rpo]").inner_text() == "10m (≤ 15m)"
    assert loss.locator("[data-testid=drill-missing]").inner_text() == "nothing"
    restore = panel.locator("tr[data-scenario=restore_data]")
    assert restore.locator("[data-testid=drill-status]").inner_text() == "Failed"
    assert "objectives missed" in restore.inner_text()
    assert restore.locator("[data-testid=rto]").inner_text() == "not measured (vs 30m)"
    assert restore.locator("[data-testid=rpo]").inner_text() == "2h (over 15m)"
    assert MISSING in restore.locator("[data-testid=drill-missing]").inner_text()
    # every drill of shop in the recent list, none of another application's
    recent = [r.get_attribute("data-drill") for r in panel.locator("[data-testid=dr-recent] tbody tr").all()]
    assert recent == [drills["restore"], drills["loss"], drills["old"]]
    assert drills["other"] not in page.content()
    assert "succeeded in the last 90 days" in panel.locator("[data-testid=dr-window]").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "readiness-dr-drills.png"), full_page=True)

    restore.locator("[data-testid=drill-link]").click()
    page.wait_for_url(f"**/applications/shop/dr/{drills['restore']}")
    report = page.locator("[data-testid=dr-drill]")
    assert "restore_data of shop" in report.inner_text()
    assert report.locator("[data-testid=drill-status]").inner_text() == "Failed"
    steps = report.locator("[data-testid=steps] tbody tr")
    assert [s.get_attribute("data-step") for s in steps.all()] == ["discover", "restore_data"]
    assert steps.nth(0).locator(".badge").inner_text() == "FAIL" and "0.3 s" in steps.nth(0).inner_text()
    assert report.locator("[data-testid=missing]").inner_text() == MISSING
    rpo = report.locator("tr[data-testid=rpo]").inner_text()
    assert "2h" in rpo and "15m" in rpo and rpo.rstrip().endswith("no")
    assert "vol-0abc" in report.locator("[data-testid=rpo-stores]").inner_text()
    assert "The drill missed its objectives." in report.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dr-drill-report.png"), full_page=True)
    assert not [e for e in page.csp_errors if "Content Security Policy" in e], page.csp_errors

    # Another application's drill is not found under shop, whatever its id; billing's tab is refused.
    answer = page.goto(f"{server.url}/applications/shop/dr/{drills['other']}")
    assert answer is not None and answer.status == 404
    assert f"no DR drill '{drills['other']}'" in page.content()
    answer = page.goto(f"{server.url}/applications/billing/dr/{drills['other']}")
    assert answer is not None and answer.status == 403


def test_an_application_without_drills_says_how_to_run_one(server: Server, drills: dict[str, str]) -> None:
    with server.api("alice") as c:
        html = c.get("/applications/payments/readiness").text
        assert 'data-testid="dr-empty"' in html and "gennaker dr drill payments" in html
        page = c.get(f"/applications/billing/dr/{drills['other']}")  # an admin reads billing's
        assert page.status_code == 200 and "failover_dns of billing" in page.text
        assert c.get("/applications/billing/dr/no-such-drill").status_code == 404
