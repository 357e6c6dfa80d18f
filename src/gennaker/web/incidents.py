"""The INCIDENTS pages: open incidents by priority, one incident with its timeline and diagnosis, the
actions on it (acknowledge, resolve, note, roll back), and the open-incident count of the header.

Reads are scoped like every read: the incidents of the caller's applications (an incident of no
application only for those who read all of them); one outside them is a 404, the answer for an id
that does not exist. The actions are forms posting to the API's paths without ``/api``, with the CSRF
token (the middleware checks it, applies the access rules and writes the audit log); the operator
role on the incident's application is checked here as well, and viewers are shown no buttons.

Both pages are live: a server-sent event stream per page reads the database every half second and
pushes a fragment only when what it shows has changed (as the execution pages do).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import Connection, func, select
from starlette.concurrency import run_in_threadpool

from gennaker.api.incident_actions import ROLLBACK, RollbackBody, rollback_from_incident
from gennaker.errors import Forbidden, GennakerError, NotFound
from gennaker.ops.incidents import store as incidents
from gennaker.ops.incidents.diagnosis import incident_diagnosis
from gennaker.ops.incidents.settings import PRIORITIES
from gennaker.ops.incidents.tables import incidents as incidents_table
from gennaker.ops.settings import ops_settings
from gennaker.store.tables import executions
from gennaker.web.access import Principal
from gennaker.web.deps import back, principal, render, web_state
from gennaker.web.events import LIFETIME, TICK, sse
from gennaker.web.settings import LEVELS
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
PrincipalDep = Annotated[Principal, Depends(principal)]
WebDep = Annotated[WebState, Depends(web_state)]
NoteField = Annotated[str, Form(max_length=incidents.NOTE_MAX)]
ID_MAX = 64
RESOLVED_SHOWN = 10  # the most recently resolved, below the open ones


def may_operate(me: Principal, application: str | None) -> bool:
    """The operator role on the incident's application; on an incident of no application, a global
    operator role (an operator of one application must not act on what it cannot attribute)."""
    if application is not None:
        return me.can("operator", application)
    return me.auth == "off" or any(":" not in r and LEVELS.get(r, 0) >= LEVELS["operator"] for r in me.roles)


def owner(incident: dict[str, Any]) -> str | None:
    """Who has it: the assignee, else whoever acknowledged it."""
    return incident.get("assignee") or incident.get("acknowledged_by")


# ---- the list -------------------------------------------------------------------------------------


def open_count(conn: Connection, readable: frozenset[str] | None) -> int:
    q = select(func.count()).where(incidents_table.c.status.in_(incidents.OPEN))
    if readable is not None:
        q = q.where(incidents_table.c.application.in_(sorted(readable)))
    return int(conn.execute(q).scalar() or 0)


def list_context(web: WebState, me: Principal) -> dict[str, Any]:
    readable = me.readable()
    with web.db.read() as conn:
        open_ = incidents.list_incidents(conn, readable, status="open", limit=incidents.LIST_MAX)
        resolved = incidents.list_incidents(conn, readable, status=incidents.RESOLVED, limit=RESOLVED_SHOWN)
    groups = [{"priority": p, "incidents": [i for i in open_ if i["priority"] == p]} for p in PRIORITIES]
    return {"groups": [g for g in groups if g["incidents"]], "open_total": len(open_), "resolved": resolved}


def list_fingerprint(ctx: dict[str, Any]) -> str:
    rows = [i for g in ctx["groups"] for i in g["incidents"]] + ctx["resolved"]
    return json.dumps(
        [(i["id"], i["status"], i["priority"], owner(i), i["updated_at"], i.get("alarms")) for i in rows],
        default=str,
    )


@router.get("/incidents", response_class=HTMLResponse)
async def incidents_page(request: Request, web: WebDep, me: PrincipalDep) -> Response:
    ctx = await run_in_threadpool(list_context, web, me)
    return render(request, "incidents.html", now=time.time(), **ctx)


@router.get("/incidents/count", response_class=HTMLResponse)
async def incident_count(request: Request, web: WebDep, me: PrincipalDep) -> Response:
    """The header's link with the number of open incidents the caller may read (polled by every page)."""

    def count() -> int:
        with web.db.read() as conn:
            return open_count(conn, me.readable())

    return render(request, "_incident_count.html", open_incidents=await run_in_threadpool(count))


