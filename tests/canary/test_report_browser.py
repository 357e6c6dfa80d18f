"""The canary report in a real browser (Chromium): the charts are drawn, and nothing breaks the
console's content security policy (no inline style or script)."""

from __future__ import annotations

from typing import Any

from tests.canary.seed import seed_analysis
from tests.web.conftest import Server, browser, login, server

__all__ = ["browser", "login", "server"]


def test_the_report_draws_its_charts_within_the_csp(server: Server, login: Any) -> None:
    analysis = seed_analysis(server.runtime.db, bad=True, execution_id="browser")
    page = login("vic")
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(f"{server.url}/canary/{analysis}")
    assert page.text_content("[data-testid=score]") == "0"
    assert page.locator("[data-testid=interval]").count() == 2
    assert page.locator("svg.canary-chart").count() == 4
    box = page.locator("svg.canary-chart polyline[data-testid=canary-line]").first.bounding_box()
    assert box is not None and box["width"] > 100  # drawn across the chart, not collapsed
    assert not [e for e in page.csp_errors if "Content Security Policy" in e], page.csp_errors
    assert not [u for u in missing if "/canary/" in u or "/static/" in u], missing
