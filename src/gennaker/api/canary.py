"""Canary analyses: the list (of an execution) and one analysis with its judgements, per metric the
classification and the baseline and canary series. Reads are scoped to the caller's applications
(``api.scope``): an analysis of another application is a 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from gennaker.api.deps import get_runtime
from gennaker.api.scope import ReadableDep
from gennaker.metrics import store as canary_store
from gennaker.runtime import Runtime

router = APIRouter(prefix="/api/canary", tags=["canary"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class AnalysisOut(BaseModel):
    id: str
    execution_id: str | None = Field(description="The execution whose canary stage ran it.")
    stage_id: str | None
    attempt: int
    application: str
    baseline: str = Field(description="The baseline server group.")
    canary: str = Field(description="The canary server group.")
    location: str
    config: dict[str, Any] = Field(description="The analysis block (timing, thresholds, metrics, groups).")
    started_at: float = Field(description="When both groups took traffic (epoch seconds); windows count from here.")
    ended_at: float | None
    status: str = Field(description="running, succeeded, failed or canceled.")
    result: str | None = Field(description="pass, marginal or fail: the last judgement's.")
    score: float | None
    message: str | None


class JudgementOut(BaseModel):
    index: int = Field(description="1-based interval number.")
    window_start: float
    window_end: float
    judged_at: float
    score: float
    result: str
    reasons: list[str] = Field(default_factory=list, description="Rules that overrode the weighted sum.")
    errors: list[str] = Field(default_factory=list, description="Metrics that could not be judged, with why.")
    groups: list[dict[str, Any]] = Field(default_factory=list, description="Per group: weight, score, counts.")
    metrics: list[dict[str, Any]] = Field(
        description="Per metric: label, reason, medians, means, effect size, confidence interval, and the "
        "baseline and canary series ({t: [...], v: [...]} or {error})."
    )


class AnalysisDetail(AnalysisOut):
    judgements: list[JudgementOut]


@router.get("/analyses", summary="Canary analyses, newest first", response_model=list[AnalysisOut])
def list_analyses(
    rt: RuntimeDep,
    readable: ReadableDep,
    execution: Annotated[str | None, Query(max_length=100, description="Only this execution's.")] = None,
    limit: Annotated[int, Query(ge=1, le=canary_store.LIST_LIMIT)] = 50,
) -> list[dict[str, Any]]:
    return canary_store.list_analyses(rt.db, execution_id=execution, readable=readable, limit=limit)


@router.get("/analyses/{analysis_id}", summary="A canary analysis and its judgements", response_model=AnalysisDetail)
def get_analysis(
    analysis_id: Annotated[str, Path(max_length=100)], rt: RuntimeDep, readable: ReadableDep
) -> dict[str, Any]:
    return canary_store.get_analysis(rt.db, analysis_id, readable=readable)