@router.get("/incidents/events")
def incidents_events(request: Request, web: WebDep, me: PrincipalDep) -> StreamingResponse:
    seen = {"fp": ""}

    def tick() -> list[bytes]:
        ctx = list_context(web, me)
        fp = list_fingerprint(ctx)
        if fp == seen["fp"]:
            return []
        seen["fp"] = fp
        html = web.templates.env.get_template("_incident_list.html").render(now=time.time(), **ctx)
        return [sse("incidents", html)]

    return _stream(request, tick)


# ---- one incident ---------------------------------------------------------------------------------


def _tasks(conn: Connection, timeline: list[dict[str, Any]]) -> dict[str, str]:
    """The status of every task an action of the timeline started (a rollback's)."""
    ids = [str((e["details"] or {}).get("task")) for e in timeline if e["kind"] == "action"]
    ids = [i for i in ids if i and i != "None"]
    if not ids:
        return {}
    rows = conn.execute(select(executions.c.id, executions.c.status).where(executions.c.id.in_(ids))).all()
    return {r.id: r.status for r in rows}


def live_context(web: WebState, incident_id: str, me: Principal) -> dict[str, Any]:
    """What changes while the page is open: the incident, its alarms, its timeline and its tasks."""
    readable = me.readable()
    with web.db.read() as conn:
        incident = incidents.get(conn, incident_id, readable)
        timeline = incidents.timeline(conn, incident_id, readable)
        alarms = incidents.alarms_of(conn, incident_id)
        tasks = _tasks(conn, timeline)
    return {
        "incident": incident,
        "owner": owner(incident),
        "alarms": alarms,
        "timeline": timeline,
        "tasks": tasks,
        "can_operate": may_operate(me, incident["application"]),
        "rollback_action": ROLLBACK,
    }


def page_context(web: WebState, incident_id: str, me: Principal) -> dict[str, Any]:
    ctx = live_context(web, incident_id, me)
    workload_tags = ops_settings(web.runtime.config.ops).workload_tags
    with web.db.read() as conn:
        diagnosis, stored = incident_diagnosis(conn, ctx["incident"], ctx["timeline"], workload_tags=workload_tags)
    return {**ctx, "diagnosis": diagnosis, "diagnosis_stored": stored}


def incident_fingerprint(ctx: dict[str, Any]) -> str:
    i = ctx["incident"]
    events = [(e["id"], [d.get("status") for d in e.get("deliveries", [])]) for e in ctx["timeline"]]
    alarms = [(a["alarm_key"], a["state"]) for a in ctx["alarms"]]
    head = (i["status"], i["priority"], owner(i), i["escalation_level"], i["updated_at"])
    return json.dumps([head, events, alarms, ctx["tasks"]], default=str)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
async def incident_page(request: Request, incident_id: str, web: WebDep, me: PrincipalDep) -> Response:
    try:
        ctx = await run_in_threadpool(page_context, web, incident_id[:ID_MAX], me)
    except NotFound as exc:
        return render(request, "error.html", status_code=404, status=404, message=str(exc))
    return render(request, "incident.html", now=time.time(), **ctx)


