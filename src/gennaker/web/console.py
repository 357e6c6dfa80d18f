"""Console pages: applications, the pipelines tab, executions and stages, and the actions on them.

Actions are plain HTML forms posting to the API's paths without ``/api`` (so the same access rules
apply, see ``rules.py``); they answer with a redirect, so the console works without JavaScript.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from gennaker.engine import logs as stage_logs
from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.engine.model import STAGE_ACTIVE, STAGE_DONE
from gennaker.errors import GennakerError, NotFound
from gennaker.triggers.fire import with_triggers as trigger_info
from gennaker.web import graph, queries
from gennaker.web.access import Principal
from gennaker.web.deps import back, principal, render, safe_next, web_state
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
PrincipalDep = Annotated[Principal, Depends(principal)]
WebDep = Annotated[WebState, Depends(web_state)]


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/applications", status_code=303)


@router.get("/applications", response_class=HTMLResponse)
def applications(request: Request, web: WebDep, me: PrincipalDep) -> Response:
    with web.db.read() as conn:
        apps = [a for a in queries.applications(conn) if me.can("viewer", a["name"])]
    return render(request, "applications.html", apps=apps)


@router.get("/applications/{app}")
def application(app: str) -> RedirectResponse:
    return RedirectResponse(f"/applications/{app}/pipelines", status_code=303)


def filters_from(
    q: str, pipeline: list[str] | None, status: list[str] | None, group: str, n: int, page: int
) -> queries.Filters:
    return queries.Filters(
        search=q.strip()[:100],
        pipelines=pipeline or [],
        statuses=[s for s in status or [] if s in queries.STATUSES],
        group=group != "0",
        per_group=n,
        page=page,
    )


FilterArgs = dict[str, Any]


def filter_args(
    q: str = "",
    pipeline: Annotated[list[str] | None, Query()] = None,
    status: Annotated[list[str] | None, Query()] = None,
    group: str = "1",
    n: Annotated[int, Query(ge=1, le=50)] = 5,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> queries.Filters:
    return filters_from(q, pipeline, status, group, n, page)


FiltersDep = Annotated[queries.Filters, Depends(filter_args)]


def pipelines_context(web: WebState, app: str, f: queries.Filters) -> dict[str, Any]:
    with web.db.read() as conn:
        names = queries.pipeline_names(conn, app)
        groups = queries.execution_groups(conn, app, f)
        texts = queries.pipeline_texts(conn, app)
    shown = {g["pipeline"] for g in groups if g["pipeline"]}
    params = {name: _parameters(web, name, text, source) for name, (text, source) in texts.items() if name in shown}
    for g in groups:
        for e in g["executions"]:
            e["progress"] = graph.progress(e["stages"])
            e["graph"] = _small_graph(web, e)
    with web.db.read() as conn:  # what starts each pipeline besides a person, and when it last did
        rows = trigger_info(conn, web.runtime.triggers.catalog, [{"name": n} for n in shown])
    triggers = {r["name"]: r for r in rows if r["triggers"]}
    return {
        "app": app,
        "names": names,
        "groups": groups,
        "filters": f,
        "statuses": queries.STATUSES,
        "params": params,
        "triggers": triggers,
    }


GRAPHS_KEPT = 4096  # a few hundred kB of SVG


def _small_graph(web: WebState, e: dict[str, Any]) -> Markup:
    """A list row's stage graph, drawn once per (execution, statuses): drawing is most of a page's
    rendering time (bench/console.py), and finished executions do not change."""
    key = (e["id"], tuple(s["status"] for s in e["stages"]))
    svg = web.graphs.get(key)
    if svg is None:
        layout = graph.layout(e["stages"], node_w=120, node_h=26, gap_x=22, gap_y=6)
        draw = getattr(web.templates.env.get_template("_macros.html").module, "stage_graph")  # noqa: B009
        svg = str(draw(layout, e["id"], small=True))
        if len(web.graphs) >= GRAPHS_KEPT:
            web.graphs.clear()
        web.graphs[key] = svg
    return Markup(svg)  # rendered by the autoescaping template above: safe to insert as is


def _parameters(web: WebState, name: str, text: str | None, source: str | None) -> list[dict[str, Any]]:
    """The start form's fields. Parsing a pipeline costs milliseconds: cached per document text."""
    if not text:
        return []
    key = (name, text)
    cached = web.parameters.get(key)
    if cached is None:
        try:
            cached = [p.model_dump() for p in web.runtime.pipeline_from_text(text, source or name).parameters]
        except GennakerError:
            cached = []  # a stored document that no longer validates has no start form; the list still shows
        if len(web.parameters) >= 512:
            web.parameters.clear()
        web.parameters[key] = cached
    return cached


