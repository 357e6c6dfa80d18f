"""CloudWatch as a metric source: every metric of every server group in one ``GetMetricData`` call.

A query reads ``namespace=AWS/ApplicationELB metric=HTTPCode_Target_5XX_Count stat=Sum
dimensions=target_group`` (shell-style quoting for values with spaces). ``dimensions`` says which
of the scope's dimensions select its server group: ``asg`` (AutoScalingGroupName, the default),
``target_group`` (TargetGroup and LoadBalancer) or ``asg+target_group``. One fetch is one call per
account and region (two server groups x up to 250 metrics fit in one), plus its NextToken pages.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gennaker.metrics.sources import Fetched, MetricError, MetricQuery, Scope, Series, errors_for

MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 30)  # below a minute only these; above, multiples of 60
DIMENSION_SETS = ("asg", "target_group", "asg+target_group")

ClientFor = Callable[[str | None, str], Any]
"""(account, region) → a CloudWatch client: an AwsClient from AwsSessions, or anything with get_metric_data."""


@dataclass(frozen=True)
class CloudWatchQuery:
    namespace: str
    metric: str
    stat: str = "Average"
    dimensions: str = "asg"


def parse_query(text: str) -> CloudWatchQuery:
    """Raise ValueError with a one-line message when ``text`` is not a CloudWatch query."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot read the query: {exc}") from None
    fields: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not value:
            raise ValueError(f"'{token}' is not key=value (keys: namespace, metric, stat, dimensions)")
        if key not in ("namespace", "metric", "stat", "dimensions"):
            raise ValueError(f"unknown key '{key}' (keys: namespace, metric, stat, dimensions)")
        fields[key] = value
    missing = [k for k in ("namespace", "metric") if k not in fields]
    if missing:
        raise ValueError(f"the query names no {' and no '.join(missing)}")
    if fields.get("dimensions", "asg") not in DIMENSION_SETS:
        raise ValueError(f"dimensions must be one of {', '.join(DIMENSION_SETS)}")
    return CloudWatchQuery(**fields)


def check_query(query: str) -> str | None:
    try:
        parse_query(query)
    except ValueError as exc:
        return str(exc)
    return None


def period_for(step: float) -> int:
    """The shortest period CloudWatch accepts that is at least ``step`` seconds."""
    for period in HIGH_RESOLUTION_PERIODS:
        if step <= period:
            return period
    return int(-(-step // 60) * 60)


def dimensions_for(query: CloudWatchQuery, scope: Scope) -> list[dict[str, str]]:
    """The dimensions selecting ``scope``'s server group; ValueError when the scope lacks one."""
    dims = []
    if query.dimensions in ("asg", "asg+target_group"):
        dims.append({"Name": "AutoScalingGroupName", "Value": scope.server_group})
    if query.dimensions in ("target_group", "asg+target_group"):
        if not scope.target_group:
            raise ValueError(f"server group {scope.server_group} has no target group to select it by")
        dims.append({"Name": "TargetGroup", "Value": scope.target_group})
        if scope.load_balancer:
            dims.append({"Name": "LoadBalancer", "Value": scope.load_balancer})
    return dims


class CloudWatchSource:
    name = "cloudwatch"

    def __init__(self, client_for: ClientFor):
        self.client_for = client_for

    def check(self, query: str) -> str | None:
        return check_query(query)

    def fetch(
        self, queries: Sequence[MetricQuery], scopes: Sequence[Scope], start: datetime, end: datetime, step: float
    ) -> Fetched:
        out: Fetched = {s.server_group: {} for s in scopes}
        by_place: dict[tuple[str | None, str], list[Scope]] = {}
        for scope in scopes:
            by_place.setdefault((scope.account, scope.location), []).append(scope)
        for (account, region), place_scopes in by_place.items():
            self._fetch_place(account, region, queries, place_scopes, start, end, period_for(step), out)
        return out

    def _fetch_place(
        self,
        account: str | None,
        region: str,
        queries: Sequence[MetricQuery],
        scopes: Sequence[Scope],
        start: datetime,
        end: datetime,
        period: int,
        out: Fetched,
    ) -> None:
        wanted: dict[str, tuple[str, str]] = {}  # query id → (server group, metric name)
        requests: list[dict[str, Any]] = []
        for scope in scopes:
            for q in queries:
                try:
                    parsed = parse_query(q.query)
                    dims = dimensions_for(parsed, scope)
                except ValueError as exc:
                    out[scope.server_group][q.name] = MetricError(str(exc))
                    continue
                query_id = f"m{len(requests)}"
                wanted[query_id] = (scope.server_group, q.name)
                metric = {"Namespace": parsed.namespace, "MetricName": parsed.metric, "Dimensions": dims}
                requests.append(
                    {"Id": query_id, "MetricStat": {"Metric": metric, "Period": period, "Stat": parsed.stat}}
                )
        if not requests:
            return
        samples: dict[str, list[tuple[float, float]]] = {query_id: [] for query_id in wanted}
        failures: dict[str, str] = {}
        try:
            client = self.client_for(account, region)
            for chunk in _chunks(requests, MAX_QUERIES_PER_CALL):
                for result in _pages(client, chunk, start, end):
                    query_id = result.get("Id", "")
                    if query_id not in samples:
                        continue
                    status = result.get("StatusCode", "Complete")
                    if status in ("InternalError", "Forbidden"):
                        messages = "; ".join(m.get("Value", "") for m in result.get("Messages", []))
                        failures[query_id] = f"CloudWatch answered {status}" + (f": {messages}" if messages else "")
                    samples[query_id].extend(
                        (t.timestamp(), float(v))
                        for t, v in zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                    )
        except Exception as exc:  # whatever stops the read makes every metric an Error saying why
            reason = f"cloudwatch in {account or '?'}/{region} cannot be read: {exc}"
            for group, metrics in errors_for(queries, scopes, reason).items():
                for name, error in metrics.items():
                    out[group].setdefault(name, error)
            return
        for query_id, (group, name) in wanted.items():
            if query_id in failures:
                out[group][name] = MetricError(failures[query_id])
                continue
            points = sorted(samples[query_id])
            out[group][name] = Series(tuple(t for t, _ in points), tuple(v for _, v in points))


def _chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _pages(client: Any, queries: list[dict[str, Any]], start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        if token:
            kwargs["NextToken"] = token
        page = client.get_metric_data(**kwargs)
        yield from page.get("MetricDataResults", [])
        token = page.get("NextToken")
        if not token:
            return
