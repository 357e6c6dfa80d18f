"""DR drills: past drills (scoped to the caller's applications), one drill's report, and starting
one. A drill started here runs on the engine's workers as a one-stage execution of a ``dr_drill``
stage (the same stage a pipeline uses); the path names the application, so starting one needs the
operator role on it (``web.rules``) and is audit-logged like every mutation."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gennaker.api.deps import get_actor, get_runtime
from gennaker.api.scope import ReadableDep
from gennaker.engine import operations as ops
from gennaker.errors import InvalidInput
from gennaker.ops.dr import store
from gennaker.ops.dr.service import check_account
from gennaker.runtime import Runtime
from gennaker.stages.dr_drill import DrDrillConfig

router = APIRouter(tags=["dr"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ActorDep = Annotated[str, Depends(get_actor)]


class DrillOut(BaseModel):
    id: str
    application: str
    account: str | None
    scenario: str | None
    from_region: str | None
    to_region: str | None
    status: str | None = Field(description="RUNNING, SUCCEEDED, FAILED or CANCELED.")
    started_at: float | None
    ended_at: float | None
    rto_s: float | None = Field(description="Measured RTO: start to serving in the DR region (seconds).")
    rpo: list[dict[str, Any]] | None = Field(description="Per data store: age of its newest copy at the start.")
    rpo_s: float | None = Field(description="The worst data-store age at the start (seconds).")
    objectives: dict[str, Any] | None
    report: dict[str, Any] | None = Field(description="steps [{name, status, duration_s, detail}], missing, ...")
    execution_id: str | None
    stage_id: str | None


class DrillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(max_length=100)
    from_region: str = Field(max_length=50)
    to_region: str = Field(max_length=50)
    scenario: Literal["region_loss", "restore_data", "failover_dns"] = "region_loss"
    rto: str | float | None = None
    rpo: str | float | None = None
    keep: bool = False


class DrillStarted(BaseModel):
    execution_id: str


@router.get("/api/dr/drills", summary="DR drills, newest first", response_model=list[DrillOut])
def list_drills(
    rt: RuntimeDep,
    readable: ReadableDep,
    application: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=store.LIST_MAX)] = 50,
) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return store.recent_drills(conn, application, limit, applications=readable)


@router.get("/api/dr/drills/{drill_id}", summary="A DR drill and its report", response_model=DrillOut)
def get_drill(drill_id: Annotated[str, Path(max_length=36)], rt: RuntimeDep, readable: ReadableDep) -> dict[str, Any]:
    with rt.db.read() as conn:
        return store.get_drill(conn, drill_id, readable)


@router.post(
    "/api/applications/{application}/dr/drills",
    summary="Start a DR drill of an application (runs on the workers)",
    response_model=DrillStarted,
    status_code=202,
)
def start_drill(
    application: Annotated[str, Path(max_length=100)], body: DrillRequest, rt: RuntimeDep, actor: ActorDep
) -> DrillStarted:
    stage = {
        "id": "drill",
        "type": "dr_drill",
        "account": body.account,
        "application": application,
        "from_region": body.from_region,
        "to_region": body.to_region,
        "scenario": body.scenario,
        "objectives": {k: v for k, v in {"rto": body.rto, "rpo": body.rpo}.items() if v is not None},
        "keep": body.keep,
    }
    if body.account not in rt.config.accounts:
        raise InvalidInput(f"unknown account '{body.account}'")
    try:
        cfg = DrDrillConfig.model_validate(stage)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
    check_account(rt.config, cfg)
    text = json.dumps({"name": f"dr-drill-{application}", "application": application, "stages": [stage]})
    pipeline = rt.pipeline_from_text(text, "<dr drill>")
    return DrillStarted(execution_id=ops.start_execution(rt.db, pipeline, {}, actor))