@router.get("/applications/{app}/pipelines", response_class=HTMLResponse)
async def pipelines_tab(request: Request, app: str, web: WebDep, f: FiltersDep) -> Response:
    ctx = await run_in_threadpool(pipelines_context, web, app, f)
    return render(request, "pipelines.html", tab="pipelines", **ctx)


@router.post("/pipelines/{name}/executions")
async def start(request: Request, name: str, web: WebDep, me: PrincipalDep) -> Response:
    form = await request.form()
    params = {k[6:]: str(v) for k, v in form.items() if k.startswith("param.") and str(v) != ""}

    def run() -> str:
        with web.db.read() as conn:
            text, source = views.pipeline_text(conn, name)
        pipeline = web.runtime.pipeline_from_text(text, source or name)
        return ops.start_execution(web.db, pipeline, params, me.name, "manual")

    try:
        execution_id = await run_in_threadpool(run)
    except GennakerError as exc:
        return back(safe_next(str(form.get("back") or "")), str(exc))
    return back(f"/executions/{execution_id}")


def canary_report(stage: dict[str, Any]) -> dict[str, Any] | None:
    """The canary report a stage produced (its ``report`` output: id and path), with its score."""
    outputs = stage.get("outputs") or {}
    report = outputs.get("report")
    if not isinstance(report, dict) or not report.get("id"):
        return None
    return {
        "id": str(report["id"]),
        "stage_id": stage["stage_id"],
        "stage_name": stage["name"],
        "score": outputs.get("score"),
        "result": outputs.get("result"),
    }


