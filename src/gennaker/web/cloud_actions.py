"""The CLUSTERS tab's operator actions: enable, disable, resize, destroy a server group; roll back a
cluster. Each is a plain form post to the API's path without ``/api`` (so ``rules.py`` asks for the
operator role and the middleware checks CSRF), validated as the API validates, then started as a
task (a one-stage execution) and answered with a redirect to the task's execution page.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from gennaker.api.cloud import SERVER_GROUP_TASKS, start_rollback_task, start_server_group_task
from gennaker.cloud.tasks import CapacityModel
from gennaker.errors import GennakerError
from gennaker.web.access import Principal
from gennaker.web.deps import back, principal, render, web_state
from gennaker.web.state import WebState

router = APIRouter(include_in_schema=False)
WebDep = Annotated[WebState, Depends(web_state)]
PrincipalDep = Annotated[Principal, Depends(principal)]
FormStr = Annotated[str, Form(max_length=100)]
MinField = Annotated[str, Form(alias="min", max_length=10)]  # aliases: min/max would shadow builtins
MaxField = Annotated[str, Form(alias="max", max_length=10)]


def clusters_url(app: str) -> str:
    return f"/applications/{app}/clusters"


def _capacity(low: str, high: str, desired: str) -> dict[str, int]:
    try:
        numbers = {"min": int(low), "max": int(high), "desired": int(desired)}
    except ValueError:
        raise GennakerError(f"capacity must be whole numbers (got {low!r}/{high!r}/{desired!r})") from None
    try:
        return CapacityModel.model_validate(numbers).model_dump()
    except ValidationError as exc:
        raise GennakerError("; ".join(e["msg"] for e in exc.errors())) from None


def confirm_url(app: str, name: str, account: str, region: str) -> str:
    return f"/applications/{app}/server_groups/{name}/destroy?" + urlencode({"account": account, "region": region})


@router.get("/applications/{app}/server_groups/{name}/destroy", response_class=HTMLResponse)
def destroy_confirm(
    request: Request, app: str, name: str, me: PrincipalDep, account: str = "", region: str = ""
) -> Response:
    """The confirmation step before a destroy (a page, so no script is needed to ask)."""
    return render(
        request,
        "destroy.html",
        app=app,
        tab="clusters",
        name=name,
        account=account,
        region=region,
        can_operate=me.can("operator", app),
    )


@router.post("/applications/{app}/server_groups/{name}/{operation}")
async def server_group_action(
    app: str,
    name: str,
    operation: str,
    web: WebDep,
    me: PrincipalDep,
    account: FormStr,
    region: FormStr,
    low: MinField = "",
    high: MaxField = "",
    desired: FormStr = "",
    confirm: FormStr = "",
) -> Response:
    if operation not in SERVER_GROUP_TASKS:
        return back(clusters_url(app), f"unknown operation {operation} ({', '.join(SERVER_GROUP_TASKS)})")
    if operation == "destroy" and confirm != "yes":
        return back(confirm_url(app, name, account, region), "tick the confirmation to destroy the server group")
    try:
        capacity = _capacity(low, high, desired) if operation == "resize" else None
        task_id = await run_in_threadpool(
            start_server_group_task, web.runtime, app, name, operation, account, region, capacity, me.name
        )
    except GennakerError as exc:
        return back(clusters_url(app), str(exc))
    return back(f"/executions/{task_id}")


@router.post("/applications/{app}/clusters/{cluster}/rollback")
async def cluster_rollback(
    app: str, cluster: str, web: WebDep, me: PrincipalDep, account: FormStr, region: FormStr
) -> Response:
    try:
        task_id = await run_in_threadpool(start_rollback_task, web.runtime, app, cluster, account, region, me.name)
    except GennakerError as exc:
        return back(clusters_url(app), str(exc))
    return back(f"/executions/{task_id}")
