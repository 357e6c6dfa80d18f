"""The other console pages: clusters, load balancers, security groups, tasks, readiness, the audit
log and API tokens. Cloud and readiness data come from ``gennaker.cloud`` / ``gennaker.ops`` when
those provide a read function (see ``sources.py``); otherwise the tab explains what is missing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from gennaker.errors import GennakerError
from gennaker.ops.settings import ops_settings
from gennaker.web import queries, sources, store
from gennaker.web.access import Principal
from gennaker.web.api import TokenIn, create_token_for, revoke_token_for
from gennaker.web.deps import back, principal, render, web_state
from gennaker.web.dr import readiness_drills
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
WebDep = Annotated[WebState, Depends(web_state)]
PrincipalDep = Annotated[Principal, Depends(principal)]

CLOUD_TABS = {"clusters": "Clusters", "loadbalancers": "Load balancers", "securitygroups": "Security groups"}


async def cloud_tab(request: Request, app: str, tab: str, web: WebState) -> Response:
    data = await run_in_threadpool(sources.cloud, web.runtime, app, tab)
    return render(request, "cloud.html", app=app, tab=tab, title=CLOUD_TABS[tab], data=data)


@router.get("/applications/{app}/clusters", response_class=HTMLResponse)
async def clusters_tab(request: Request, app: str, web: WebDep, me: PrincipalDep) -> Response:
    data = await run_in_threadpool(sources.cloud, web.runtime, app, "clusters")
    # Viewers see no action buttons; the rules table refuses their posts anyway (403).
    return render(request, "clusters.html", app=app, tab="clusters", data=data, can_operate=me.can("operator", app))


@router.get("/applications/{app}/clusters/traffic", response_class=HTMLResponse)
async def clusters_traffic(request: Request, app: str, web: WebDep) -> Response:
    """The CLUSTERS tab's live traffic panel alone (it asks for itself again every 2 s)."""
    data = await run_in_threadpool(sources.cloud, web.runtime, app, "clusters")
    return render(request, "_traffic.html", app=app, data=data)


@router.get("/applications/{app}/loadbalancers", response_class=HTMLResponse)
async def load_balancers_tab(request: Request, app: str, web: WebDep) -> Response:
    return await cloud_tab(request, app, "loadbalancers", web)


@router.get("/applications/{app}/securitygroups", response_class=HTMLResponse)
async def security_groups_tab(request: Request, app: str, web: WebDep) -> Response:
    return await cloud_tab(request, app, "securitygroups", web)


@router.get("/applications/{app}/tasks", response_class=HTMLResponse)
def tasks_tab(request: Request, app: str, web: WebDep) -> Response:
    with web.db.read() as conn:
        tasks = queries.tasks(conn, app)
        rows = store.read_audit(conn, application=app, limit=200)
    return render(request, "tasks.html", app=app, tab="tasks", tasks=tasks, entries=rows)


@router.get("/applications/{app}/readiness", response_class=HTMLResponse)
async def readiness_tab(request: Request, app: str, web: WebDep, me: PrincipalDep) -> Response:
    data = await run_in_threadpool(sources.readiness, web.runtime, app, me.readable() is None)
    drills = await run_in_threadpool(dr_drills, web, app)  # next to the audit (web/dr.py)
    return render(request, "readiness.html", app=app, tab="readiness", data=data, drills=drills)


def dr_drills(web: WebState, app: str) -> dict[str, Any]:
    with web.db.read() as conn:
        drills = readiness_drills(conn, app)
    try:  # the window in which the audit's DR checks name a drill (said on the tab)
        drills["window_days"] = ops_settings(web.runtime.config.ops).dr_drill_max_age_days
    except GennakerError:
        drills["window_days"] = None  # invalid ops settings: the audit itself says so
    return drills


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    web: WebDep,
    me: PrincipalDep,
    application: str | None = None,
    actor: str | None = None,
    before: int | None = None,
) -> Response:
    if not (me.is_admin or (application and me.can("viewer", application))):
        return render(
            request,
            "error.html",
            status_code=403,
            status=403,
            message="The audit log of all applications is for admins; open it from an application's TASKS tab.",
        )
    with web.db.read() as conn:
        rows = store.read_audit(conn, application or None, actor or None, None, before, 100)
    return render(request, "audit.html", entries=rows, application=application or "", actor=actor or "")


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, web: WebDep, me: PrincipalDep) -> Response:
    with web.db.read() as conn:
        rows = store.list_tokens(conn, None if me.is_admin else me.name)
    return render(request, "tokens.html", tokens=rows, created=None)


@router.post("/tokens", response_class=HTMLResponse)
async def tokens_create(
    request: Request,
    web: WebDep,
    me: PrincipalDep,
    name: Annotated[str, Form(max_length=100)],
    roles: Annotated[str, Form()] = "",
    days: Annotated[str, Form()] = "",
) -> Response:
    wanted = [r.strip() for r in roles.replace(",", " ").split() if r.strip()] or None
    try:
        body = TokenIn(name=name, roles=wanted, expires_in_days=float(days) if days.strip() else None)
        created: dict[str, Any] = await run_in_threadpool(create_token_for, web, me, body)
    except (GennakerError, ValueError) as exc:
        return back("/tokens", str(exc))
    with web.db.read() as conn:
        rows = store.list_tokens(conn, None if me.is_admin else me.name)
    return render(request, "tokens.html", status_code=201, tokens=rows, created=created)


@router.post("/tokens/{token_id}/revoke")
async def tokens_revoke(token_id: str, web: WebDep, me: PrincipalDep) -> Response:
    try:
        await run_in_threadpool(revoke_token_for, web, me, token_id)
    except GennakerError as exc:
        return back("/tokens", str(exc))
    return back("/tokens")
