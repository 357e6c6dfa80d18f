"""The provider interface: what deploy strategies, stages, the planner and the API need from a cloud.

Everything above this interface (strategies, plans, stages) is written once; a provider only
translates these operations into API calls. Providers are bound to one account and one region.
All operations are idempotent: enabling an enabled group or destroying a missing one is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gennaker.cloud import naming

# Tags Gennaker puts on everything it creates; the execution and stage tags let a retried task find
# what an earlier attempt already created.
TAG_APPLICATION = "gennaker:application"
TAG_CLUSTER = "gennaker:cluster"
TAG_SERVER_GROUP = "gennaker:server-group"
TAG_EXECUTION = "gennaker:execution"
TAG_STAGE = "gennaker:stage"
TAG_VERSION = "gennaker:version"
TAG_BASE_IMAGE = "gennaker:base-image"
# "<execution id> <unix time>": the group is being deployed by that execution until then (a lease
# that the deploy clears when it ends, and that expires by itself if the deploy is lost).
TAG_DEPLOYING = "gennaker:deploying"

# Processes suspended by "disable" (Spinnaker's choice): no new instances, no replacements, and
# nothing joins the load balancers behind our back.
DISABLE_PROCESSES = ("Launch", "Terminate", "AddToLoadBalancer")


@dataclass(frozen=True)
class Capacity:
    min: int
    max: int
    desired: int

    def __post_init__(self) -> None:
        if not 0 <= self.min <= self.desired <= self.max:
            raise ValueError(f"capacity needs 0 <= min <= desired <= max, got {self.as_dict()}")

    def as_dict(self) -> dict[str, int]:
        return {"min": self.min, "max": self.max, "desired": self.desired}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Capacity:
        return cls(int(d["min"]), int(d["max"]), int(d["desired"]))

    def __str__(self) -> str:
        return f"min {self.min} / desired {self.desired} / max {self.max}"


@dataclass
class Instance:
    id: str
    zone: str
    lifecycle: str  # the ASG's view: Pending, InService, Terminating, ...
    health: str  # the ASG's health status: Healthy / Unhealthy
    # target group ARN -> state (healthy, unhealthy, initial, draining, unused = not registered)
    target_health: dict[str, str] = field(default_factory=dict)

    def healthy(self, target_groups: list[str]) -> bool:
        return (
            self.lifecycle == "InService"
            and self.health == "Healthy"
            and all(self.target_health.get(tg) == "healthy" for tg in target_groups)
        )

    def registered(self, target_group: str) -> bool:
        return self.target_health.get(target_group, "unused") not in ("unused", "draining")


@dataclass
class ServerGroup:
    name: str
    account: str
    region: str
    capacity: Capacity
    image_id: str | None
    instance_type: str | None
    launch_template: str | None
    target_groups: list[str]
    suspended: set[str]
    instances: list[Instance]
    tags: dict[str, str]
    created: datetime
    subnets: list[str] = field(default_factory=list)

    @property
    def cluster(self) -> str:
        return naming.cluster_of(self.name)

    @property
    def version(self) -> int | None:
        return naming.version_of(self.name)

    @property
    def disabled(self) -> bool:
        # Spinnaker's rule: a group whose AddToLoadBalancer is suspended is disabled.
        return "AddToLoadBalancer" in self.suspended

    @property
    def enabled(self) -> bool:
        return not self.disabled

    @property
    def in_rotation(self) -> bool:
        """Enabled, or disabled only half-way (processes suspended, instances still registered)."""
        return self.enabled or any(i.registered(tg) for i in self.instances for tg in self.target_groups)

    def healthy_instances(self) -> list[Instance]:
        return [i for i in self.instances if i.healthy(self.target_groups)]

    def serving_instances(self) -> list[Instance]:
        """Instances registered and healthy in every target group (none when it has no target groups)."""
        if not self.target_groups:
            return []
        return [i for i in self.instances if i.healthy(self.target_groups)]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cluster": self.cluster,
            "account": self.account,
            "region": self.region,
            "version": self.version,
            "image_id": self.image_id,
            "instance_type": self.instance_type,
            "capacity": self.capacity.as_dict(),
            "instances": len(self.instances),
            "healthy": len(self.healthy_instances()),
            "enabled": self.enabled,
            "suspended": sorted(self.suspended),
            "target_groups": list(self.target_groups),
            "created": self.created.isoformat(),
            "tags": dict(self.tags),
        }


def newest_first(groups: list[ServerGroup]) -> list[ServerGroup]:
    """Creation time orders groups (versions wrap after 999); the version breaks ties."""
    return sorted(groups, key=lambda g: (g.created, g.version or 0), reverse=True)


@dataclass(frozen=True)
class ServerGroupSpec:
    """Everything needed to create one server group (an ASG plus its own launch template)."""

    name: str
    application: str
    image_id: str
    instance_type: str
    subnets: list[str]
    capacity: Capacity
    security_groups: list[str] = field(default_factory=list)
    target_groups: list[str] = field(default_factory=list)
    health_check_type: str = "EC2"
    health_check_grace_period: int = 300
    user_data: str | None = None
    key_name: str | None = None
    instance_profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    execution_id: str = ""
    stage_id: str = ""

    @property
    def cluster(self) -> str:
        return naming.cluster_of(self.name)

    def gennaker_tags(self) -> dict[str, str]:
        return {
            **self.tags,
            TAG_APPLICATION: self.application,
            TAG_CLUSTER: self.cluster,
            TAG_SERVER_GROUP: self.name,
            TAG_EXECUTION: self.execution_id,
            TAG_STAGE: self.stage_id,
        }


@dataclass
class TargetGroup:
    arn: str
    name: str
    port: int | None
    protocol: str | None
    vpc_id: str | None
    load_balancers: list[str]  # load balancer ARNs


@dataclass
class LoadBalancer:
    arn: str
    name: str
    dns_name: str
    scheme: str
    type: str
    vpc_id: str | None
    security_groups: list[str]
    target_groups: list[str]  # ARNs


@dataclass
class SecurityGroup:
    id: str
    name: str
    vpc_id: str | None
    description: str


@dataclass
class Image:
    id: str
    name: str
    region: str
    state: str
    created: str
    tags: dict[str, str]


class CloudProvider(Protocol):
    """One account and region of one cloud."""

    account: str
    region: str

    # --- server groups -------------------------------------------------------------------------
    def list_server_groups(
        self, cluster: str | None = None, application: str | None = None, with_health: bool = True
    ) -> list[ServerGroup]: ...

    def get_server_group(self, name: str) -> ServerGroup | None: ...

    def launch_template_names(self, cluster: str) -> list[str]: ...

    def find_created_by(self, cluster: str, execution_id: str, stage_id: str) -> str | None: ...

    def server_group_owner(self, name: str) -> tuple[str, str] | None: ...

    def create_server_group(self, spec: ServerGroupSpec) -> ServerGroup: ...

    def enable_server_group(self, name: str) -> None: ...

    def disable_server_group(self, name: str, missing_ok: bool = False) -> None: ...

    def deregister_instances(self, name: str, instance_ids: list[str]) -> None: ...

    def resize_server_group(self, name: str, capacity: Capacity) -> None: ...

    def destroy_server_group(self, name: str) -> None: ...

    def set_server_group_tag(self, name: str, key: str, value: str) -> None: ...

    def delete_server_group_tag(self, name: str, key: str) -> None: ...

    # --- network and load balancing ------------------------------------------------------------
    def resolve_target_groups(self, refs: list[str | dict[str, str]]) -> list[str]: ...

    def resolve_subnets(self, subnets: list[str], vpc: str | None, subnet_tag: str | None) -> list[str]: ...

    def resolve_security_groups(self, groups: list[str], vpc: str | None) -> list[str]: ...

    def list_load_balancers(self) -> list[LoadBalancer]: ...

    def list_target_groups(self) -> list[TargetGroup]: ...

    def list_security_groups(self) -> list[SecurityGroup]: ...

    # --- images --------------------------------------------------------------------------------
    def resolve_image(self, image: str) -> str: ...

    def find_images(self, name_pattern: str | None, tags: dict[str, str], owners: list[str]) -> list[Image]: ...
