"""The COSTS page (``/costs``) and an application's COSTS tab (``/applications/{app}/costs``): the
same query as ``gennaker costs``, drawn as a stacked bar chart over time (inline SVG computed here;
no script, no style attribute: the CSP allows neither) beside the breakdown table.

Scoped like every read: a caller restricted to applications sees only their applications' spend
(``scoped_query``); an application's tab shows that application's spend only, by service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import Forbidden, GennakerError, NotFound
from gennaker.ops.costs import CostQuery, CostReport, get_costs, scoped_query
from gennaker.web.access import Principal
from gennaker.web.deps import principal, render, web_state
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
PrincipalDep = Annotated[Principal, Depends(principal)]
WebDep = Annotated[WebState, Depends(web_state)]

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 64, 20, 10
STACKED = 7  # the largest rows are drawn, the rest stacked as "other"
COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c9c9c")
GROUPINGS = ("service", "account", "region", "application", "environment")


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass
class StackedChart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bars: list[Bar] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour, label)
    y_max: str = ""
    first: str = ""
    last: str = ""


def stacked_chart(report: CostReport) -> StackedChart:
    """One column per bucket; in it the largest rows stacked bottom-up, the rest as "other"."""
    chart = StackedChart(
        first=str(report.buckets[0]) if report.buckets else "", last=str(report.buckets[-1]) if report.buckets else ""
    )
    n = len(report.buckets)
    if not n or not report.rows:
        return chart
    shown = report.rows[:STACKED]
    layers = [(r.label, r.series) for r in shown]
    rest = report.rows[STACKED:]
    if rest:
        layers.append((f"other ({len(rest)})", [sum(r.series[i] for r in rest) for i in range(n)]))
    peak = max(sum(max(0.0, s[i]) for _, s in layers) for i in range(n)) or 1.0
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - 8) / n
    for i, bucket in enumerate(report.buckets):
        base = float(HEIGHT - BOTTOM)
        for k, (label, series) in enumerate(layers):
            h = max(0.0, series[i]) / peak * plot_h
            if h <= 0:
                continue
            base -= h
            colour = COLOURS[k % len(COLOURS)] if k < STACKED else COLOURS[-1]
            chart.bars.append(
                Bar(
                    round(LEFT + i * step + 1, 2),
                    round(base, 2),
                    round(max(step - 2, 1), 2),
                    round(h, 2),
                    colour,
                    f"{bucket} {label}: {series[i]:,.2f}",
                )
            )
    chart.legend = [
        (COLOURS[k % len(COLOURS)] if k < STACKED else COLOURS[-1], label) for k, (label, _) in enumerate(layers)
    ]
    chart.y_max = f"{peak:,.0f}"
    return chart


def _report(web: WebState, query: CostQuery) -> CostReport:
    rt = web.runtime
    aws: AwsSessions = rt.services.aws
    return get_costs(rt.db, rt.config, aws, query)


async def _page(request: Request, web: WebState, query: CostQuery, **context: Any) -> Response:
    try:
        report = await run_in_threadpool(_report, web, query)
    except GennakerError as exc:  # denied, a bad query, an unreadable export: one line on the page
        status = 403 if isinstance(exc, Forbidden) else 404 if isinstance(exc, NotFound) else 400
        return render(
            request,
            "costs.html",
            status_code=status,
            error=str(exc),
            report=None,
            query=query,
            groupings=GROUPINGS,
            **context,
        )
    return render(
        request,
        "costs.html",
        report=report,
        chart=stacked_chart(report),
        query=query,
        groupings=GROUPINGS,
        error=None,
        **context,
    )


def _query(request: Request, default_by: str = "service") -> CostQuery:
    q = request.query_params
    by = (q.get("by") or default_by)[:140]
    period = (q.get("period") or "30d")[:10]
    metric = q.get("metric") if q.get("metric") in ("unblended", "amortized") else "unblended"
    granularity = q.get("granularity") if q.get("granularity") in ("daily", "monthly") else "daily"
    return CostQuery(group_by=by, period=period, granularity=granularity, metric=metric)  # type: ignore[arg-type]


@router.get("/costs", response_class=HTMLResponse)
async def costs_page(request: Request, web: WebDep, me: PrincipalDep) -> Response:
    try:
        query = scoped_query(_query(request), me.readable())
    except GennakerError as exc:
        return render(
            request, "costs.html", status_code=400, error=str(exc), report=None, query=None, groupings=GROUPINGS
        )
    return await _page(request, web, query)


@router.get("/applications/{app}/costs", response_class=HTMLResponse)
async def application_costs(request: Request, app: str, web: WebDep, me: PrincipalDep) -> Response:
    readable = me.readable()
    if readable is not None and app not in readable:
        raise NotFound(f"application '{app[:100]}' not found")
    try:
        base = _query(request)
        query = CostQuery(
            base.group_by if base.group_by != "application" else "service",
            base.period,
            base.granularity,
            base.metric,
            (app,),
        )
    except GennakerError as exc:
        return render(
            request,
            "costs.html",
            status_code=400,
            error=str(exc),
            report=None,
            query=None,
            groupings=GROUPINGS,
            app=app,
            tab="costs",
        )
    return await _page(request, web, query, app=app, tab="costs")
