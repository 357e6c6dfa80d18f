"""``gennaker budgets list|plan|apply`` against simulated Budgets: ours created per account and
application with notifications, idempotent, a changed configuration planned, a user's budget untouched."""

from __future__ import annotations

import json
from collections.abc import Callable

import boto3
import pytest

from tests.costs.conftest import Setup

Cli = Callable[..., tuple[int, str, str]]
PAYER = "123456789012"  # moto's account
TOPIC = "arn:aws:sns:us-east-1:123456789012:gennaker-costs"
BUDGETS = (
    "  budgets:\n    accounts: {payer: 500}\n    applications: {shop: 120, cart: 80}\n"
    f"    topic_arn: {TOPIC}\n    email: finops@example.com\n"
)


@pytest.fixture
def budgets_client(setup: Setup) -> object:
    return boto3.client("budgets", region_name="us-east-1", endpoint_url=setup.endpoint)


def users_budget(client: object) -> None:
    client.create_budget(  # type: ignore[attr-defined]
        AccountId=PAYER,
        Budget={
            "BudgetName": "team-sandbox",
            "BudgetLimit": {"Amount": "50", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
        },
    )


def test_apply_creates_ours_with_notifications_and_is_idempotent(
    setup: Setup, cli: Cli, budgets_client: object
) -> None:
    users_budget(budgets_client)
    setup.config(BUDGETS)
    rc, out, err = cli("budgets", "plan", "--json")
    assert rc == 0, err
    assert {(c["action"], c["name"]) for c in json.loads(out)} == {
        ("create", "gennaker-account-payer"),
        ("create", "gennaker-app-shop"),
        ("create", "gennaker-app-cart"),
    }
    rc, out, err = cli("budgets", "apply")
    assert rc == 0, err
    assert "3 change(s) made, 0 failed" in out
    described = {
        b["BudgetName"]: b
        for b in budgets_client.describe_budgets(AccountId=PAYER)["Budgets"]  # type: ignore[attr-defined]
    }
    assert set(described) == {"team-sandbox", "gennaker-account-payer", "gennaker-app-shop", "gennaker-app-cart"}
    assert float(described["gennaker-app-shop"]["BudgetLimit"]["Amount"]) == 120
    assert described["gennaker-app-shop"]["CostFilters"] == {"TagKeyValue": ["user:gennaker:application$shop"]}
    assert described["gennaker-account-payer"]["CostFilters"] == {"LinkedAccount": [PAYER]}
    notes = budgets_client.describe_notifications_for_budget(  # type: ignore[attr-defined]
        AccountId=PAYER, BudgetName="gennaker-app-shop"
    )["Notifications"]
    assert {(n["NotificationType"], n["Threshold"]) for n in notes} == {("ACTUAL", 80.0), ("FORECASTED", 100.0)}
    rc, out, _ = cli("budgets", "apply")
    assert rc == 0 and "nothing to change" in out  # the second apply changes nothing
    _, out, _ = cli("budgets", "plan", "--json")
    assert {c["action"] for c in json.loads(out)} == {"keep"}


def test_removed_configuration_deletes_only_ours(setup: Setup, cli: Cli, budgets_client: object) -> None:
    users_budget(budgets_client)
    setup.config(BUDGETS)
    assert cli("budgets", "apply")[0] == 0
    setup.config("  budgets:\n    applications: {shop: 120}\n")
    _, out, _ = cli("budgets", "plan", "--json")
    plan = {c["name"]: c["action"] for c in json.loads(out)}
    assert plan == {"gennaker-app-shop": "keep", "gennaker-account-payer": "delete", "gennaker-app-cart": "delete"}
    assert cli("budgets", "apply")[0] == 0
    names = {b["BudgetName"] for b in budgets_client.describe_budgets(AccountId=PAYER)["Budgets"]}  # type: ignore[attr-defined]
    assert names == {"team-sandbox", "gennaker-app-shop"}  # the user's budget stays


def test_a_changed_limit_is_planned_as_an_update(setup: Setup, cli: Cli) -> None:
    setup.config(BUDGETS)
    assert cli("budgets", "apply")[0] == 0
    setup.config(BUDGETS.replace("shop: 120", "shop: 150"))
    _, out, _ = cli("budgets", "plan", "--json")
    shop = next(c for c in json.loads(out) if c["name"] == "gennaker-app-shop")
    assert (shop["action"], shop["reason"]) == ("update", "limit 120 -> 150")


def test_list_shows_limit_actual_forecast_and_ownership(setup: Setup, cli: Cli, budgets_client: object) -> None:
    users_budget(budgets_client)
    setup.config(BUDGETS)
    cli("budgets", "apply")
    rc, out, _ = cli("budgets", "list", "--json")
    rows = {b["name"]: b for b in json.loads(out)}
    assert rows["team-sandbox"]["owned"] is False and rows["gennaker-app-cart"]["owned"] is True
    assert rows["gennaker-app-cart"]["limit"] == 80 and rows["gennaker-app-cart"]["actual"] == 0  # moto: no spend
    assert rows["gennaker-app-cart"]["time_unit"] == "MONTHLY"
    rc, out, _ = cli("budgets", "list")
    assert rc == 0 and "gennaker-app-cart" in out and "team-sandbox" in out


def test_budgets_beside_costs(setup: Setup, cli: Cli, queue_ce: Callable[[list[dict[str, object]]], None]) -> None:
    from tests.costs.conftest import ce_result

    setup.config(BUDGETS)
    cli("budgets", "apply")
    queue_ce(ce_result("application"))
    rc, out, err = cli("costs", "--by", "application", "--period", "2026-10", "--budgets")
    assert rc == 0, err
    assert "(untagged)" in out and "budgets (actual and forecast" in out and "gennaker-app-shop" in out
