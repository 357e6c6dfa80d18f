"""The provider interface: what deploy strategies, stages, the planner and the API need from a cloud.

Everything above this interface (strategies, plans, stages) is written once; a provider only
translates these operations into its own calls. The vocabulary is the cloud-neutral one: server
group, instance, load balancer, image, capacity, health. What only one cloud has (AWS launch
templates, subnets, suspended processes, target group ARNs) stays inside that provider, in a
``details`` dict on what it reads and in ``provider_options`` (its own validated model) on what it
creates. Providers are bound to one account and one region, and are built only by
``gennaker.cloud.registry``. All operations are idempotent: enabling an enabled group or destroying
a missing one is a no-op.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from gennaker.cloud import naming
from gennaker.errors import GennakerError

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

# The traffic weight of an instance nobody weighed (see ``CloudProvider.set_traffic_weight``).
DEFAULT_TRAFFIC_WEIGHT = 1
MAX_TRAFFIC_WEIGHT = 256


class NotSupported(GennakerError):
    """The provider cannot do this (yet); said plainly rather than done halfway or not at all."""


# An instance's life, in neutral words (an ASG's Pending/InService/Terminating, a process's start/exit).
InstanceState = Literal["starting", "running", "stopping", "stopped"]
# How one load balancer sees one instance. "out": not registered with it (never, or any more).
BalancerHealth = Literal["healthy", "unhealthy", "starting", "draining", "out"]


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
    state: str  # an InstanceState
    health: str  # the provider's own check of the instance: "healthy" or "unhealthy"
    # load balancer (as named in ServerGroup.load_balancers) -> a BalancerHealth
    load_balancers: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # provider extras (AWS: lifecycle state)

    def healthy(self, load_balancers: list[str]) -> bool:
        return (
            self.state == "running"
            and self.health == "healthy"
            and all(self.load_balancers.get(lb) == "healthy" for lb in load_balancers)
        )

    def registered(self, load_balancer: str) -> bool:
        return self.load_balancers.get(load_balancer, "out") not in ("out", "draining")

    def describe(self) -> str:
        return f"{self.id} ({', '.join([self.state, self.health, *self.load_balancers.values()])})"


@dataclass(frozen=True)
class Traffic:
    """What a server group's load balancers measured of its requests, where the provider can see it
    (the local provider's HAProxy counters; AWS reports none here)."""

    rate: float  # requests per second, now
    requests: int  # answered since the counters started
    errors: int  # of those, server errors (5xx)

    def as_dict(self) -> dict[str, float | int]:
        return {"rate": self.rate, "requests": self.requests, "errors": self.errors}


@dataclass
class ServerGroup:
    name: str
    account: str
    region: str
    capacity: Capacity
    image: str | None
    instances: list[Instance]
    load_balancers: list[str]  # what the group's instances join (AWS: target group ARNs)
    enabled: bool
    tags: dict[str, str]
    created: datetime
    details: dict[str, Any] = field(default_factory=dict)  # provider extras, shown with the group
    traffic: Traffic | None = None
    # What metric sources select this group's own samples by besides its name: the ``Scope`` fields
    # ``target_group`` and ``load_balancer`` (AWS: the CloudWatch dimension values of a target group
    # the group has to itself); empty when its name alone selects them.
    metric_scope: dict[str, str] = field(default_factory=dict)

    @property
    def cluster(self) -> str:
        return naming.cluster_of(self.name)

    @property
    def version(self) -> int | None:
        return naming.version_of(self.name)

    @property
    def disabled(self) -> bool:
        return not self.enabled

    @property
    def in_rotation(self) -> bool:
        """Enabled, or disabled only half-way (marked disabled, instances still registered)."""
        return self.enabled or any(i.registered(lb) for i in self.instances for lb in self.load_balancers)

    def healthy_instances(self) -> list[Instance]:
        return [i for i in self.instances if i.healthy(self.load_balancers)]

    def serving_instances(self) -> list[Instance]:
        """Instances registered and healthy in every load balancer (none when it has no load balancers)."""
        if not self.load_balancers:
            return []
        return [i for i in self.instances if i.healthy(self.load_balancers)]

    def disabled_copy(self) -> ServerGroup:
        """This group as a disable leaves it (the planner's model of one)."""
        out = [dataclasses.replace(i, load_balancers=dict.fromkeys(i.load_balancers, "out")) for i in self.instances]
        return dataclasses.replace(self, enabled=False, instances=out)

    def summary(self) -> dict[str, Any]:
        return {
            **self.details,  # the provider's extras first: the neutral fields below always win
            "name": self.name,
            "cluster": self.cluster,
            "account": self.account,
            "region": self.region,
            "version": self.version,
            "image_id": self.image,
            "capacity": self.capacity.as_dict(),
            "instances": len(self.instances),
            "healthy": len(self.healthy_instances()),
            "enabled": self.enabled,
            "load_balancers": list(self.load_balancers),
            "created": self.created.isoformat(),
            "tags": dict(self.tags),
            "traffic": self.traffic.as_dict() if self.traffic else None,
        }


def newest_first(groups: list[ServerGroup]) -> list[ServerGroup]:
    """Creation time orders groups (versions wrap after 999); the version breaks ties."""
    return sorted(groups, key=lambda g: (g.created, g.version or 0), reverse=True)


@dataclass(frozen=True)
class ServerGroupSpec:
    """Everything needed to create one server group. ``provider_options`` is the provider's own
    validated model (``AwsDeployOptions``, ``LocalDeployOptions``); ``load_balancers`` is filled by
    ``CloudProvider.prepare_server_group`` from it."""

    name: str
    application: str
    image: str
    capacity: Capacity
    provider_options: Any = None
    load_balancers: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    execution_id: str = ""
    stage_id: str = ""
    # The group's share of its load balancers' traffic is set apart from the groups it joins them
    # with, by ``set_traffic_weight`` alone (a canary's baseline and canary). AWS gives it a target
    # group of its own in the listeners' weighted forward; where every instance is weighed on its own
    # (local) nothing changes.
    separate_traffic: bool = False

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
class LoadBalancer:
    name: str
    address: str  # where clients reach it (AWS: the DNS name; local: host:port)
    type: str
    targets: list[str]  # the ids a server group's ``load_balancers`` names it by
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SecurityGroup:
    """A firewall rule set and what uses it (the SECURITY GROUPS tab)."""

    id: str
    name: str
    network: str | None
    description: str
    used_by: list[str] = field(default_factory=list)


# A CloudWatch-style alarm's state. "MISSING" is not a cloud state: ``alarm_states`` reports a
# name asked for that no alarm has, so a watcher can call it unreadable instead of passing it over.
AlarmStateValue = Literal["OK", "ALARM", "INSUFFICIENT_DATA", "MISSING"]


@dataclass(frozen=True)
class AlarmState:
    """One alarm as the cloud evaluates it (Gennaker reads it, never evaluates it)."""

    name: str
    state: str  # an AlarmStateValue
    reason: str  # the cloud's own words for the state (CloudWatch's StateReason)
    updated_at: datetime | None = None
    namespace: str | None = None  # metric alarms only; composite alarms have neither
    metric: str | None = None
    dimensions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "reason": self.reason,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "namespace": self.namespace,
            "metric": self.metric,
            "dimensions": dict(self.dimensions),
        }


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

    def names_in_use(self, cluster: str) -> list[str]:
        """Server group names the cluster has used, including any left by a create cut short (so a
        crashed create's name is not reused by another execution)."""
        ...

    def find_created_by(self, cluster: str, execution_id: str, stage_id: str) -> str | None: ...

    def server_group_owner(self, name: str) -> tuple[str, str] | None: ...

    def prepare_server_group(self, spec: ServerGroupSpec) -> ServerGroupSpec:
        """Resolve what the spec's provider options name (networks, firewalls, load balancers) into
        what ``create_server_group`` needs; raises NotFound / ValueError for what does not exist."""
        ...

    def create_server_group(self, spec: ServerGroupSpec) -> ServerGroup: ...

    def enable_server_group(self, name: str) -> None: ...

    def disable_server_group(self, name: str, missing_ok: bool = False) -> None: ...

    def deregister_instances(self, name: str, instance_ids: list[str]) -> None: ...

    def resize_server_group(self, name: str, capacity: Capacity) -> None: ...

    def destroy_server_group(self, name: str) -> None: ...

    def set_server_group_tag(self, name: str, key: str, value: str) -> None: ...

    def health_report(self, name: str) -> str:
        """Why the group's instances are not healthy, in the provider's own words (check results, the
        tail of an instance's log) for a failed stage; empty when it has nothing to add."""
        ...

    def delete_server_group_tag(self, name: str, key: str) -> None: ...

    def set_traffic_weight(self, name: str, weight: int) -> None:
        """Weigh each of the group's instances ``weight`` (0..MAX_TRAFFIC_WEIGHT) against the other
        instances of its load balancers: a group's share is its instances' weights ÷ all weights.
        Kept for instances that replace them. Raises NotSupported where the cloud cannot split."""
        ...

    # --- load balancing and firewalls ----------------------------------------------------------
    def list_load_balancers(self) -> list[LoadBalancer]: ...

    def security_groups(self, application: str) -> list[SecurityGroup]:
        """Security groups the application's instances and load balancers use, or named after it."""
        ...

    # --- images --------------------------------------------------------------------------------
    def resolve_image(self, image: str) -> str: ...

    def find_images(self, name_pattern: str | None, tags: dict[str, str], provider_options: Any = None) -> list[Image]:
        """Images matching a glob on the name and every tag, newest first; ``provider_options`` is the
        find_image stage's provider model (AWS: whose images to search)."""
        ...

    # --- alarms --------------------------------------------------------------------------------
    def alarm_states(self, names: list[str] | None = None) -> list[AlarmState]:
        """The named alarms' states (``None``: every alarm of the account and region), in the order
        asked; a name no alarm has comes back as state MISSING. Raises NotSupported where the cloud
        has no alarms (the local provider: use metric conditions), CloudError when it cannot be read."""
        ...
