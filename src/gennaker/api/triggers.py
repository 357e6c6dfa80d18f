"""Trigger deliveries over HTTP: pushes (``/hooks/git/{provider}``), signed webhooks
(``/hooks/webhook/{source}``), and the list of every delivery with its outcome."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gennaker.api.scope import ReadableDep
from gennaker.runtime import Runtime
from gennaker.store.tables import executions
from gennaker.triggers.fire import Catalog, list_deliveries
from gennaker.triggers.receive import receive_git, receive_webhook

router = APIRouter(tags=["triggers"])


def _catalog(request: Request) -> Catalog:
    runtime: Runtime = request.app.state.runtime
    return runtime.triggers.catalog


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


@router.post(
    "/hooks/git/{provider}",
    summary="A push from GitHub (X-Hub-Signature-256), GitLab (X-Gitlab-Token) or the generic form",
    responses={202: {"description": "started"}, 401: {"description": "bad signature"}, 404: {}, 422: {}},
)
async def git_hook(provider: str, request: Request) -> JSONResponse:
    body = await request.body()
    runtime: Runtime = request.app.state.runtime
    answer = await run_in_threadpool(receive_git, runtime.db, _catalog(request), provider, _headers(request), body)
    return JSONResponse(answer.body(), status_code=answer.status)


@router.post(
    "/hooks/webhook/{source}",
    summary="A signed JSON payload (X-Gennaker-Signature: sha256=HMAC) mapped to parameters",
    responses={202: {"description": "started"}, 401: {"description": "bad signature"}, 404: {}, 422: {}},
)
async def webhook_hook(source: str, request: Request) -> JSONResponse:
    body = await request.body()
    runtime: Runtime = request.app.state.runtime
    answer = await run_in_threadpool(receive_webhook, runtime.db, _catalog(request), source, _headers(request), body)
    return JSONResponse(answer.body(), status_code=answer.status)


@router.get("/api/triggers/deliveries", summary="Trigger deliveries, newest first, with their outcome")
def deliveries(
    request: Request,
    readable: ReadableDep,
    kind: str | None = Query(default=None, max_length=20),
    outcome: str | None = Query(default=None, max_length=20),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    runtime: Runtime = request.app.state.runtime
    with runtime.db.read() as conn:
        rows = list_deliveries(conn, kind=kind, outcome=outcome, limit=limit)
        if readable is None:
            return rows
        # A caller with roles on some applications sees the deliveries that started their pipelines.
        ids = [e["execution_id"] for r in rows for e in r["executions"] if e.get("execution_id")]
        theirs = {
            r.id
            for r in conn.execute(
                executions.select()
                .with_only_columns(executions.c.id)
                .where(executions.c.id.in_(ids), executions.c.application.in_(sorted(readable)))
            )
        }
    return [r for r in rows if any(e.get("execution_id") in theirs for e in r["executions"])]
