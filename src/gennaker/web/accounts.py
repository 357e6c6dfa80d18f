"""The ACCOUNTS page (``/accounts``) and an account's page (``/accounts/{account}``): the answers of
``gennaker accounts list|show``, scoped like every read (a caller restricted to applications sees
the accounts holding one of them, with only those applications)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from gennaker.errors import NotFound
from gennaker.ops.accounts import AccountsView, accounts_view, scoped
from gennaker.web.access import Principal
from gennaker.web.deps import principal, render, web_state
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
PrincipalDep = Annotated[Principal, Depends(principal)]
WebDep = Annotated[WebState, Depends(web_state)]


async def _view(web: WebState, me: Principal) -> AccountsView:
    rt = web.runtime
    view = await run_in_threadpool(accounts_view, rt.db, rt.config)
    return scoped(view, me.readable())


@router.get("/accounts", response_class=HTMLResponse)
async def accounts_page(request: Request, web: WebDep, me: PrincipalDep) -> Response:
    return render(request, "accounts.html", view=await _view(web, me), account=None)


@router.get("/accounts/{account}", response_class=HTMLResponse)
async def account_page(request: Request, account: str, web: WebDep, me: PrincipalDep) -> Response:
    view = await _view(web, me)
    try:
        found = view.find(account[:200])
    except NotFound as exc:
        return render(request, "error.html", status_code=404, status=404, message=str(exc))
    return render(request, "accounts.html", view=view, account=found)
