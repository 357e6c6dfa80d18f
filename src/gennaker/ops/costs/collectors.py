"""Inventory collectors for the cost checks (registered in ``gennaker.ops.collectors``): the
account's cost-allocation tags (``ce:ListCostAllocationTags``) and its untagged share of the last
30 days (one ``GetCostAndUsage``, $0.01, grouped by the application tag). A denied or missing API
fails the collection, which makes the checks that need it UNKNOWN with the reason."""

from __future__ import annotations

from datetime import date

from gennaker.ops.costs import cost_explorer
from gennaker.ops.costs.query import CostQuery, parse_period
from gennaker.ops.costs.report import build_report
from gennaker.ops.model import Resource
from gennaker.ops.scope import Scope

CE_REGION = "us-east-1"


def cost_allocation_tags(s: Scope) -> list[Resource]:
    c = s.sessions.client(s.account, CE_REGION, "ce")
    out: list[Resource] = []
    token: str | None = None
    for _ in range(100):
        page = c.list_cost_allocation_tags(MaxResults=1000, **({"NextToken": token} if token else {}))
        for tag in page.get("CostAllocationTags", []):
            out.append(s.resource("ce.cost_allocation_tag", tag["TagKey"], name=tag["TagKey"], attrs=dict(tag)))
        token = page.get("NextToken")
        if not token:
            break
    return out


def untagged_spend(s: Scope) -> list[Resource]:
    costs = s.sessions.config.costs
    query = CostQuery(group_by="application", period="30d", granularity="monthly")
    period = parse_period(query.period, date.today())
    client = s.sessions.client(s.account, CE_REGION, "ce")
    amounts, _ = cost_explorer.fetch(client, query, period, costs.tags.application, costs.tags.environment)
    report = build_report(query, "cost_explorer", period, amounts)
    attrs = {
        "TagKey": costs.tags.application,
        "Total": round(report.total, 2),
        "Untagged": round(report.untagged or 0.0, 2),
        "Share": report.untagged_share,
        "Threshold": costs.untagged_threshold,
        "Start": str(period.start),
        "End": str(period.end),
    }
    return [s.resource("ce.untagged_spend", "last-30-days", name="untagged spend, last 30 days", attrs=attrs)]


COST_COLLECTORS = {"cost_allocation_tags": cost_allocation_tags, "untagged_spend": untagged_spend}
