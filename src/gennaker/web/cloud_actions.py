"""The CLUSTERS tab's operator actions: enable, disable, resize, destroy a server group; roll back a
cluster. Each is a plain form post to the API's path without ``/api`` (so ``rules.py`` asks for the
operator role and the middleware checks CSRF), validated as the API validates, then started as a
task (a one-stage execution) and answered with a redirect to the task's execution page.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from gennaker.cloud import naming
from gennaker.cloud.operations import check_server_group
from gennaker.cloud.tasks import CapacityModel, provider_for
from gennaker.engine.operations import start_task
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

# Console operation -> the stage type its task runs (the same names as the API's operations).
STAGE_TYPES = {
    "enable": "enable_server_group",
    "disable": "disable_server_group",
    "resize": "resize_server_group",
    "destroy": "destroy_server_group",
}
# How often the task polls AWS while it waits (as the API's tasks do): a console user is watching.
POLL_INTERVAL = 1.0


def clusters_url(app: str) -> str:
    return f"/applications/{app}/clusters"


def server_group_task(web: WebState, app: str, name: str, operation: str, account: str, region: str,
                      capacity: dict[str, int] | None, actor: str) -> str:
    """Validate like the API (the account and region are configured, the server group is the
    application's and exists), then start the task; returns its execution id."""
    provider = provider_for(web.runtime.services, account, region)
    check_server_group(provider, app, name)
    config: dict[str, Any] = {"account": account, "region": region, "server_group": name,
                              "poll_interval": POLL_INTERVAL}
    if capacity is not None:
        config["capacity"] = capacity
    return start_task(web.db, web.runtime.registry, app, STAGE_TYPES[operation], config, actor)


def rollback_task(web: WebState, app: str, cluster: str, account: str, region: str, actor: str) -> str:
    parsed = naming.parse(cluster)
    if parsed.application != app:
        raise GennakerError(f"cluster {cluster} does not belong to application {app}")
    provider_for(web.runtime.services, account, region)  # account and region checked now, not in the task
    config = {"account": account, "region": region, "stack": parsed.stack, "detail": parsed.detail,
              "poll_interval": POLL_INTERVAL}
    return start_task(web.db, web.runtime.registry, app, "rollback_cluster", config, actor)


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
def destroy_confirm(request: Request, app: str, name: str, me: PrincipalDep, account: str = "",
                    region: str = "") -> Response:
    """The confirmation step before a destroy (a page, so no script is needed to ask)."""
    return render(request, "destroy.html", app=app, tab="clusters", name=name, account=account,
                  region=region, can_operate=me.can("operator", app))


@router.post("/applications/{app}/server_groups/{name}/{operation}")
async def server_group_action(app: str, name: str, operation: str, web: WebDep, me: PrincipalDep,
                              account: FormStr, region: FormStr, low: MinField = "", high: MaxField = "",
                              desired: FormStr = "", confirm: FormStr = "") -> Response:
    if operation not in STAGE_TYPES:
        return back(clusters_url(app), f"unknown operation {operation} ({', '.join(STAGE_TYPES)})")
    if operation == "destroy" and confirm != "yes":
        return back(confirm_url(app, name, account, region), "tick the confirmation to destroy the server group")
    try:
        capacity = _capacity(low, high, desired) if operation == "resize" else None
        task_id = await run_in_threadpool(server_group_task, web, app, name, operation, account, region,
                                          capacity, me.name)
    except GennakerError as exc:
        return back(clusters_url(app), str(exc))
    return back(f"/executions/{task_id}")


@router.post("/applications/{app}/clusters/{cluster}/rollback")
async def cluster_rollback(app: str, cluster: str, web: WebDep, me: PrincipalDep, account: FormStr,
                           region: FormStr) -> Response:
    try:
        task_id = await run_in_threadpool(rollback_task, web, app, cluster, account, region, me.name)
    except GennakerError as exc:
        return back(clusters_url(app), str(exc))
    return back(f"/executions/{task_id}")