@router.get("/incidents/{incident_id}/events")
def incident_events(request: Request, incident_id: str, web: WebDep, me: PrincipalDep) -> StreamingResponse:
    incident_id = incident_id[:ID_MAX]
    with web.db.read() as conn:  # a 404 now, before the stream starts, for what the caller may not read
        incidents.get(conn, incident_id, me.readable())
    csrf = getattr(request.state, "csrf", "")
    seen = {"fp": ""}

    def tick() -> list[bytes]:
        ctx = live_context(web, incident_id, me)
        fp = incident_fingerprint(ctx)
        if fp == seen["fp"]:
            return []
        seen["fp"] = fp
        env = web.templates.env
        common = {"principal": me, "csrf": csrf, "auth_on": web.auth is not None, "now": time.time(), **ctx}
        return [
            sse("head", env.get_template("_incident_head.html").render(**common)),
            sse("timeline", env.get_template("_incident_timeline.html").render(**common)),
        ]

    return _stream(request, tick)


# ---- actions --------------------------------------------------------------------------------------


def _incident_url(incident_id: str) -> str:
    return f"/incidents/{incident_id}"


def _change(web: WebState, me: Principal, incident_id: str, change: Callable[[Connection], Any]) -> None:
    """Check the role on the incident's application, then make the change in one transaction."""
    with web.db.begin() as conn:
        incident = incidents.get(conn, incident_id, me.readable())
        if not may_operate(me, incident["application"]):
            raise Forbidden(f"{me.name} may not change incident {incident_id}: it needs the operator role")
        change(conn)


async def _act(request: Request, web: WebState, me: Principal, incident_id: str, change: Any) -> Response:
    incident_id = incident_id[:ID_MAX]
    try:
        await run_in_threadpool(_change, web, me, incident_id, change)
    except NotFound as exc:
        return render(request, "error.html", status_code=404, status=404, message=str(exc))
    except Forbidden as exc:
        return render(request, "error.html", status_code=403, status=403, message=str(exc))
    except GennakerError as exc:
        return back(_incident_url(incident_id), str(exc))
    return back(_incident_url(incident_id))


@router.post("/incidents/{incident_id}/ack")
async def ack(request: Request, incident_id: str, web: WebDep, me: PrincipalDep) -> Response:
    return await _act(request, web, me, incident_id, lambda c: incidents.ack(c, incident_id, me.name, me.readable()))


@router.post("/incidents/{incident_id}/resolve")
async def resolve(request: Request, incident_id: str, web: WebDep, me: PrincipalDep, text: NoteField = "") -> Response:
    link_base = web.runtime.incidents.link_base

    def change(c: Connection) -> None:
        incidents.resolve(
            c, incident_id, me.name, text=text.strip() or None, applications=me.readable(), link_base=link_base
        )

    return await _act(request, web, me, incident_id, change)


@router.post("/incidents/{incident_id}/note")
async def note(request: Request, incident_id: str, web: WebDep, me: PrincipalDep, text: NoteField = "") -> Response:
    return await _act(
        request, web, me, incident_id, lambda c: incidents.note(c, incident_id, me.name, text, me.readable())
    )


@router.post("/incidents/{incident_id}/rollback")
async def rollback(request: Request, incident_id: str, web: WebDep, me: PrincipalDep) -> Response:
    incident_id = incident_id[:ID_MAX]
    try:
        await run_in_threadpool(rollback_from_incident, web.runtime, incident_id, me, RollbackBody())
    except NotFound as exc:
        return render(request, "error.html", status_code=404, status=404, message=str(exc))
    except Forbidden as exc:
        return render(request, "error.html", status_code=403, status=403, message=str(exc))
    except GennakerError as exc:
        return back(_incident_url(incident_id), str(exc))
    return back(_incident_url(incident_id))


# ---- the stream -----------------------------------------------------------------------------------


def _stream(request: Request, tick: Callable[[], list[bytes]]) -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        end = time.monotonic() + LIFETIME
        yield b"retry: 2000\n\n"
        while time.monotonic() < end and not await request.is_disconnected():
            for chunk in await run_in_threadpool(tick):
                yield chunk
            await asyncio.sleep(TICK)

    return StreamingResponse(
        gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
