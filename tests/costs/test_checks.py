"""The cost checks in the audit, against simulated AWS: a budget per account, cost-allocation tags
(moto has no ListCostAllocationTags: UNKNOWN with the reason), untagged spend against the threshold
(Cost Explorer answer queued), consolidated billing; a denied cost API is UNKNOWN, not a pass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import boto3
import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.audit import run_audit
from gennaker.ops.findings import Finding
from gennaker.ops.settings import OpsSettings
from gennaker.spec.config import Account, Config, CostSettings
from tests.costs.test_costs import denying_endpoint  # noqa: F401 (fixture)

Queue = Callable[[list[dict[str, Any]]], None]
PAYER = "123456789012"


def audit(endpoint: str, *checks: str, threshold: float = 0.1) -> dict[str, Finding]:
    cfg = Config(
        accounts={"payer": Account(regions=["us-east-1"], endpoint_url=endpoint, account_id=PAYER)},
        costs=CostSettings(untagged_threshold=threshold),
    )
    result = run_audit(AwsSessions(cfg, max_attempts=1), OpsSettings(), checks=list(checks))
    return {f.check_id: f for f in result.findings}


def budget(endpoint: str, linked: str | None) -> None:
    b: dict[str, Any] = {
        "BudgetName": "payer-wide",
        "BudgetLimit": {"Amount": "100", "Unit": "USD"},
        "TimeUnit": "MONTHLY",
        "BudgetType": "COST",
    }
    if linked:
        b["CostFilters"] = {"LinkedAccount": [linked]}
    boto3.client("budgets", region_name="us-east-1", endpoint_url=endpoint).create_budget(AccountId=PAYER, Budget=b)


def test_budget_per_account(moto_endpoint: str) -> None:
    assert audit(moto_endpoint, "golive.cost.budget_per_account")["golive.cost.budget_per_account"].status == "FAIL"
    budget(moto_endpoint, PAYER)
    f = audit(moto_endpoint, "golive.cost.budget_per_account")["golive.cost.budget_per_account"]
    assert f.status == "PASS" and "payer-wide" in f.message


def test_allocation_tags_unknown_with_the_reason_when_the_api_is_missing(moto_endpoint: str) -> None:
    f = audit(moto_endpoint, "golive.cost.allocation_tags_active")["golive.cost.allocation_tags_active"]
    assert f.status == "UNKNOWN" and "list_cost_allocation_tags" in f.message


def untagged_result(untagged: float, tagged: float) -> list[dict[str, Any]]:
    day = date.today() - timedelta(days=5)
    return [
        {
            "ResultsByTime": [
                {
                    "TimePeriod": {"Start": str(day), "End": str(day + timedelta(days=1))},
                    "Total": {},
                    "Groups": [
                        {
                            "Keys": ["gennaker:application$"],
                            "Metrics": {"UnblendedCost": {"Amount": str(untagged), "Unit": "USD"}},
                        },
                        {
                            "Keys": ["gennaker:application$shop"],
                            "Metrics": {"UnblendedCost": {"Amount": str(tagged), "Unit": "USD"}},
                        },
                    ],
                }
            ]
        }
    ]


@pytest.mark.parametrize(("untagged", "status"), [(50.0, "FAIL"), (5.0, "PASS")])
def test_untagged_spend_against_the_threshold(
    moto_endpoint: str, queue_ce: Queue, untagged: float, status: str
) -> None:
    queue_ce(untagged_result(untagged, 100.0 - untagged))
    f = audit(moto_endpoint, "golive.cost.untagged_spend")["golive.cost.untagged_spend"]
    assert f.status == status and f"{untagged / 100:.1%}" in f.message


def test_consolidated_billing(moto_endpoint: str) -> None:
    assert audit(moto_endpoint, "golive.cost.consolidated_billing")["golive.cost.consolidated_billing"].status == "FAIL"
    boto3.client("organizations", region_name="us-east-1", endpoint_url=moto_endpoint).create_organization(
        FeatureSet="ALL"
    )
    f = audit(moto_endpoint, "golive.cost.consolidated_billing")["golive.cost.consolidated_billing"]
    assert f.status == "PASS" and PAYER in f.message


def test_denied_cost_apis_are_unknown_with_the_reason(denying_endpoint: str) -> None:  # noqa: F811
    found = audit(denying_endpoint, "golive.cost.*")
    assert set(found) >= {"golive.cost.budget_per_account", "golive.cost.untagged_spend"}
    for check_id, f in found.items():
        assert f.status == "UNKNOWN", (check_id, f.status, f.message)
        assert "AccessDenied" in f.message, f.message