def judged_reports(stages: list[dict[str, Any]], stage: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The canary reports a judgment is asked to verify: the judged stage's own (a canary pausing on
    a marginal score), else those of the nearest stages it follows (breadth-first up ``requires``;
    a judgment after a canary and a few test stages still finds the canary)."""
    if stage is None:
        return []
    own = canary_report(stage)
    if own is not None:
        return [own]
    by_id = {s["stage_id"]: s for s in stages}
    seen = {stage["stage_id"]}
    level = [r for r in stage.get("requires") or [] if r in by_id]
    while level:
        found = [r for r in (canary_report(by_id[i]) for i in level) if r is not None]
        if found:
            return found
        seen |= set(level)
        level = sorted({r for i in level for r in by_id[i].get("requires") or [] if r in by_id and r not in seen})
    return []


def execution_context(
    web: WebState, execution_id: str, stage_id: str | None, me: Principal, with_log: bool = True
) -> dict[str, Any]:
    readable = me.readable()
    with web.db.read() as conn:
        ex = views.execution_detail(conn, execution_id, readable)
        if stage_id is None:
            active = [s for s in ex["stages"] if s["status"] in STAGE_ACTIVE]
            stage_id = (active or ex["stages"])[0]["stage_id"] if ex["stages"] else None
        stage = next((s for s in ex["stages"] if s["stage_id"] == stage_id), None)
        if stage_id is not None and stage is None:
            views.stage_detail(conn, execution_id, stage_id, readable)  # raises NotFound
        wants_log = with_log and stage is not None and stage["capabilities"]["streams_log"]
        log = stage_logs.read(conn, execution_id, stage["stage_id"], 0, limit=2000) if wants_log and stage else []
    app = ex["application"]
    judgment_roles = list(((stage or {}).get("judgment_request") or {}).get("roles") or [])
    return {
        "app": app,
        "ex": ex,
        "stage": stage,
        "log": log,
        "last_log": log[-1]["id"] if log else 0,
        "layout": graph.layout(ex["stages"]),
        "progress": graph.progress(ex["stages"]),
        "done": views.is_done(ex["status"]),
        "stage_done": STAGE_DONE,
        "can_operate": me.can("operator", app),
        "can_judge": bool(stage) and me.can_judge(app, judgment_roles),
        "judged_reports": judged_reports(ex["stages"], stage),
        "canary_report": canary_report,
    }


def execution_fingerprint(ctx: dict[str, Any]) -> str:
    ex = ctx["ex"]
    parts = [ex["status"], ex.get("message") or ""]
    for s in ex["stages"]:
        # awaiting_judgment: a rolling deploy pausing for people changes neither status nor task
        parts.append(
            f"{s['stage_id']}:{s['status']}:{s.get('task_index')}:{bool(s.get('judgment'))}:{s['awaiting_judgment']}"
        )
    return "|".join(parts)


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
async def execution_page(request: Request, execution_id: str, web: WebDep, me: PrincipalDep) -> Response:
    return await _execution(request, web, me, execution_id, None)


@router.get("/executions/{execution_id}/stages/{stage_id}", response_class=HTMLResponse)
async def stage_page(request: Request, execution_id: str, stage_id: str, web: WebDep, me: PrincipalDep) -> Response:
    return await _execution(request, web, me, execution_id, stage_id)


async def _execution(
    request: Request, web: WebState, me: Principal, execution_id: str, stage_id: str | None
) -> Response:
    try:
        ctx = await run_in_threadpool(execution_context, web, execution_id, stage_id, me)
    except NotFound as exc:
        return render(request, "error.html", status_code=404, status=404, message=str(exc))
    tab = "tasks" if ctx["ex"]["pipeline"].startswith(ops.TASK_PREFIX) else "pipelines"
    return render(request, "execution.html", tab=tab, **ctx)


def _back_to(execution_id: str, stage_id: str | None = None) -> str:
    return f"/executions/{execution_id}" + (f"/stages/{stage_id}" if stage_id else "")


async def _act(url: str, fn: Any, *args: Any) -> Response:
    try:
        await run_in_threadpool(fn, *args)
    except GennakerError as exc:
        return back(url, str(exc))
    return back(url)


@router.post("/executions/{execution_id}/cancel")
async def cancel(execution_id: str, web: WebDep, me: PrincipalDep, reason: Annotated[str, Form()] = "") -> Response:
    return await _act(
        _back_to(execution_id), ops.cancel, web.db, execution_id, me.name, reason or None, web.runtime.engine.on_event
    )


@router.post("/executions/{execution_id}/pause")
async def pause(execution_id: str, web: WebDep, me: PrincipalDep) -> Response:
    return await _act(_back_to(execution_id), ops.pause, web.db, execution_id, me.name)


@router.post("/executions/{execution_id}/resume")
async def resume(execution_id: str, web: WebDep, me: PrincipalDep) -> Response:
    return await _act(_back_to(execution_id), ops.resume, web.db, execution_id, me.name)


@router.post("/executions/{execution_id}/stages/{stage_id}/restart")
async def restart(execution_id: str, stage_id: str, web: WebDep, me: PrincipalDep) -> Response:
    return await _act(_back_to(execution_id, stage_id), ops.restart, web.db, execution_id, stage_id, me.name)


@router.post("/executions/{execution_id}/stages/{stage_id}/skip")
async def skip(execution_id: str, stage_id: str, web: WebDep, me: PrincipalDep) -> Response:
    return await _act(
        _back_to(execution_id, stage_id), ops.skip, web.db, execution_id, stage_id, me.name, web.runtime.skippable
    )


@router.post("/executions/{execution_id}/stages/{stage_id}/judge")
async def judge(
    execution_id: str,
    stage_id: str,
    web: WebDep,
    me: PrincipalDep,
    choice: Annotated[str, Form()],
    comment: Annotated[str, Form()] = "",
) -> Response:
    roles = set(me.roles) if web.auth is not None else None
    return await _act(
        _back_to(execution_id, stage_id),
        ops.judge,
        web.db,
        execution_id,
        stage_id,
        me.name,
        choice,
        comment or None,
        roles,
        me.is_admin,
    )
