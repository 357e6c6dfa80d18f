"""Accounts REST API: ``GET /api/accounts`` and ``GET /api/accounts/{account}``, the answers of
``gennaker accounts list|show`` (see ``gennaker.ops.accounts``).

Scope: a caller whose roles name applications (``shop:viewer``) sees only the accounts holding one of
them (by the stored snapshot's tags), with only those applications listed; another account is a 404,
the answer for an account that does not exist. A caller with a global role sees every account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from gennaker.api.scope import ReadableDep
from gennaker.ops.accounts import AccountsView, accounts_view, scoped
from gennaker.spec.config import Config

router = APIRouter(prefix="/api", tags=["accounts"])
TagQuery = Annotated[str, Query(max_length=128, min_length=1, description="the account tag naming its environment")]


class OrgUnitOut(BaseModel):
    id: str
    name: str
    path: str
    parent_id: str


class AccountOut(BaseModel):
    name: str
    account_id: str | None
    org_name: str | None
    email: str | None
    ou_path: str | None  # None: not in the organization
    ou_id: str | None
    status: str | None
    configured: bool
    payer: bool
    environment: str | None
    environment_source: str | None
    reachable: bool | None  # None: not tried (excluded, not active)
    reach_error: str | None
    regions: list[str]
    active_regions: list[str]
    applications: list[str]
    snapshot_id: str | None
    snapshot_at: str | None
    audit_id: str | None
    audit_at: str | None
    score: float | None
    findings: int


class AccountsOut(BaseModel):
    organization_id: str | None
    payer_id: str | None
    management_account: str | None
    organization_error: str | None
    units: list[OrgUnitOut]
    accounts: list[AccountOut]


async def _view(request: Request, readable: frozenset[str] | None, environment_tag: str) -> AccountsView:
    config: Config = request.app.state.config
    view = await run_in_threadpool(accounts_view, request.app.state.db, config, environment_tag=environment_tag)
    return scoped(view, readable)


@router.get("/accounts", response_model=AccountsOut, summary="The organization tree and every account's facts")
async def list_accounts(
    request: Request, readable: ReadableDep, environment_tag: TagQuery = "environment"
) -> dict[str, object]:
    return (await _view(request, readable, environment_tag)).as_dict()


@router.get("/accounts/{account}", response_model=AccountOut, summary="One account, by name or id")
async def get_account(
    request: Request, account: str, readable: ReadableDep, environment_tag: TagQuery = "environment"
) -> dict[str, object]:
    return (await _view(request, readable, environment_tag)).find(account[:200]).as_dict()
