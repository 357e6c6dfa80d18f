"""Answer a cost query from the configured source: Cost Explorer through the database cache, or
FOCUS files through DuckDB. Access denied is one clear line (``CostAccessDenied``), never a trace."""

from __future__ import annotations

import time
from datetime import date

import sqlalchemy as sa

from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.errors import CloudError, ConfigError, Forbidden
from gennaker.ops.costs import cost_explorer, focus
from gennaker.ops.costs.query import CostQuery, parse_period
from gennaker.ops.costs.report import CostReport, DailyAmount, build_report
from gennaker.ops.costs.tables import cost_cache
from gennaker.spec.config import Config, CostSettings
from gennaker.store.db import Database

DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException"}
CE_REGION = "us-east-1"  # Cost Explorer has one endpoint


class CostAccessDenied(Forbidden):
    """The cost API or the export bucket refused the configured credentials."""


def scoped_query(query: CostQuery, readable: frozenset[str] | None) -> CostQuery:
    """The query narrowed to the caller's applications (None: a global role, all of them): only
    spend tagged with one of them counts, whatever the grouping."""
    if readable is None:
        return query
    if not readable:
        raise Forbidden("costs are shown per application: this caller may read none")
    return CostQuery(query.group_by, query.period, query.granularity, query.metric, tuple(sorted(readable)))


def cost_account(config: Config) -> str:
    """The account whose credentials read costs: ``costs.account``, else the first configured."""
    name = config.costs.account or next(iter(config.accounts), None)
    if name is None:
        raise ConfigError("no accounts configured: costs are read through one (add 'accounts:' to gennaker.yml)")
    config.account(name)  # an unknown name is a clear error
    return name


def denied(exc: CloudError, what: str) -> CostAccessDenied:
    return CostAccessDenied(f"{what} denied in account {exc.account}: {exc.code}: {str(exc).rsplit(': ', 1)[-1]}")


def client(sessions: AwsSessions, config: Config, service: str) -> AwsClient:
    name = cost_account(config)
    region = CE_REGION if service == "ce" else sessions.account(name).regions[0]
    return sessions.client(name, region, service)


def get_costs(
    db: Database,
    config: Config,
    sessions: AwsSessions,
    query: CostQuery,
    *,
    refresh: bool = False,
    today: date | None = None,
) -> CostReport:
    settings: CostSettings = config.costs
    day = today or date.today()
    period = parse_period(query.period, day)
    app_key, env_key = settings.tags.application, settings.tags.environment
    if settings.source == "focus":
        assert settings.uri is not None  # CostSettings refuses focus without a uri
        notes: list[str] = []
        if settings.uri.startswith("s3://"):
            try:
                files, fetched = focus.download(client(sessions, config, "s3"), settings.uri)
            except CloudError as exc:
                if exc.code in DENIED or exc.code == "403":
                    raise denied(exc, f"reading the FOCUS export {settings.uri}") from None
                raise
            notes.append(f"{len(files)} FOCUS file(s), {fetched} downloaded now")
        else:
            files = focus.local_files(settings.uri)
            notes.append(f"{len(files)} FOCUS file(s)")
        report = build_report(query, "focus", period, focus.query_files(files, query, period, app_key, env_key))
        report.notes = notes
        return report

    key = query.key("cost_explorer", day)
    if not refresh:
        with db.read() as conn:
            row = conn.execute(sa.select(cost_cache).where(cost_cache.c.key == key)).mappings().first()
        if row is not None:
            amounts: list[DailyAmount] = [(date.fromisoformat(d), g, float(a)) for d, g, a in row["days"]]
            report = build_report(query, "cost_explorer", period, amounts)
            report.cached, report.fetched_at = True, float(row["fetched_at"])
            return report
    try:
        amounts, requests = cost_explorer.fetch(client(sessions, config, "ce"), query, period, app_key, env_key)
    except CloudError as exc:
        if exc.code in DENIED:
            raise denied(exc, "Cost Explorer (ce:GetCostAndUsage)") from None
        raise
    now = time.time()
    values = {
        "source": "cost_explorer",
        "query": {
            **query.__dict__,
            "applications": list(query.applications or []) or None,
            "period_dates": [str(d) for d in period.dates()],
        },
        "days": [[str(d), g, a] for d, g, a in amounts],
        "requests": requests,
        "fetched_at": now,
    }
    with db.begin() as conn:  # replace: a refresh overwrites, two racing fills leave one row
        conn.execute(sa.delete(cost_cache).where(cost_cache.c.key == key))
        conn.execute(sa.insert(cost_cache).values(key=key, **values))
    report = build_report(query, "cost_explorer", period, amounts)
    report.requests, report.fetched_at = requests, now
    return report
