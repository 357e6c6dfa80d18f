"""The cloud view of an application: clusters, load balancers, security groups; and operator
actions on server groups (enable, disable, resize, destroy) and clusters (rollback)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from gennaker.cloud import naming
from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.cloud.operations import Operation, clusters_view, perform, rollback_cluster
from gennaker.cloud.provider import CloudProvider
from gennaker.cloud.tasks import CapacityModel, provider_for
from gennaker.errors import NotFound
from gennaker.spec.config import Config

router = APIRouter(prefix="/api", tags=["cloud"])


def get_config(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


def get_aws(request: Request) -> AwsSessions:
    aws: AwsSessions = request.app.state.aws
    return aws


def all_providers(config: Config = Depends(get_config), aws: AwsSessions = Depends(get_aws)) -> list[AwsProvider]:
    """Every configured account and region (the views span them all)."""
    return [AwsProvider(aws, name, region) for name, acct in sorted(config.accounts.items()) for region in acct.regions]


class Where(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str
    region: str


class ActionBody(Where):
    capacity: CapacityModel | None = None  # resize only


def _provider(where: Where, config: Config, aws: AwsSessions) -> CloudProvider:
    return provider_for(SimpleNamespace(config=config, aws=aws), where.account, where.region)


@router.get("/applications/{application}/clusters")
def clusters(application: str, providers: list[AwsProvider] = Depends(all_providers)) -> list[dict[str, Any]]:
    return clusters_view(list(providers), application)


@router.get("/applications/{application}/load_balancers")
def load_balancers(application: str, providers: list[AwsProvider] = Depends(all_providers)) -> list[dict[str, Any]]:
    result = []
    for p in providers:
        groups = p.list_server_groups(application=application, with_health=False)
        for lb in p.list_load_balancers():
            users = sorted(g.name for g in groups if set(g.target_groups) & set(lb.target_groups))
            if not users and not lb.name.startswith(application):
                continue
            result.append(
                {
                    "account": p.account,
                    "region": p.region,
                    "name": lb.name,
                    "arn": lb.arn,
                    "dns_name": lb.dns_name,
                    "scheme": lb.scheme,
                    "type": lb.type,
                    "target_groups": lb.target_groups,
                    "security_groups": lb.security_groups,
                    "server_groups": users,
                }
            )
    return result


@router.get("/applications/{application}/security_groups")
def security_groups(application: str, providers: list[AwsProvider] = Depends(all_providers)) -> list[dict[str, Any]]:
    """Security groups used by the application's instances and load balancers, or named after it."""
    result = []
    for p in providers:
        users: dict[str, set[str]] = {}
        filters = [
            {"Name": "tag:gennaker:application", "Values": [application]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        for reservation in p.ec2.paginate("describe_instances", "Reservations", Filters=filters):
            for inst in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                owner = tags.get("aws:autoscaling:groupName") or tags.get("gennaker:server-group") or inst["InstanceId"]
                for sg in inst.get("SecurityGroups", []):
                    users.setdefault(sg["GroupId"], set()).add(owner)
        for lb in p.list_load_balancers():
            for sg in lb.security_groups:
                if lb.name.startswith(application):
                    users.setdefault(sg, set()).add(f"load balancer {lb.name}")
        for sg in p.list_security_groups():
            if sg.id in users or sg.name.startswith(application):
                result.append(
                    {
                        "account": p.account,
                        "region": p.region,
                        "id": sg.id,
                        "name": sg.name,
                        "vpc_id": sg.vpc_id,
                        "description": sg.description,
                        "used_by": sorted(users.get(sg.id, set())),
                    }
                )
    return result


@router.post("/applications/{application}/server_groups/{name}/{operation}")
def server_group_operation(
    application: str,
    name: str,
    operation: str,
    body: ActionBody,
    config: Config = Depends(get_config),
    aws: AwsSessions = Depends(get_aws),
) -> dict[str, Any]:
    ops: dict[str, Operation] = {"enable": "enable", "disable": "disable", "resize": "resize", "destroy": "destroy"}
    if operation not in ops:
        raise NotFound(f"unknown operation {operation} (enable, disable, resize, destroy)")
    if operation == "resize" and body.capacity is None:
        raise HTTPException(422, "resize needs capacity {min, max, desired}")
    capacity = body.capacity.to_capacity() if body.capacity else None
    done = perform(_provider(body, config, aws), application, ops[operation], name, capacity)
    return {"server_group": name, "operation": operation, "done": done}


@router.post("/applications/{application}/clusters/{cluster}/rollback")
def cluster_rollback(
    application: str,
    cluster: str,
    body: Where,
    config: Config = Depends(get_config),
    aws: AwsSessions = Depends(get_aws),
) -> dict[str, Any]:
    if naming.parse(cluster).application != application:
        raise NotFound(f"cluster {cluster} does not belong to application {application}")
    return rollback_cluster(_provider(body, config, aws), cluster)
