"""An in-memory model of clusters for ``gennaker plan``: today's state read from a provider, with
the actions of the stages planned so far applied on top, so each stage is planned against the
cluster the stages before it would leave (a canary created by one stage and destroyed by a later
one plans as such). Reads delegate to the real provider; nothing here ever changes the cloud.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from gennaker.cloud import naming
from gennaker.cloud.actions import Action
from gennaker.cloud.provider import (
    AlarmState,
    Capacity,
    CloudProvider,
    Image,
    LoadBalancer,
    SecurityGroup,
    ServerGroup,
    ServerGroupSpec,
)


class PlanOnly(RuntimeError):
    """A planner tried to change the cloud: a bug, never an expected outcome."""


class ModelProvider:
    """A CloudProvider whose server groups are the real ones plus the planned changes."""

    def __init__(self, real: CloudProvider):
        self.real = real
        self.account = real.account
        self.region = real.region
        self._created: dict[str, ServerGroup] = {}
        self._changed: dict[str, ServerGroup] = {}
        self._destroyed: set[str] = set()
        self.created_by: dict[str, str] = {}  # server group -> the stage whose plan creates it
        # Planned groups are newer than anything real, in planning order, so that "newest" finds them.
        self._clock = datetime.now(UTC) + timedelta(days=1)

    # --- the model -----------------------------------------------------------------------------
    def _overlay(self, groups: list[ServerGroup]) -> list[ServerGroup]:
        return [self._changed.get(g.name, g) for g in groups if g.name not in self._destroyed]

    def _find(self, name: str) -> ServerGroup | None:
        if name in self._destroyed:
            return None
        if name in self._created:
            return self._created[name]
        return self._changed.get(name) or self.real.get_server_group(name)

    def _put(self, group: ServerGroup) -> None:
        (self._created if group.name in self._created else self._changed)[group.name] = group

    def apply(self, stage_id: str, actions: list[Action]) -> None:
        """Record what ``actions`` would do to the clusters."""
        for action in actions:
            name = action.server_group
            if action.kind == "create":
                self._clock += timedelta(seconds=1)
                self._created[name] = ServerGroup(
                    name=name,
                    account=self.account,
                    region=self.region,
                    capacity=action.capacity or Capacity(0, 0, 0),
                    image=None,
                    instances=[],
                    load_balancers=[],
                    enabled=True,
                    tags={},
                    created=self._clock,
                )
                self._destroyed.discard(name)
                self.created_by[name] = stage_id
                continue
            group = self._find(name)
            if group is None:
                continue
            if action.kind == "destroy":
                self._destroyed.add(name)
                self._created.pop(name, None)
            elif action.kind == "enable":
                self._put(dataclasses.replace(group, enabled=True))
            elif action.kind == "disable":
                self._put(group.disabled_copy())
            elif action.kind == "resize" and action.capacity is not None:
                self._put(dataclasses.replace(group, capacity=action.capacity))

    # --- server groups, as modeled -------------------------------------------------------------
    def list_server_groups(
        self, cluster: str | None = None, application: str | None = None, with_health: bool = True
    ) -> list[ServerGroup]:
        groups = self._overlay(self.real.list_server_groups(cluster, application, with_health))
        for g in self._created.values():
            if cluster is not None and not naming.in_cluster(g.name, cluster):
                continue
            if application is not None and naming.parse(g.name).application != application:
                continue
            groups.append(g)
        return groups

    def get_server_group(self, name: str) -> ServerGroup | None:
        return self._find(name)

    def names_in_use(self, cluster: str) -> list[str]:
        created = [n for n in self._created if naming.in_cluster(n, cluster)]
        return self.real.names_in_use(cluster) + created

    def find_created_by(self, cluster: str, execution_id: str, stage_id: str) -> str | None:
        return None  # a plan is no execution: nothing was created by it

    def server_group_owner(self, name: str) -> tuple[str, str] | None:
        return self.real.server_group_owner(name)

    def health_report(self, name: str) -> str:
        return ""  # nothing planned has instances

    # --- reads delegate ------------------------------------------------------------------------
    def prepare_server_group(self, spec: ServerGroupSpec) -> ServerGroupSpec:
        return self.real.prepare_server_group(spec)  # resolving names reads, it changes nothing

    def list_load_balancers(self) -> list[LoadBalancer]:
        return self.real.list_load_balancers()

    def security_groups(self, application: str) -> list[SecurityGroup]:
        return self.real.security_groups(application)

    def resolve_image(self, image: str) -> str:
        return self.real.resolve_image(image)

    def find_images(self, name_pattern: str | None, tags: dict[str, str], provider_options: Any = None) -> list[Image]:
        return self.real.find_images(name_pattern, tags, provider_options)

    def alarm_states(self, names: list[str] | None = None) -> list[AlarmState]:
        return self.real.alarm_states(names)

    # --- changes are refused -------------------------------------------------------------------
    def create_server_group(self, spec: ServerGroupSpec) -> ServerGroup:
        raise PlanOnly(f"plan tried to create {spec.name}")

    def enable_server_group(self, name: str) -> None:
        raise PlanOnly(f"plan tried to enable {name}")

    def disable_server_group(self, name: str, missing_ok: bool = False) -> None:
        raise PlanOnly(f"plan tried to disable {name}")

    def deregister_instances(self, name: str, instance_ids: list[str]) -> None:
        raise PlanOnly(f"plan tried to deregister instances of {name}")

    def resize_server_group(self, name: str, capacity: Capacity) -> None:
        raise PlanOnly(f"plan tried to resize {name}")

    def destroy_server_group(self, name: str) -> None:
        raise PlanOnly(f"plan tried to destroy {name}")

    def set_server_group_tag(self, name: str, key: str, value: str) -> None:
        raise PlanOnly(f"plan tried to tag {name}")

    def delete_server_group_tag(self, name: str, key: str) -> None:
        raise PlanOnly(f"plan tried to untag {name}")

    def set_traffic_weight(self, name: str, weight: int) -> None:
        raise PlanOnly(f"plan tried to weigh {name}")
