"""Recommended alarms over HTTP: ``GET /api/alarms/plan`` (the diff) and ``POST /api/alarms/apply``.

Both are scoped to the caller's applications: the plan shows only resources (and our alarms) of
applications the caller may read, apply changes only those of applications the caller operates (a
global operator or admin: every application, and resources of none). The access-control middleware
role-checks and audit-logs the POST like every mutation (``web/rules.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gennaker.api.ops import ConfigDep, SessionsDep
from gennaker.api.scope import ReadableDep
from gennaker.errors import Forbidden
from gennaker.ops.alarms.plan import AlarmPlan
from gennaker.ops.alarms.service import apply_plan, plan_alarms
from gennaker.ops.alarms.settings import alarm_settings
from gennaker.ops.settings import ops_settings
from gennaker.spec.config import Config
from gennaker.web.access import Principal
from gennaker.web.settings import LEVELS

router = APIRouter(prefix="/api/alarms", tags=["alarms"])

Name = Annotated[str, Field(min_length=1, max_length=200)]


class PlanRowModel(BaseModel):
    action: str = Field(description="create, update, unchanged, covered, conflict, stale or enable-metrics")
    account: str
    region: str
    alarm: str
    recommendation: str | None
    resource: str | None
    application: str | None
    tier: str | None
    detail: str
    spec: dict[str, Any] | None = Field(description="PutMetricAlarm arguments (create, update)")
    tags: dict[str, str]
    arn: str | None


class PlanModel(BaseModel):
    snapshot_id: str
    counts: dict[str, int]
    problems: list[str] = Field(description="scopes planned partly or not at all, with the reason")
    warnings: list[str] = Field(description="planned, but worth knowing (e.g. a topic nobody hears)")
    rows: list[PlanRowModel]


class OutcomeModel(PlanRowModel):
    ok: bool
    message: str


class ApplyModel(PlanModel):
    outcomes: list[OutcomeModel]


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    application: Name | None = None
    topic: Annotated[str, Field(max_length=400)] | None = None
    accounts: Annotated[list[Name], Field(max_length=100)] | None = None
    regions: Annotated[list[Name], Field(max_length=50)] | None = None


def operable(principal: Principal | None) -> frozenset[str] | None:
    """Applications the caller may change, or None for all (a global operator or admin, or access
    control off)."""
    if principal is None or principal.auth == "off":
        return None
    if max((LEVELS.get(r, 0) for r in principal.roles if ":" not in r), default=0) >= LEVELS["operator"]:
        return None
    return frozenset(
        app for app, sep, lvl in (r.rpartition(":") for r in principal.roles) if sep and LEVELS.get(lvl, 0) >= 2
    )


def _plan(
    config: Config,
    sessions: SessionsDep,
    scope: frozenset[str] | None,
    application: str | None,
    topic: str | None,
    accounts: list[str] | None,
    regions: list[str] | None,
) -> AlarmPlan:
    if scope is not None and application is not None and application not in scope:
        raise Forbidden(f"no role on application '{application}' for this")
    return plan_alarms(
        sessions,
        ops_settings(config.ops),
        alarm_settings(config.alarms),
        topic=topic,
        application=application,
        accounts=accounts,
        regions=regions,
        readable=scope,
    )


@router.get("/plan", summary="The recommended alarms as a diff against CloudWatch", response_model=PlanModel)
def plan(
    config: ConfigDep,
    sessions: SessionsDep,
    readable: ReadableDep,
    application: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    topic: Annotated[str | None, Query(max_length=400)] = None,
    account: Annotated[list[str] | None, Query(max_length=100)] = None,
    region: Annotated[list[str] | None, Query(max_length=50)] = None,
) -> dict[str, Any]:
    return _plan(config, sessions, readable, application, topic, account, region).to_json()


@router.post(
    "/apply",
    summary="Create/update the recommended alarms and delete our stale ones (idempotent; user alarms untouched)",
    response_model=ApplyModel,
)
def apply(body: ApplyRequest, request: Request, config: ConfigDep, sessions: SessionsDep) -> dict[str, Any]:
    scope = operable(getattr(request.state, "principal", None))
    if scope is not None and not scope:
        raise Forbidden("applying alarms needs the operator role on an application")
    found = _plan(config, sessions, scope, body.application, body.topic, body.accounts, body.regions)
    outcomes = apply_plan(sessions, found) if found.changes else []
    return {**found.to_json(), "outcomes": [o.to_dict() for o in outcomes]}
