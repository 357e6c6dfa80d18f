"""Ops REST API: run and read audits, browse inventory snapshots, diff them.

Audits and inventory snapshots cover whole accounts, so reading them needs a viewer role on every
application (a global ``viewer``, ``operator`` or ``admin``). A caller whose roles name applications
(``shop:viewer``) reads the latest audit narrowed to the resources tagged with one of them, at
``GET /api/applications/{application}/readiness`` (the console's READINESS tab).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict

from gennaker.api.scope import ReadableDep
from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import ConfigError, Forbidden
from gennaker.ops import store
from gennaker.ops import views as ops_views
from gennaker.ops.reports import render
from gennaker.ops.service import audit_and_store, collect_and_store
from gennaker.ops.settings import ops_settings
from gennaker.ops.suppressions import Suppression
from gennaker.spec.config import Config
from gennaker.store.db import Database

router = APIRouter(prefix="/api", tags=["ops"])


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_config(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


def get_sessions(request: Request) -> AwsSessions:
    """The app's shared sessions when the host made one (call counts, client cache), else new ones."""
    aws = getattr(request.app.state, "aws", None)
    return aws if isinstance(aws, AwsSessions) else AwsSessions(get_config(request))


def account_wide(readable: ReadableDep) -> None:
    """Only callers who may read every application read account-wide data (findings and resources
    of other applications are in it)."""
    if readable is not None:
        raise Forbidden(
            "audits and inventory cover whole accounts: they need a viewer role on every "
            "application (see GET /api/applications/{application}/readiness)"
        )


AccountWide = Depends(account_wide)
DbDep = Annotated[Database, Depends(get_db)]
ConfigDep = Annotated[Config, Depends(get_config)]
SessionsDep = Annotated[AwsSessions, Depends(get_sessions)]


class AuditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[str] | None = None
    accounts: list[str] | None = None
    regions: list[str] | None = None
    max_age_s: float | None = None
    suppressions: list[Suppression] = []


class CollectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[str] | None = None
    regions: list[str] | None = None
    types: list[str] | None = None


@router.post("/audits", summary="Run an audit (collects, or reuses a snapshot younger than max_age_s)")
def run_audit(body: AuditRequest, db: DbDep, config: ConfigDep, sessions: SessionsDep) -> dict[str, Any]:
    result = audit_and_store(
        db,
        sessions,
        ops_settings(config.ops),
        checks=body.checks,
        accounts=body.accounts,
        regions=body.regions,
        suppressions=body.suppressions,
        max_age_s=body.max_age_s,
        source="api",
    )
    return result.to_json()


@router.get("/audits", summary="Recent audits, newest first", dependencies=[AccountWide])
def list_audits(db: DbDep, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
    return store.list_audits(db, limit)


@router.get(
    "/audits/{audit_id}",
    summary="An audit: the JSON contract, or html/sarif/junit with ?format=",
    dependencies=[AccountWide],
)
def get_audit(audit_id: str, db: DbDep, format: str = "json") -> Any:
    report = store.get_audit(db, None if audit_id == "latest" else audit_id)
    if format == "json":
        return report
    if format == "html":
        return HTMLResponse(render(report, "html"))
    if format in {"sarif", "junit"}:
        media = "application/sarif+json" if format == "sarif" else "application/xml"
        return Response(render(report, format), media_type=media)
    raise ConfigError(f"unknown format '{format}' (json, html, sarif or junit)")


@router.post("/inventory/snapshots", summary="Collect a new inventory snapshot")
def collect(body: CollectRequest, db: DbDep, config: ConfigDep, sessions: SessionsDep) -> dict[str, Any]:
    snap = collect_and_store(
        db, sessions, ops_settings(config.ops), accounts=body.accounts, regions=body.regions, types=body.types
    )
    return {"id": snap.id, "resources": len(snap.resources), "failures": [vars(f) for f in snap.failures], **snap.stats}


@router.get("/inventory/snapshots", summary="Stored snapshots, newest first", dependencies=[AccountWide])
def list_snapshots(db: DbDep, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
    return store.list_snapshots(db, limit)


@router.get(
    "/inventory/resources",
    summary="Search a snapshot's resources (default: the newest snapshot)",
    dependencies=[AccountWide],
)
def search_resources(
    db: DbDep,
    snapshot: str | None = None,
    type: str | None = None,
    account: str | None = None,
    region: str | None = None,
    tag: Annotated[list[str] | None, Query()] = None,
    q: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    rows = store.search(
        db, snapshot, store.Query(type=type, account=account, region=region, tags=tag or [], text=q), limit
    )
    return [
        {
            "type": r.type,
            "account": r.account,
            "region": r.region,
            "id": r.id,
            "arn": r.arn,
            "name": r.name,
            "tags": r.tags,
            "attributes": r.attrs,
        }
        for r in rows
    ]


@router.get(
    "/inventory/diff", summary="Added, removed and changed resources between two snapshots", dependencies=[AccountWide]
)
def diff(
    db: DbDep,
    old: Annotated[str | None, Query(alias="from")] = None,
    new: Annotated[str | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    return store.diff(db, old, new)


@router.get(
    "/applications/{application}/readiness",
    summary="The latest audit narrowed to the resources tagged with an application",
)
def application_readiness(application: str, request: Request, readable: ReadableDep) -> dict[str, Any]:
    """Null without audits. An audit that cannot be narrowed (no resource carries the application's
    tags) is answered whole only to callers who may read every application."""
    audit = ops_views.latest_for_application(request.app.state.runtime, application)
    if audit is not None and not audit["narrowed"] and readable is not None:
        raise Forbidden(
            f"the latest audit has no resources tagged with {application}; its findings cover "
            "whole accounts and need a viewer role on every application"
        )
    if audit is not None and readable is not None:
        audit.pop("audit_score", None)
    return {"application": application, "audit": audit}
