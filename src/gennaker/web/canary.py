"""The canary report page: an analysis's summary, and per interval per metric its classification,
medians, effect size and the baseline and canary series drawn as inline SVG (computed here, drawn by
the ``chart`` macro of ``_canary_chart.html``; no script, no style attribute: the CSP allows neither).

Reads are scoped like every read: an analysis of an application the caller may not read is a 404,
the answer for one that does not exist."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from gennaker.errors import NotFound
from gennaker.metrics import store as canary_store
from gennaker.web.access import Principal
from gennaker.web.deps import principal, render, web_state
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
PrincipalDep = Annotated[Principal, Depends(principal)]
WebDep = Annotated[WebState, Depends(web_state)]

WIDTH, HEIGHT, PAD_LEFT, PAD_RIGHT, PAD_Y = 420, 120, 48, 8, 12
MAX_CHART_POINTS = 500  # per line: a long window is thinned, not drawn with thousands of nodes


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PAD_LEFT
    baseline: str = ""  # polyline points "x,y x,y ..."
    canary: str = ""
    y_max: str = ""
    y_min: str = ""
    x_span: str = ""  # the window's length, under the x axis
    notes: list[str] = field(default_factory=list)  # why a line is missing

    @property
    def empty(self) -> bool:
        return not self.baseline and not self.canary


def _points(series: Any) -> list[tuple[float, float]] | str:
    if not isinstance(series, dict):
        return "no samples"
    if "error" in series:
        return str(series["error"])
    pts = [
        (float(t), float(v))
        for t, v in zip(series.get("t") or [], series.get("v") or [], strict=False)
        if v is not None and math.isfinite(float(v))
    ]
    if len(pts) > MAX_CHART_POINTS:
        every = math.ceil(len(pts) / MAX_CHART_POINTS)
        pts = pts[::every]
    return pts


def _number(value: float) -> str:
    return f"{value:.3g}"


def chart(baseline: Any, canary: Any) -> Chart:
    """The geometry of one metric's chart: both series on shared axes (y from 0 unless negative)."""
    out = Chart()
    lines = {"baseline": _points(baseline), "canary": _points(canary)}
    for role, pts in lines.items():
        if isinstance(pts, str):
            out.notes.append(f"{role}: {pts}")
        elif not pts:
            out.notes.append(f"{role}: no data points")
    drawn = [p for pts in lines.values() if not isinstance(pts, str) for p in pts]
    if not drawn:
        return out
    t0, t1 = min(t for t, _ in drawn), max(t for t, _ in drawn)
    lo, hi = min(0.0, min(v for _, v in drawn)), max(v for _, v in drawn)
    if hi <= lo:
        hi = lo + 1.0
    span_t = (t1 - t0) or 1.0
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - 2 * PAD_Y

    def xy(t: float, v: float) -> str:
        x = PAD_LEFT + (t - t0) / span_t * plot_w
        y = PAD_Y + (1 - (v - lo) / (hi - lo)) * plot_h
        return f"{x:.1f},{y:.1f}"

    for role, pts in lines.items():
        if not isinstance(pts, str) and pts:
            setattr(out, role, " ".join(xy(t, v) for t, v in pts))
    out.y_max, out.y_min, out.x_span = _number(hi), _number(lo), f"{t1 - t0:.0f}s"
    return out


def report_context(web: WebState, analysis_id: str, me: Principal) -> dict[str, Any]:
    analysis = canary_store.get_analysis(web.db, analysis_id, readable=me.readable())
    for judgement in analysis["judgements"]:
        for metric in judgement["metrics"]:
            metric["chart"] = chart(metric.get("baseline"), metric.get("canary"))
    return {"analysis": analysis}


@router.get("/canary/{analysis_id}", response_class=HTMLResponse)
async def canary_report(request: Request, analysis_id: str, web: WebDep, me: PrincipalDep) -> Response:
    try:
        ctx = await run_in_threadpool(report_context, web, analysis_id[:100], me)
    except NotFound as exc:
        return render(request, "error.html", status_code=404, status=404, message=str(exc))
    return render(request, "canary.html", **ctx)
