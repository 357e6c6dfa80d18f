"""The ACCOUNTS page and an account's page in a real browser (Chromium): the tree with the payer,
the unreachable account with its reason, scores from the stored audit; a restricted viewer sees only
the accounts holding its application."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gennaker.runtime import build_runtime
from gennaker.spec.config import Account
from gennaker.web import store
from tests.accounts.conftest import Org
from tests.web.conftest import QUICK, USERS, Server, auth_config, browser, login, register, serve

__all__ = ["browser", "login"]


@pytest.fixture
def server(audited: Org) -> Iterator[Server]:
    cfg = auth_config()
    endpoint = audited.endpoint
    cfg.accounts = {
        "payer": Account(regions=["us-east-1", "eu-west-1"], endpoint_url=endpoint),
        "legacy": Account(
            regions=["eu-west-1"],
            account_id="999999999999",
            role_arn="arn:aws:iam::999999999999:role/Gennaker",
            endpoint_url=f"http://127.0.0.1:{audited.dead_port}",
        ),
    }
    cfg.ops = {"organization": {"management_account": "payer"}}
    rt = build_runtime(audited.db, config=cfg)
    register(rt, QUICK)  # application shop (the sign-in lands on its pipelines)
    tokens = {u: store.create_token(rt.db, f"{u}-t", u, roles, "fixture")["token"] for u, roles in USERS.items()}
    for url in serve(rt):
        yield Server(url=url, runtime=rt, tokens=tokens)
    rt.db.dispose()


def test_accounts_page_shows_the_tree_reachability_and_scores(server: Server, login: Any, audited: Org) -> None:
    page = login("alice")
    page.click("nav >> text=Accounts")
    page.wait_for_selector("[data-testid=accounts-table]")
    rows = {r.get_attribute("data-name"): r for r in page.locator("[data-testid=account-row]").all()}
    assert set(rows) == {"payer", "legacy", f"org-{audited.shop_prod}", f"org-{audited.cart_dev}"}
    assert "PAYER" in (rows["payer"].text_content() or "")
    assert rows["legacy"].get_attribute("data-reachable") == "no"
    assert "✗" in (rows["legacy"].locator("[data-testid=reach]").text_content() or "")
    assert (rows["payer"].locator("[data-testid=reach]").text_content() or "").strip() == "✓"
    assert "Root/prod/web" in (rows[f"org-{audited.shop_prod}"].text_content() or "")
    assert rows["payer"].locator("[data-testid=score]").text_content() == "0"
    page.click(f"a[href='/accounts/org-{audited.cart_dev}']")
    page.wait_for_selector("[data-testid=account]")
    assert page.text_content("[data-testid=account-id]") == audited.cart_dev
    assert "dev" in (page.text_content("[data-testid=account-environment]") or "")
    assert "cart" in (page.text_content("[data-testid=account-applications]") or "")
    with server.api("alice") as c:  # the score the API computes from the stored audit's findings
        want = c.get(f"/api/accounts/{audited.cart_dev}").json()["score"]
    assert want is not None and page.text_content("[data-testid=account-score]") == f"{want:g}"
    assert not [e for e in page.csp_errors if "Content Security Policy" in e], page.csp_errors


def test_a_restricted_viewer_sees_only_its_accounts(server: Server, login: Any, audited: Org) -> None:
    page = login("vic")  # shop:viewer
    page.goto(f"{server.url}/accounts")
    names = [r.get_attribute("data-name") for r in page.locator("[data-testid=account-row]").all()]
    assert names == ["payer"]
    r = page.goto(f"{server.url}/accounts/org-{audited.cart_dev}")
    assert r is not None and r.status == 404
    assert "no account named" in (page.text_content("[data-testid=error-message]") or "")
