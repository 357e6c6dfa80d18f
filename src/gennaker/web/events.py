"""Server-sent events: each connection polls the database every half second (two or three indexed
queries) and pushes a rendered fragment only when what it shows has changed.

Nothing is kept in the server's memory between connections, so a browser whose replica dies
reconnects through the load balancer to any other and carries on. Log lines go out with their id as
the event id: the browser sends the last one back (Last-Event-ID) when it reconnects, and the stream
resumes after it instead of appending again the lines the page already shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from gennaker.engine import logs as stage_logs
from gennaker.engine import views
from gennaker.web import console, queries
from gennaker.web.access import Principal
from gennaker.web.deps import principal, web_state
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
TICK = 0.5
IDLE_TICK = 2.0  # a finished execution rarely changes again (a restart can revive it)
LIFETIME = 600.0  # then the browser reconnects: no stream lives for ever behind a proxy


def sse(event: str, html: str, event_id: int | None = None) -> bytes:
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    ident = f"id: {event_id}\n" if event_id is not None else ""
    return f"event: {event}\n{ident}{data}\n".encode()


def resume_after(request: Request, after: int) -> int:
    """Where a log stream starts: after the last line the browser says it has (Last-Event-ID, sent
    when it reconnects, perhaps to another replica), else after the page's own ``after``."""
    last = request.headers.get("last-event-id", "").strip()
    if last.isdigit() and len(last) <= 18:  # bounded: an id the server sent, never a caller's essay
        return max(after, int(last))
    return after


def _stream(request: Request, tick: Callable[[], list[bytes]], done: Callable[[], bool]) -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        end = time.monotonic() + LIFETIME
        yield b"retry: 2000\n\n"
        while time.monotonic() < end and not await request.is_disconnected():
            for chunk in await run_in_threadpool(tick):
                yield chunk
            await asyncio.sleep(IDLE_TICK if done() else TICK)

    return StreamingResponse(
        gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


@router.get("/applications/{app}/pipelines/events")
def pipeline_events(
    request: Request, app: str, web: Annotated[WebState, Depends(web_state)], f: console.FiltersDep
) -> StreamingResponse:
    seen: dict[str, str] = {}

    def tick() -> list[bytes]:
        ctx = console.pipelines_context(web, app, f)
        out = []
        for g in ctx["groups"]:
            key = g["pipeline"] or "list"
            fp = queries.fingerprint([g])
            if seen.get(key) != fp:
                seen[key] = fp
                html = web.templates.env.get_template("_rows.html").render(group=g, **ctx)
                out.append(sse(f"g-{key}", html))
        return out

    return _stream(request, tick, lambda: False)


@router.get("/applications/{app}/tasks/events")
def task_events(request: Request, app: str, web: Annotated[WebState, Depends(web_state)]) -> StreamingResponse:
    seen = {"fp": ""}

    def tick() -> list[bytes]:
        with web.db.read() as conn:
            tasks = queries.tasks(conn, app)
        fp = "|".join(t["id"] + t["status"] for t in tasks)
        if fp == seen["fp"]:
            return []
        seen["fp"] = fp
        return [sse("tasks", web.templates.env.get_template("_tasks.html").render(tasks=tasks))]

    return _stream(request, tick, lambda: False)


@router.get("/executions/{execution_id}/events")
def execution_events(
    request: Request,
    execution_id: str,
    web: Annotated[WebState, Depends(web_state)],
    me: Annotated[Principal, Depends(principal)],
    stage: str | None = None,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> StreamingResponse:
    state: dict[str, Any] = {"fp": "", "after": resume_after(request, after), "done": False}
    csrf = getattr(request.state, "csrf", "")
    with web.db.read() as conn:  # a 404 now, before the stream starts, for what the caller may not read
        views.check_readable(conn, execution_id, me.readable())

    def tick() -> list[bytes]:
        ctx = console.execution_context(web, execution_id, stage, me, with_log=False)
        out = []
        fp = console.execution_fingerprint(ctx)
        if fp != state["fp"]:
            state["fp"] = fp
            html = web.templates.env.get_template("_execution.html").render(
                principal=me, csrf=csrf, auth_on=web.auth is not None, **ctx
            )
            out.append(sse("execution", html))
        state["done"] = ctx["done"]
        if ctx["stage"] and ctx["stage"]["capabilities"]["streams_log"]:
            with web.db.read() as conn:
                lines = stage_logs.read(conn, execution_id, ctx["stage"]["stage_id"], int(state["after"]))
            if lines:
                state["after"] = lines[-1]["id"]
                html = web.templates.env.get_template("_log.html").render(log=lines)
                out.append(sse("log", html, event_id=int(state["after"])))
        return out

    return _stream(request, tick, lambda: bool(state["done"]))
