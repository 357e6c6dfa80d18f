"""The COSTS page and an application's COSTS tab in a real browser (Chromium): the stacked chart is
drawn within the CSP, the breakdown matches the data, and a restricted viewer sees only their
application's spend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gennaker.runtime import build_runtime
from gennaker.spec.config import Account, CostSettings
from gennaker.web import store
from tests.costs.conftest import bill, expected, write_focus
from tests.web.conftest import DEMO, QUICK, USERS, Server, auth_config, browser, login, register, serve

__all__ = ["browser", "login"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The console with FOCUS files in a local directory as its cost source (no AWS needed)."""
    root = tmp_path_factory.mktemp("costs-console")
    exports = root / "focus"
    exports.mkdir()
    write_focus(exports / "part-0.parquet", bill())
    cfg = auth_config()
    cfg.accounts = {"payer": Account(regions=["us-east-1"])}
    cfg.costs = CostSettings(source="focus", uri=str(exports))
    rt = build_runtime(str(root / "gennaker.db"), config=cfg)
    for text in (DEMO, QUICK):
        register(rt, text)
    tokens = {u: store.create_token(rt.db, f"{u}-t", u, roles, "fixture")["token"] for u, roles in USERS.items()}
    for url in serve(rt):
        yield Server(url=url, runtime=rt, tokens=tokens)
    rt.db.dispose()


def test_costs_page_draws_a_stacked_chart_and_the_breakdown(server: Server, login: Any) -> None:
    page = login("alice")
    page.click("nav >> text=Costs")
    page.select_option("select[name=by]", "application")
    page.fill("input[name=period]", "2026-10")
    page.click("button:has-text('Show')")
    page.wait_for_selector("[data-testid=costs-chart]")
    want = expected("application")
    shown = float(page.text_content("[data-testid=costs-total]").replace(",", ""))
    assert shown == pytest.approx(sum(want.values()), abs=0.006)
    keys = [r.get_attribute("data-key") for r in page.locator("[data-testid=costs-row]").all()]
    assert sorted(keys) == sorted(want)
    assert "(untagged)" in page.text_content("[data-testid=costs-table]")
    assert page.locator("[data-testid=costs-untagged]").count() == 1
    assert page.locator("rect[data-testid=costs-bar]").count() == 31 * 3  # 31 days x 3 stacked rows
    box = page.locator("[data-testid=costs-chart]").bounding_box()
    assert box is not None and box["width"] > 300
    assert "shop" in page.text_content("[data-testid=costs-movers]")
    assert not [e for e in page.csp_errors if "Content Security Policy" in e], page.csp_errors


def test_an_application_tab_shows_its_own_cost(server: Server, login: Any) -> None:
    page = login("vic")  # shop:viewer
    page.goto(f"{server.url}/applications/shop/costs?period=2026-10")
    page.wait_for_selector("[data-testid=costs-chart]")
    shop = sum(ln.cost for ln in bill() if ln.app == "shop" and ln.day.month == 10)
    shown = float(page.text_content("[data-testid=costs-total]").replace(",", ""))
    assert shown == pytest.approx(shop, abs=0.006)
    assert page.locator("nav.tabs a.active").text_content() == "COSTS"
    page.goto(f"{server.url}/costs?by=application&period=2026-10")  # the global page, scoped to shop
    keys = [r.get_attribute("data-key") for r in page.locator("[data-testid=costs-row]").all()]
    assert keys == ["shop"]
    r = page.goto(f"{server.url}/costs?by=colour")
    assert r is not None and r.status == 400
    assert "cannot group by 'colour'" in page.text_content("[data-testid=costs-error]")
