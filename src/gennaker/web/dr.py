"""DR drills in the console: the READINESS tab's drills panel (the last drill of each scenario, its
measured RTO/RPO against the objectives, what was missing) and a drill's report page. Rows come from
``gennaker.ops.dr.store`` (the dr_drills table); both live under ``/applications/{app}/``, so the
access middleware lets only the application's viewers in, and a drill of another application is
not found here (404), whatever its id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from gennaker.errors import NotFound
from gennaker.ops.dr import store
from gennaker.spec.durations import format_duration
from gennaker.web.deps import render, web_state
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
WebDep = Annotated[WebState, Depends(web_state)]

SCENARIOS = ("region_loss", "restore_data", "failover_dns")
RECENT = 20
STEP_BADGE = {"PASS": "SUCCEEDED", "FAIL": "FAILED", "UNKNOWN": "WAITING", "SKIPPED": "SKIPPED", "RUNNING": "RUNNING"}


def _figure(measured: Any, objective: Any) -> dict[str, Any]:
    """A measured figure against its objective: shown text, and met True/False/None (not known)."""
    shown = format_duration(round(float(measured), 1)) if isinstance(measured, int | float) else "not measured"
    target = format_duration(float(objective)) if isinstance(objective, int | float) else None
    met = None if target is None or not isinstance(measured, int | float) else float(measured) <= float(objective)
    return {"shown": shown, "objective": target, "met": met}


def drill_view(row: dict[str, Any]) -> dict[str, Any]:
    """One dr_drills row as the templates show it."""
    report = row.get("report") or {}
    objectives = row.get("objectives") or {}
    stores = [
        {
            "store": r.get("store"),
            "kind": r.get("kind"),
            "shown": format_duration(float(r["age_s"])) if isinstance(r.get("age_s"), int | float) else "unknown",
        }
        for r in row.get("rpo") or []
    ]
    return {
        **row,
        "rpo_stores": stores,  # "rpo" below is the figure against its objective
        "rto": _figure(row.get("rto_s"), objectives.get("rto_s")),
        "rpo": _figure(row.get("rpo_s"), objectives.get("rpo_s")),
        "steps": [
            {**s, "badge": STEP_BADGE.get(str(s.get("status")), "NOT_STARTED")} for s in report.get("steps") or []
        ],
        "missing": list(report.get("missing") or []),
        "met_objectives": report.get("met_objectives"),
        "teardown": list(report.get("teardown") or []),
        "left": list(report.get("left") or []),
    }


def readiness_drills(conn: Connection, application: str) -> dict[str, Any]:
    """The READINESS tab's drills: the newest drill of each scenario, and the recent ones."""
    recent = [drill_view(r) for r in store.recent_drills(conn, application, RECENT)]
    latest = [next((d for d in recent if d["scenario"] == s), None) for s in SCENARIOS]
    return {"latest": [d for d in latest if d is not None], "recent": recent, "scenarios": SCENARIOS}


@router.get("/applications/{app}/dr/{drill_id}", response_class=HTMLResponse)
async def drill_page(request: Request, app: str, drill_id: str, web: WebDep) -> Response:
    def read() -> dict[str, Any]:
        with web.db.read() as conn:
            return drill_view(store.get_drill(conn, drill_id, applications=[app]))

    try:
        drill = await run_in_threadpool(read)
    except NotFound as exc:
        return render(request, "error.html", status_code=404, status=404, message=str(exc))
    return render(request, "dr_drill.html", app=app, tab="readiness", drill=drill)
