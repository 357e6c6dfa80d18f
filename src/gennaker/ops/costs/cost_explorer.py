"""Source 1: Cost Explorer ``GetCostAndUsage``. One request (and its pages) answers a whole query:
DAILY over the previous and the current period together, grouped by one dimension or tag; monthly
buckets are sums of those days, so both periods are compared day for day. Each request costs $0.01,
hence the cache in ``gennaker.ops.costs.service``."""

from __future__ import annotations

from datetime import date
from typing import Any

from gennaker.cloud.aws.session import AwsClient
from gennaker.ops.costs.query import UNTAGGED, CostQuery, Period, tag_key
from gennaker.ops.costs.report import DailyAmount

DIMENSION = {"account": "LINKED_ACCOUNT", "service": "SERVICE", "region": "REGION"}
METRIC = {"unblended": "UnblendedCost", "amortized": "AmortizedCost"}
MAX_PAGES = 1000  # a runaway NextPageToken loop stops here instead of billing forever


def request(query: CostQuery, period: Period, app_key: str, env_key: str) -> dict[str, Any]:
    key = tag_key(query.group_by, app_key, env_key)
    group = {"Type": "TAG", "Key": key} if key else {"Type": "DIMENSION", "Key": DIMENSION[query.group_by]}
    body: dict[str, Any] = {
        "TimePeriod": {"Start": str(period.previous_start), "End": str(period.end)},
        "Granularity": "DAILY",
        "Metrics": [METRIC[query.metric]],
        "GroupBy": [group],
    }
    if query.applications is not None:
        body["Filter"] = {"Tags": {"Key": app_key, "Values": sorted(query.applications), "MatchOptions": ["EQUALS"]}}
    return body


def group_value(raw: str, tagged: bool) -> str:
    """A TAG group key reads ``KEY$value`` (``KEY$`` when untagged); a dimension key is the value."""
    if not tagged:
        return raw
    return raw.split("$", 1)[1] if "$" in raw else UNTAGGED


def fetch(
    client: AwsClient, query: CostQuery, period: Period, app_key: str, env_key: str
) -> tuple[list[DailyAmount], int]:
    """The daily amounts per group, and how many requests they cost."""
    body = request(query, period, app_key, env_key)
    tagged = body["GroupBy"][0]["Type"] == "TAG"
    metric = METRIC[query.metric]
    amounts: list[DailyAmount] = []
    requests = 0
    token: str | None = None
    while requests < MAX_PAGES:
        page = client.get_cost_and_usage(**body, **({"NextPageToken": token} if token else {}))
        requests += 1
        for result in page.get("ResultsByTime", []):
            day = date.fromisoformat(result["TimePeriod"]["Start"])
            for grp in result.get("Groups", []):
                value = group_value(grp["Keys"][0], tagged)
                amount = float(grp.get("Metrics", {}).get(metric, {}).get("Amount", 0) or 0)
                amounts.append((day, value, amount))
        token = page.get("NextPageToken")
        if not token:
            break
    return amounts, requests
