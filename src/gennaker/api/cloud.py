"""The cloud view of an application: clusters, load balancers, security groups; and operator
actions on server groups (enable, disable, resize, destroy) and clusters (rollback)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from gennaker.api.deps import get_actor
from gennaker.cloud import naming, registry
from gennaker.cloud.operations import check_server_group, clusters_view
from gennaker.cloud.provider import CloudProvider
from gennaker.cloud.tasks import CapacityModel
from gennaker.engine import views
from gennaker.engine.operations import start_task
from gennaker.errors import Conflict, InvalidInput, NotFound
from gennaker.runtime import Runtime

router = APIRouter(prefix="/api", tags=["cloud"])


def get_services(request: Request) -> Any:
    """What providers are built from: the configuration and the shared cloud clients."""
    return SimpleNamespace(config=request.app.state.config, aws=request.app.state.aws)


def all_providers(services: Any = Depends(get_services)) -> list[CloudProvider]:
    """Every configured account and region (the views span them all)."""
    return registry.all_providers(services)


class Where(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str
    region: str | None = None  # default: the account's only region


class ActionBody(Where):
    capacity: CapacityModel | None = None  # resize only


def _named_for(name: str, application: str) -> bool:
    """``shop``, ``shop-web``, ``shop-web-lb`` are named for ``shop``; ``shopping-lb`` is not (another
    application's, which a viewer of ``shop`` must not see)."""
    return naming.parse(name).application == application


@router.get("/applications/{application}/clusters")
def clusters(application: str, providers: list[CloudProvider] = Depends(all_providers)) -> list[dict[str, Any]]:
    return clusters_view(list(providers), application)


@router.get("/applications/{application}/load_balancers")
def load_balancers(application: str, providers: list[CloudProvider] = Depends(all_providers)) -> list[dict[str, Any]]:
    result = []
    for p in providers:
        groups = p.list_server_groups(application=application, with_health=False)
        for lb in p.list_load_balancers():
            users = sorted(g.name for g in groups if set(g.load_balancers) & set(lb.targets))
            if not users and not _named_for(lb.name, application):
                continue
            result.append(
                {
                    "account": p.account,
                    "region": p.region,
                    "name": lb.name,
                    "type": lb.type,
                    "address": lb.address,
                    **lb.details,
                    "server_groups": users,
                }
            )
    return result


@router.get("/applications/{application}/security_groups")
def security_groups(application: str, providers: list[CloudProvider] = Depends(all_providers)) -> list[dict[str, Any]]:
    """Security groups used by the application's instances and load balancers, or named after it."""
    return [
        {
            "account": p.account,
            "region": p.region,
            "id": sg.id,
            "name": sg.name,
            "vpc_id": sg.network,
            "description": sg.description,
            "used_by": sg.used_by,
        }
        for p in providers
        for sg in p.security_groups(application)
    ]


SERVER_GROUP_TASKS = {
    "enable": "enable_server_group",
    "disable": "disable_server_group",
    "resize": "resize_server_group",
    "destroy": "destroy_server_group",
}
TASK_POLL_INTERVAL = 1.0  # an operator is watching: look at AWS every second while the task waits


def start_server_group_task(
    runtime: Runtime,
    application: str,
    name: str,
    operation: str,
    account: str,
    region: str | None,
    capacity: dict[str, int] | None,
    actor: str,
) -> str:
    """Check the request now (configured account and region; the server group is the application's and
    exists), then start the operation as a task. Shared by the API and the console."""
    if operation not in SERVER_GROUP_TASKS:
        raise NotFound(f"unknown operation {operation} ({', '.join(SERVER_GROUP_TASKS)})")
    if operation == "resize" and capacity is None:
        raise InvalidInput("resize needs capacity {min, max, desired}")
    provider = registry.provider_for(runtime.services, account, region)
    check_server_group(provider, application, name)
    config: dict[str, Any] = {
        "account": account,
        "region": provider.region,
        "server_group": name,
        "poll_interval": TASK_POLL_INTERVAL,
    }
    if capacity is not None:
        config["capacity"] = capacity
    return start_task(runtime.db, runtime.registry, application, SERVER_GROUP_TASKS[operation], config, actor)


def start_rollback_task(
    runtime: Runtime, application: str, cluster: str, account: str, region: str | None, actor: str
) -> str:
    parsed = naming.parse(cluster)
    if parsed.application != application:
        raise NotFound(f"cluster {cluster} does not belong to application {application}")
    # the account and region are checked now, not in the task
    provider = registry.provider_for(runtime.services, account, region)
    config = {
        "account": account,
        "region": provider.region,
        "stack": parsed.stack,
        "detail": parsed.detail,
        "poll_interval": TASK_POLL_INTERVAL,
    }
    return start_task(runtime.db, runtime.registry, application, "rollback_cluster", config, actor)


def _answer(runtime: Runtime, task_id: str, wait: bool, timeout: float = 900.0) -> dict[str, Any]:
    """The task's id; with ``wait``, its outputs once it has ended (a failed task is a 409)."""
    deadline = time.time() + timeout
    while wait and time.time() < deadline:
        with runtime.db.read() as conn:
            detail = views.execution_detail(conn, task_id)
        if views.is_done(detail["status"]):
            stage = detail["stages"][0]
            if detail["status"] != "SUCCEEDED":
                raise Conflict(f"task {task_id} {detail['status']}: {stage.get('message') or detail.get('message')}")
            return {"task": task_id, "status": detail["status"], **stage["outputs"]}
        time.sleep(0.2)
    return {"task": task_id, "status": "NOT_STARTED"}


@router.post("/applications/{application}/server_groups/{name}/{operation}", status_code=202)
def server_group_operation(
    request: Request,
    response: Response,
    application: str,
    name: str,
    operation: str,
    body: ActionBody,
    wait: bool = False,
) -> dict[str, Any]:
    """Enable, disable, resize or destroy a server group, as a task. The answer names the task
    (follow it at /api/executions/{task}); with ``wait=true`` it comes when the task has ended."""
    runtime = request.app.state.runtime
    capacity = body.capacity.model_dump() if body.capacity is not None else None
    task_id = start_server_group_task(
        runtime, application, name, operation, body.account, body.region, capacity, get_actor(request)
    )
    if wait:
        response.status_code = 200
    return {"server_group": name, "operation": operation, **_answer(runtime, task_id, wait)}


@router.post("/applications/{application}/clusters/{cluster}/rollback", status_code=202)
def cluster_rollback(
    request: Request, response: Response, application: str, cluster: str, body: Where, wait: bool = False
) -> dict[str, Any]:
    """Serve the cluster's previous server group again, as a task (see the server group actions)."""
    runtime = request.app.state.runtime
    task_id = start_rollback_task(runtime, application, cluster, body.account, body.region, get_actor(request))
    if wait:
        response.status_code = 200
    return _answer(runtime, task_id, wait)
