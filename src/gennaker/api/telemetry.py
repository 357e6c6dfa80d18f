"""Gennaker watched like any other service: ``/healthz``, ``/readyz`` and ``/metrics``.

Everything ``/metrics`` reports about work is read from the database at scrape time, not counted in
this process: workers run in other processes and on other hosts, and every server replica must give
Prometheus the same numbers. Only HTTP request durations are this process's own. Names follow the
Prometheus conventions (``gennaker_`` prefix, ``_total`` counters, seconds); no label carries an
execution id, so the number of series stays bounded by pipelines, stage types and routes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select, text

from gennaker.engine import counters
from gennaker.engine.views import capabilities
from gennaker.metrics.tables import canary_analyses
from gennaker.ops.tables import ops_audits, ops_snapshots
from gennaker.runtime import Runtime
from gennaker.store.db import Database, schema_behind
from gennaker.store.tables import executions, messages, stages, workers

STAGE_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
SCORE_BUCKETS = (25.0, 50.0, 75.0, 90.0, 100.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, schema current, workers claiming",
    responses={503: {"description": "not ready: the checks say which condition fails and why"}},
)
def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks = readiness(runtime.db, runtime.engine.settings.worker_ttl)
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


def readiness(db: Database, worker_ttl: float) -> dict[str, dict[str, Any]]:
    """Each condition with why it fails: a load balancer only needs the status, a person the reason."""
    try:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
            live = conn.execute(
                select(func.count()).select_from(workers).where(workers.c.heartbeat_at >= time.time() - worker_ttl)
            ).scalar_one()
    except Exception as exc:  # any failure to reach the database is the answer, not a 500
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return {"database": {"ok": False, "reason": reason}}
    behind = schema_behind(db)
    return {
        "database": {"ok": True},
        "migrations": {"ok": not behind, **({"reason": f"not applied: {', '.join(sorted(behind))}"} if behind else {})},
        "workers": {
            "ok": live > 0,
            "live": int(live),
            **({} if live else {"reason": "no worker has a fresh heartbeat"}),
        },
    }


@router.get("/metrics", summary="Prometheus metrics (text exposition format)")
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def metrics_registry(runtime: Runtime) -> tuple[CollectorRegistry, Histogram]:
    """This app's own registry (no process-global default): the store's figures and HTTP durations."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(runtime))
    http = Histogram(
        "gennaker_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template",
        ["method", "route"],
        buckets=HTTP_BUCKETS,
        registry=registry,
    )
    return registry, http


class StoreCollector(Collector):
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        db = self.runtime.db
        with db.read() as conn:
            yield from _executions(conn)
            yield _stage_durations(conn)
            yield from _queue(conn, now)
            yield from _totals(conn)
            yield from _deploys(conn, [n for n, t in self.runtime.registry.items() if t.capabilities.deploys])
            yield from _canaries(conn)
            yield from _audit(conn)
            live = conn.execute(
                select(func.count())
                .select_from(workers)
                .where(workers.c.heartbeat_at >= now - self.runtime.engine.settings.worker_ttl)
            ).scalar_one()
        yield GaugeMetricFamily("gennaker_workers", "Workers with a fresh heartbeat", value=int(live))


def _executions(conn: Any) -> Iterator[Metric]:
    started = CounterMetricFamily("gennaker_executions_started", "Executions started", labels=["pipeline"])
    rows = conn.execute(
        select(executions.c.pipeline, func.count())
        .where(executions.c.started_at.is_not(None))
        .group_by(executions.c.pipeline)
    )
    for pipeline, n in rows:
        started.add_metric([pipeline], n)
    yield started
    finished = CounterMetricFamily(
        "gennaker_executions_finished", "Executions that ended, by status", labels=["pipeline", "status"]
    )
    rows = conn.execute(
        select(executions.c.pipeline, executions.c.status, func.count())
        .where(executions.c.ended_at.is_not(None))
        .group_by(executions.c.pipeline, executions.c.status)
    )
    for pipeline, status, n in rows:
        finished.add_metric([pipeline, status], n)
    yield finished


def _stage_durations(conn: Any) -> Metric:
    """Cumulative buckets counted by the database in one pass (no row leaves it)."""
    took = stages.c.ended_at - stages.c.started_at
    columns = [func.sum(case((took <= b, 1), else_=0)) for b in STAGE_BUCKETS]
    rows = conn.execute(
        select(stages.c.type, func.count(), func.sum(took), *columns)
        .where(stages.c.started_at.is_not(None), stages.c.ended_at.is_not(None))
        .group_by(stages.c.type)
    )
    family = HistogramMetricFamily(
        "gennaker_stage_duration_seconds", "Time from a stage's start to its end, by stage type", labels=["type"]
    )
    for row in rows:
        stage_type, count, total, *cumulative = row
        buckets = [(_le(b), int(c or 0)) for b, c in zip(STAGE_BUCKETS, cumulative, strict=True)]
        family.add_metric([stage_type], [*buckets, ("+Inf", int(count))], sum_value=float(total or 0.0))
    return family


def _le(bound: float) -> str:
    return str(float(bound))


