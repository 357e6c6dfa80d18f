"""Pipelines, executions, stages, logs and the operations on them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from gennaker.api.deps import get_actor, get_actor_roles, get_runtime, is_admin
from gennaker.api.scope import ReadableDep
from gennaker.engine import logs as stage_logs
from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.runtime import Runtime
from gennaker.triggers.fire import refuse_cycles, with_triggers

router = APIRouter(prefix="/api", tags=["pipelines"])
MAX_ROW = 2**62  # row ids and offsets beyond this would overflow the database's 64-bit integers
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ActorDep = Annotated[str, Depends(get_actor)]


class PipelineIn(BaseModel):
    yaml: str = Field(description="The pipeline document (YAML).")
    source: str | None = Field(default=None, description="Where it came from (a file path or repository URL).")


class StartIn(BaseModel):
    params: dict[str, Any] = Field(default_factory=dict)
    trigger: str = "manual"


class RunIn(StartIn):
    yaml: str
    source: str | None = None
    base_dir: str | None = None


class JudgeIn(BaseModel):
    choice: str
    comment: str | None = None


class CancelIn(BaseModel):
    reason: str | None = None


class Started(BaseModel):
    id: str


class Done(BaseModel):
    ok: bool = True


@router.get("/pipelines", summary="List pipelines")
def list_pipelines(rt: RuntimeDep, readable: ReadableDep, application: str | None = None) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return with_triggers(conn, rt.triggers.catalog, views.list_pipelines(conn, application, readable))


@router.post("/pipelines", summary="Register (or update) a pipeline", status_code=201)
def register_pipeline(body: PipelineIn, rt: RuntimeDep, actor: ActorDep) -> dict[str, Any]:
    pipeline = rt.pipeline_from_text(body.yaml, body.source or "<api>")
    with rt.db.begin() as conn:
        refuse_cycles(conn, rt.triggers.catalog, pipeline, rt.config.limits)
        ops.save_pipeline(conn, pipeline, actor, registered=True)
        ops.record(conn, "register_pipeline", actor, pipeline=pipeline.name)
    return {"name": pipeline.name, "application": pipeline.application, "stages": len(pipeline.stages)}


@router.get("/pipelines/{name}", summary="A registered pipeline's document")
def get_pipeline(name: str, rt: RuntimeDep, readable: ReadableDep) -> dict[str, Any]:
    with rt.db.read() as conn:
        text, source = views.pipeline_text(conn, name, readable)
    p = rt.pipeline_from_text(text, source or name)
    return {
        "name": p.name,
        "application": p.application,
        "source": source,
        "yaml": text,
        "parameters": [x.model_dump() for x in p.parameters],
        "stages": [{"id": s.id, "name": s.display_name, "type": s.type, "requires": s.requires} for s in p.stages],
    }


@router.post("/pipelines/{name}/executions", summary="Start a registered pipeline", status_code=201)
def start_registered(name: str, body: StartIn, rt: RuntimeDep, actor: ActorDep) -> Started:
    with rt.db.read() as conn:
        text, source = views.pipeline_text(conn, name)
    pipeline = rt.pipeline_from_text(text, source or name)
    return Started(id=ops.start_execution(rt.db, pipeline, body.params, actor, body.trigger))


@router.post("/executions", summary="Run a pipeline document once (without registering it)", status_code=201)
def run_document(body: RunIn, rt: RuntimeDep, actor: ActorDep) -> Started:
    pipeline = rt.pipeline_from_text(body.yaml, body.source or "<api>")
    return Started(id=ops.start_execution(rt.db, pipeline, body.params, actor, body.trigger, body.base_dir))


@router.get("/executions", summary="List executions, newest first")
def list_executions(
    rt: RuntimeDep,
    readable: ReadableDep,
    pipeline: str | None = None,
    application: str | None = None,
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW)] = 0,
    kind: Annotated[Literal["pipelines", "tasks"] | None, Query(description="pipelines or tasks only")] = None,
) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return views.list_executions(conn, pipeline, status, application, limit, offset, kind, readable)


@router.get("/executions/{execution_id}", summary="An execution with its stages")
def get_execution(execution_id: str, rt: RuntimeDep, readable: ReadableDep) -> dict[str, Any]:
    with rt.db.read() as conn:
        return views.execution_detail(conn, execution_id, readable)


@router.get("/executions/{execution_id}/operations", summary="Who did what to an execution")
def get_operations(execution_id: str, rt: RuntimeDep, readable: ReadableDep) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return views.execution_operations(conn, execution_id, readable)


@router.get("/executions/{execution_id}/stages/{stage_id}", summary="One stage")
def get_stage(execution_id: str, stage_id: str, rt: RuntimeDep, readable: ReadableDep) -> dict[str, Any]:
    with rt.db.read() as conn:
        return views.stage_detail(conn, execution_id, stage_id, readable)


@router.get(
    "/executions/{execution_id}/stages/{stage_id}/logs",
    summary="A stage's log; with follow=true, streamed as NDJSON until the stage ends",
)
def get_logs(
    execution_id: str,
    stage_id: str,
    rt: RuntimeDep,
    readable: ReadableDep,
    after: Annotated[int, Query(ge=0, le=MAX_ROW, description="only lines after this id")] = 0,
    follow: bool = False,
) -> Any:
    with rt.db.read() as conn:
        views.stage_detail(conn, execution_id, stage_id, readable)
        if not follow:
            return stage_logs.read(conn, execution_id, stage_id, after)

    async def stream() -> AsyncIterator[bytes]:
        last = after
        while True:
            with rt.db.read() as conn:
                rows = stage_logs.read(conn, execution_id, stage_id, last)
                status = views.stage_detail(conn, execution_id, stage_id)["status"]
            for r in rows:
                last = r["id"]
                yield (json.dumps(r) + "\n").encode()
            if not rows and (views.is_done(status) or status in ("SKIPPED", "FAILED_CONTINUE")):
                return
            await asyncio.sleep(0.25)

    return StreamingResponse(stream(), media_type="application/x-ndjson")


@router.post("/executions/{execution_id}/cancel", summary="Cancel (running commands are terminated)")
def cancel(execution_id: str, rt: RuntimeDep, actor: ActorDep, body: CancelIn | None = None) -> Done:
    ops.cancel(rt.db, execution_id, actor, body.reason if body else None, rt.engine.on_event)
    return Done()


@router.post("/executions/{execution_id}/pause", summary="Pause")
def pause(execution_id: str, rt: RuntimeDep, actor: ActorDep) -> Done:
    ops.pause(rt.db, execution_id, actor)
    return Done()


@router.post("/executions/{execution_id}/resume", summary="Resume")
def resume(execution_id: str, rt: RuntimeDep, actor: ActorDep) -> Done:
    ops.resume(rt.db, execution_id, actor)
    return Done()


@router.post("/executions/{execution_id}/stages/{stage_id}/restart", summary="Restart a stage and what follows")
def restart(execution_id: str, stage_id: str, rt: RuntimeDep, actor: ActorDep) -> Done:
    ops.restart(rt.db, execution_id, stage_id, actor)
    return Done()


@router.post("/executions/{execution_id}/stages/{stage_id}/skip", summary="Skip the rest of a wait")
def skip(execution_id: str, stage_id: str, rt: RuntimeDep, actor: ActorDep) -> Done:
    ops.skip(rt.db, execution_id, stage_id, actor, rt.skippable)
    return Done()


@router.post("/executions/{execution_id}/stages/{stage_id}/judge", summary="Judge a manual judgment stage")
def judge(
    execution_id: str,
    stage_id: str,
    body: JudgeIn,
    rt: RuntimeDep,
    actor: ActorDep,
    roles: Annotated[set[str] | None, Depends(get_actor_roles)],
    admin: Annotated[bool, Depends(is_admin)],
) -> Done:
    ops.judge(rt.db, execution_id, stage_id, actor, body.choice, body.comment, roles, admin)
    return Done()
