"""Costs REST API: ``GET /api/costs`` answers the same query as ``gennaker costs``.

Scope: a caller whose roles name applications (``shop:viewer``) sees only the spend tagged with one
of them, whatever the grouping: the query carries an application-tag filter (Cost Explorer
``Filter.Tags``, a ``WHERE`` on FOCUS ``Tags``), so grouped by application they see their
applications' rows and no untagged row, and grouped by account, service, region or another tag they
see how *their* applications' spend splits — never other applications' spend. A caller with a global
role sees everything. A denied cost API is a 403 with the one-line reason.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from gennaker.api.scope import ReadableDep
from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.costs import CostQuery, get_costs, scoped_query
from gennaker.ops.costs.deploys import deploy_costs
from gennaker.spec.config import Config
from gennaker.store.db import Database

router = APIRouter(prefix="/api", tags=["costs"])


class CostRowOut(BaseModel):
    key: str  # the group's value; "" is spend without the grouping's tag
    label: str
    untagged: bool
    total: float
    previous: float
    change: float
    change_ratio: float | None
    series: list[float]  # one amount per bucket


class CostQueryOut(BaseModel):
    group_by: str
    period: str
    granularity: str
    metric: str


class CostReportOut(BaseModel):
    query: CostQueryOut
    source: Literal["cost_explorer", "focus"]
    currency: str
    start: str
    end: str  # exclusive
    previous_start: str
    previous_end: str
    buckets: list[str]
    total: float
    previous_total: float
    change: float
    untagged: float | None  # grouped by a tag only
    untagged_share: float | None
    rows: list[CostRowOut]
    movers: list[str]
    requests: int  # Cost Explorer requests this answer cost now (0 from the cache)
    cached: bool
    fetched_at: float | None
    notes: list[str]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _config(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


def _sessions(request: Request) -> AwsSessions:
    aws = getattr(request.app.state, "aws", None)
    return aws if isinstance(aws, AwsSessions) else AwsSessions(_config(request))


@router.get("/costs", response_model=CostReportOut)
def costs(
    request: Request,
    readable: ReadableDep,
    db: Annotated[Database, Depends(_db)],
    by: Annotated[
        str, Query(max_length=140, description="account, service, region, application, environment or tag:KEY")
    ] = "service",
    period: Annotated[str, Query(max_length=10, description="Nd (e.g. 30d), month or YYYY-MM")] = "30d",
    granularity: Literal["daily", "monthly"] = "daily",
    metric: Literal["unblended", "amortized"] = "unblended",
    refresh: Annotated[bool, Query(description="ask Cost Explorer again instead of the cache")] = False,
) -> dict[str, object]:
    """Spend grouped by a dimension or tag over a period, against the period before."""
    query = scoped_query(CostQuery(group_by=by, period=period, granularity=granularity, metric=metric), readable)
    report = get_costs(db, _config(request), _sessions(request), query, refresh=refresh)
    return report.as_dict()


class DeployCostOut(BaseModel):
    execution_id: str
    application: str
    stage_id: str
    server_group: str
    previous_server_group: str
    instance_type: str | None
    instances: int
    started_at: float
    released_at: float
    released_by: str
    instance_hours: float
    rate: float | None
    cost: float | None


@router.get("/executions/{execution_id}/cost", response_model=list[DeployCostOut])
def execution_cost(
    request: Request, execution_id: str, readable: ReadableDep, db: Annotated[Database, Depends(_db)]
) -> list[dict[str, object]]:
    """Instance-hours and cost of the previous server groups this execution's deploys kept running."""
    rows = deploy_costs(db, execution_id[:64], _config(request).costs.rates, readable=readable)
    return [r.as_dict() for r in rows]