def _queue(conn: Any, now: float) -> Iterator[Metric]:
    ready = (
        (messages.c.due_at <= now)
        & messages.c.held.is_(False)
        & (messages.c.lease_until.is_(None) | (messages.c.lease_until < now))
    )
    depth, ready_n, oldest = conn.execute(
        select(
            func.count(),
            func.sum(case((ready, 1), else_=0)),
            func.min(case((ready, messages.c.due_at), else_=None)),
        ).select_from(messages)
    ).one()
    yield GaugeMetricFamily("gennaker_queue_depth", "Messages in the engine's queue", value=int(depth))
    yield GaugeMetricFamily("gennaker_queue_ready_depth", "Messages due and not leased", value=int(ready_n or 0))
    yield GaugeMetricFamily(
        "gennaker_queue_lag_seconds",
        "Age of the oldest message that is due and not leased (0: none waiting)",
        value=max(0.0, now - oldest) if oldest is not None else 0.0,
    )


def _totals(conn: Any) -> Iterator[Metric]:
    got = counters.totals(conn)
    for name, what in (
        (counters.REDELIVERIES, "Messages claimed again after a lease ran out or a handler failed"),
        (counters.DEAD_LETTERS, "Messages given up on (their stage failed)"),
        (counters.REPAIRED, "Executions the self-check found stuck and set going again"),
    ):
        yield CounterMetricFamily(f"gennaker_{name}", what, value=got.get(name, 0))


def _deploys(conn: Any, types: list[str]) -> Iterator[Metric]:
    """Stages whose type declares the ``deploys`` capability. ``types`` (from the registry) narrows the
    read to their rows; the capability recorded with each stage decides."""
    rows = conn.execute(
        select(stages.c.status, stages.c.config, stages.c.context).where(
            stages.c.ended_at.is_not(None), stages.c.type.in_(types)
        )
    )
    deploys: Counter[tuple[str, str]] = Counter()
    rollbacks: Counter[tuple[str, str]] = Counter()
    for status, config, context in rows:
        if not capabilities(context).deploys:
            continue
        strategy = str((config or {}).get("strategy") or "default")
        deploys[(strategy, str(status).lower())] += 1
        rollback = (context or {}).get("rollback")
        if isinstance(rollback, dict):
            rollbacks[(strategy, str(rollback.get("result") or "unfinished"))] += 1
    d = CounterMetricFamily(
        "gennaker_deploys", "Deploys that ended, by strategy and result", labels=["strategy", "result"]
    )
    for (strategy, result), n in sorted(deploys.items()):
        d.add_metric([strategy, result], n)
    yield d
    r = CounterMetricFamily(
        "gennaker_rollbacks", "Automatic rollbacks, by strategy and result", labels=["strategy", "result"]
    )
    for (strategy, result), n in sorted(rollbacks.items()):
        r.add_metric([strategy, result], n)
    yield r


def _canaries(conn: Any) -> Iterator[Metric]:
    score = canary_analyses.c.score
    columns = [func.sum(case((score <= b, 1), else_=0)) for b in SCORE_BUCKETS]
    row = conn.execute(
        select(func.count(), func.sum(score), *columns).where(
            canary_analyses.c.ended_at.is_not(None), score.is_not(None)
        )
    ).one()
    count, total, *cumulative = row
    family = HistogramMetricFamily("gennaker_canary_score", "Final scores of finished canary analyses (0 to 100)")
    buckets = [(_le(b), int(c or 0)) for b, c in zip(SCORE_BUCKETS, cumulative, strict=True)]
    family.add_metric([], [*buckets, ("+Inf", int(count or 0))], sum_value=float(total or 0.0))
    yield family
    results = CounterMetricFamily("gennaker_canary_analyses", "Finished canary analyses, by result", labels=["result"])
    for result, n in conn.execute(
        select(canary_analyses.c.result, func.count())
        .where(canary_analyses.c.ended_at.is_not(None))
        .group_by(canary_analyses.c.result)
    ):
        results.add_metric([str(result or "none")], n)
    yield results


def _audit(conn: Any) -> Iterator[Metric]:
    """The newest audit: its collection time, score and open findings by severity and status."""
    duration = GaugeMetricFamily("gennaker_audit_duration_seconds", "Collection time of the newest audit")
    findings = GaugeMetricFamily(
        "gennaker_audit_findings", "Findings of the newest audit, by severity and status", labels=["severity", "status"]
    )
    latest = conn.execute(
        select(ops_audits.c.report, ops_audits.c.score, ops_snapshots.c.stats)
        .select_from(ops_audits.outerjoin(ops_snapshots, ops_snapshots.c.id == ops_audits.c.snapshot_id))
        .order_by(ops_audits.c.created_at.desc())
        .limit(1)
    ).first()
    if latest is not None:
        stats = latest.stats or {}
        if isinstance(stats.get("duration_s"), int | float):
            duration.add_metric([], float(stats["duration_s"]))
        counted: Counter[tuple[str, str]] = Counter(
            (str(f.get("severity")), str(f.get("status")))
            for f in (latest.report or {}).get("findings", [])
            if not f.get("suppressed")
        )
        for (severity, status), n in sorted(counted.items()):
            findings.add_metric([severity, status], n)
    yield duration
    yield findings
    if latest is not None and latest.score is not None:
        yield GaugeMetricFamily(
            "gennaker_audit_score", "Readiness score of the newest audit", value=float(latest.score)
        )


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class RequestDurations:
    """Times each HTTP request, labelled by the route it matched (its template, never the raw path,
    which would make one series per execution id)."""

    def __init__(self, app: ASGIApp, histogram: Histogram):
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            self.histogram.labels(scope["method"], route).observe(time.perf_counter() - started)
