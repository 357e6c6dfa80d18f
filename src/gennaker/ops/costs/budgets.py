"""AWS Budgets: read them (limit, actual and forecast spend) beside costs, and keep one monthly
budget per configured account and per application (``costs.budgets`` in gennaker.yml).

Budgets live in the cost account (the payer): an account's budget filters on its linked account id,
an application's on its cost-allocation tag. Ours are known by name (``gennaker-account-…``,
``gennaker-app-…``): plan and apply create what is missing, update a changed limit, delete ours that
are no longer configured, and never touch a budget whose name is not ours.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.errors import CloudError
from gennaker.ops.collect import account_id
from gennaker.ops.costs.service import CE_REGION, DENIED, CostAccessDenied, cost_account
from gennaker.spec.config import Config

PREFIX = "gennaker-"


def budget_name(kind: str, name: str) -> str:
    """Budget names allow neither ':' nor '\\'; ours start with ``gennaker-``."""
    return f"{PREFIX}{kind}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"[:100]


@dataclass
class Budget:
    name: str
    limit: float
    actual: float
    forecast: float | None
    unit: str
    time_unit: str
    filters: dict[str, list[str]]
    owned: bool  # ours (by name): apply may change or delete it

    @property
    def used(self) -> float | None:
        return None if self.limit == 0 else self.actual / self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "used": self.used}


def _client(sessions: AwsSessions, config: Config) -> tuple[AwsClient, str]:
    name = cost_account(config)
    region = CE_REGION
    return sessions.client(name, region, "budgets"), account_id(sessions, name, sessions.account(name).regions[0])


def _amount(spend: dict[str, Any] | None) -> float | None:
    return None if not spend else float(spend.get("Amount", 0) or 0)


def list_budgets(sessions: AwsSessions, config: Config) -> list[Budget]:
    client, payer = _client(sessions, config)
    try:
        raw = list(client.paginate("describe_budgets", "Budgets", AccountId=payer))
    except CloudError as exc:
        if exc.code in DENIED:
            raise CostAccessDenied(
                f"Budgets (budgets:ViewBudget) denied in account {exc.account}: {exc.code}"
            ) from None
        raise
    out = []
    for b in raw:
        spend = b.get("CalculatedSpend") or {}
        limit = b.get("BudgetLimit") or {}
        out.append(
            Budget(
                name=b["BudgetName"],
                limit=float(limit.get("Amount", 0) or 0),
                actual=_amount(spend.get("ActualSpend")) or 0.0,
                forecast=_amount(spend.get("ForecastedSpend")),
                unit=str(limit.get("Unit", "USD")),
                time_unit=str(b.get("TimeUnit", "")),
                filters={k: list(v) for k, v in (b.get("CostFilters") or {}).items()},
                owned=b["BudgetName"].startswith(PREFIX),
            )
        )
    return sorted(out, key=lambda b: b.name)


@dataclass
class BudgetChange:
    action: str  # create | update | delete | keep
    name: str
    limit: float | None
    filters: dict[str, list[str]]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def desired(sessions: AwsSessions, config: Config) -> dict[str, tuple[float, dict[str, list[str]]]]:
    spec = config.costs.budgets
    want: dict[str, tuple[float, dict[str, list[str]]]] = {}
    for name, limit in spec.accounts.items():
        acct = sessions.account(name)
        aid = account_id(sessions, name, acct.regions[0])
        want[budget_name("account", name)] = (limit, {"LinkedAccount": [aid]})
    tag = config.costs.tags.application
    for app, limit in spec.applications.items():
        want[budget_name("app", app)] = (limit, {"TagKeyValue": [f"user:{tag}${app}"]})
    return want


def plan(sessions: AwsSessions, config: Config) -> list[BudgetChange]:
    existing = {b.name: b for b in list_budgets(sessions, config)}
    changes = []
    for name, (limit, filters) in sorted(desired(sessions, config).items()):
        have = existing.get(name)
        if have is None:
            changes.append(BudgetChange("create", name, limit, filters, "configured, missing"))
        elif abs(have.limit - limit) > 0.005 or have.filters != filters:
            changes.append(BudgetChange("update", name, limit, filters, f"limit {have.limit:g} -> {limit:g}"))
        else:
            changes.append(BudgetChange("keep", name, limit, filters, "as configured"))
    wanted = desired(sessions, config)
    for name, have in sorted(existing.items()):
        if have.owned and name not in wanted:
            changes.append(BudgetChange("delete", name, have.limit, have.filters, "ours, no longer configured"))
    return changes


def _notifications(config: Config) -> list[dict[str, Any]]:
    spec = config.costs.budgets
    subscribers = []
    if spec.topic_arn:
        subscribers.append({"SubscriptionType": "SNS", "Address": spec.topic_arn})
    if spec.email:
        subscribers.append({"SubscriptionType": "EMAIL", "Address": spec.email})
    if not subscribers:
        return []
    return [
        {
            "Notification": {
                "NotificationType": kind,
                "ComparisonOperator": "GREATER_THAN",
                "Threshold": threshold,
                "ThresholdType": "PERCENTAGE",
            },
            "Subscribers": subscribers,
        }
        for kind, threshold in (("ACTUAL", spec.alert_percent), ("FORECASTED", 100.0))
    ]


def _budget(name: str, limit: float, filters: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "BudgetName": name,
        "BudgetLimit": {"Amount": f"{limit:.2f}", "Unit": "USD"},
        "CostFilters": filters,
        "TimeUnit": "MONTHLY",
        "BudgetType": "COST",
    }


def apply(sessions: AwsSessions, config: Config, changes: list[BudgetChange]) -> list[tuple[BudgetChange, str | None]]:
    """Carry out each change; returns it with the error, if any (one failure does not stop the rest)."""
    client, payer = _client(sessions, config)
    done: list[tuple[BudgetChange, str | None]] = []
    for change in changes:
        if change.action == "keep":
            continue
        assert change.name.startswith(PREFIX)  # never another's budget
        try:
            if change.action == "create":
                assert change.limit is not None
                client.create_budget(
                    AccountId=payer,
                    Budget=_budget(change.name, change.limit, change.filters),
                    NotificationsWithSubscribers=_notifications(config),
                )
            elif change.action == "update":
                assert change.limit is not None
                client.update_budget(AccountId=payer, NewBudget=_budget(change.name, change.limit, change.filters))
            elif change.action == "delete":
                client.delete_budget(AccountId=payer, BudgetName=change.name)
            done.append((change, None))
        except CloudError as exc:
            done.append((change, str(exc)))
    return done
