"""Where metric samples come from: one interface, and the one declared list of sources.

A source answers, for one interval, every query of the analysis that names it, for every server
group asked (baseline and canary): ONE ``fetch`` per source per interval, which a source turns into
as few API calls as its API allows (CloudWatch: one GetMetricData for everything). A metric the
source cannot read comes back as a ``MetricError`` with the reason, never as an empty pass; a query
that reads fine but has no samples comes back as an empty ``Series`` (the classifier's Nodata).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gennaker.cloud.aws.session import AwsSessions


@dataclass(frozen=True)
class MetricQuery:
    name: str  # the metric's name in the analysis
    query: str  # in the source's language (PromQL, a CloudWatch metric, a haproxy measure)


@dataclass(frozen=True)
class Scope:
    """One server group whose samples are asked for."""

    server_group: str  # ${scope} in templates; AutoScalingGroupName on AWS
    location: str  # ${location}: the region (or "local")
    account: str | None = None  # the account to read CloudWatch in
    target_group: str | None = None  # CloudWatch TargetGroup dimension value (targetgroup/name/id)
    load_balancer: str | None = None  # CloudWatch LoadBalancer dimension value (app/name/id)


@dataclass(frozen=True)
class Series:
    """Samples in time order; ``timestamps`` are seconds since the epoch."""

    timestamps: tuple[float, ...] = ()
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class MetricError:
    reason: str


Fetched = dict[str, dict[str, Series | MetricError]]
"""server group → metric name → its samples or why there are none."""


class MetricSource(Protocol):
    name: str

    def check(self, query: str) -> str | None:
        """The problem with ``query`` in one line, or None (run at validation, before anything)."""
        ...

    def fetch(
        self, queries: Sequence[MetricQuery], scopes: Sequence[Scope], start: datetime, end: datetime, step: float
    ) -> Fetched:
        """Samples of every query for every scope between ``start`` and ``end`` (aware datetimes)."""
        ...


def errors_for(queries: Sequence[MetricQuery], scopes: Sequence[Scope], reason: str) -> Fetched:
    """The same error for every metric of every scope (a source that cannot be read at all)."""
    return {s.server_group: {q.name: MetricError(reason) for q in queries} for s in scopes}


class UnavailableSource:
    """A source that is declared but cannot be used here: every metric is an Error saying why."""

    def __init__(self, name: str, reason: str, checker: Callable[[str], str | None] | None = None):
        self.name = name
        self.reason = reason
        self.checker = checker  # queries are still checked, so a typo shows before the source is set up

    def check(self, query: str) -> str | None:
        return self.checker(query) if self.checker else None

    def fetch(
        self, queries: Sequence[MetricQuery], scopes: Sequence[Scope], start: datetime, end: datetime, step: float
    ) -> Fetched:
        return errors_for(queries, scopes, self.reason)


@dataclass(frozen=True)
class SourceSettings:
    """What the sources need to be built; a source without its settings is unavailable, not absent."""

    prometheus_url: str | None = None
    prometheus_timeout: float = 10.0
    aws: AwsSessions | None = None  # CloudWatch reads in each scope's account and region
    haproxy: Any = None  # filled in with the local provider's load balancer


def build_sources(settings: SourceSettings) -> dict[str, MetricSource]:
    """THE list of metric sources, by the name an analysis uses in ``source:``."""
    # Imported here, not at the top: the sources import this module's types.
    from gennaker.metrics import cloudwatch, haproxy, prometheus

    return {
        "prometheus": (
            prometheus.PrometheusSource(settings.prometheus_url, timeout=settings.prometheus_timeout)
            if settings.prometheus_url
            else UnavailableSource(
                "prometheus", "prometheus is not configured (no Prometheus URL in the settings)", prometheus.check_query
            )
        ),
        "cloudwatch": (
            cloudwatch.CloudWatchSource(_cloudwatch_clients(settings.aws))
            if settings.aws is not None
            else UnavailableSource(
                "cloudwatch", "cloudwatch is not available (no AWS accounts configured)", cloudwatch.check_query
            )
        ),
        "haproxy": (
            haproxy.from_settings(settings.haproxy)
            if settings.haproxy is not None
            else UnavailableSource(
                "haproxy", "haproxy is not available (no local account's load balancer)", haproxy.check_query
            )
        ),
    }


def _cloudwatch_clients(aws: AwsSessions) -> Callable[[str | None, str], Any]:
    def client(account: str | None, region: str) -> Any:
        if account is None:
            raise LookupError("the server group's scope names no account to read CloudWatch in")
        return aws.client(account, region, "cloudwatch")

    return client


def check_queries(sources: Mapping[str, MetricSource], metrics: Sequence[tuple[str, str, str]]) -> list[str]:
    """Problems with ``(metric name, source, query)`` triples: unknown sources, queries a source rejects."""
    problems = []
    for name, source, query in metrics:
        if source not in sources:
            problems.append(f"metric '{name}': unknown source '{source}' (one of: {', '.join(sorted(sources))})")
            continue
        problem = sources[source].check(query)
        if problem:
            problems.append(f"metric '{name}': {problem}")
    return problems
