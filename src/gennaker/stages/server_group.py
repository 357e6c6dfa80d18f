"""Stages that act on one existing server group, or roll a cluster back.

Each is one task that plans a short list of actions (persisted before acting, like the deploy's
strategy) and runs it; waits such as "until healthy" poll without holding a worker.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from gennaker.cloud import naming
from gennaker.cloud.actions import Action, HealthTimeout
from gennaker.cloud.provider import CloudProvider, ServerGroup, newest_first
from gennaker.cloud.registry import provider_for
from gennaker.cloud.strategies import rollback_cluster_actions
from gennaker.cloud.tasks import CapacityModel, CloudStageConfig, advance
from gennaker.errors import NotFound
from gennaker.spec.durations import Duration
from gennaker.stages.base import StageType, Task, TaskContext, TaskResult

Target = Literal["current", "previous", "oldest", "newest"]


class ClusterConfig(CloudStageConfig):
    stack: str = ""
    detail: str = ""
    health_timeout: Duration = 1800.0

    def cluster(self, application: str) -> str:
        return naming.cluster_name(application, self.stack, self.detail)


class ServerGroupConfig(ClusterConfig):
    """A server group by name, or by its place in the cluster (Spinnaker's dynamic targets):
    ``current`` is the newest enabled group, ``previous`` the enabled-or-not group before it."""

    server_group: str | None = None
    target: Target | None = None

    @model_validator(mode="after")
    def _one_way(self) -> ServerGroupConfig:
        if (self.server_group is None) == (self.target is None):
            raise ValueError("give either server_group (a name) or target (current, previous, oldest, newest)")
        return self


def select(groups: list[ServerGroup], target: Target) -> ServerGroup | None:
    ordered = newest_first(groups)
    current = next((g for g in ordered if g.enabled), None)
    if target == "newest":
        return ordered[0] if ordered else None
    if target == "oldest":
        return ordered[-1] if ordered else None
    if target == "current":
        return current
    if current is None:
        return None
    older = ordered[ordered.index(current) + 1 :]
    return older[0] if older else None


def resolve_group(provider: CloudProvider, cfg: ServerGroupConfig, application: str) -> ServerGroup:
    if cfg.server_group:
        group = provider.get_server_group(cfg.server_group)
        if group is None:
            raise NotFound(f"server group {cfg.server_group} not found in {provider.account}/{provider.region}")
        return group
    cluster = cfg.cluster(application)
    assert cfg.target is not None
    found = select(provider.list_server_groups(cluster=cluster), cfg.target)
    if found is None:
        raise NotFound(f"cluster {cluster} has no {cfg.target} server group in {provider.account}/{provider.region}")
    return found


class ActionStage(StageType):
    """One task: plan actions from the config and the cluster, then run them to the end."""

    task_name = "run"

    def plan(self, ctx: TaskContext, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        """The actions, and the outputs of the stage."""
        raise NotImplementedError

    def tasks(self, config: Any) -> list[Task]:
        return [Task(self.task_name, self._run)]

    def _run(self, ctx: TaskContext) -> TaskResult:
        cfg = ctx.config
        provider = provider_for(ctx.services, cfg.account, cfg.region)
        outputs: dict[str, Any] = dict(ctx.context.get("planned_outputs") or {})

        def make() -> list[Action]:
            actions, planned = self.plan(ctx, provider)
            outputs.update(planned)
            ctx.log("; ".join(a.describe() for a in actions) or "nothing to do")
            return actions

        try:
            progress = advance(provider, ctx.context.get("actions"), make, ctx.now, cfg.poll_interval, ctx.log)
        except HealthTimeout as exc:
            return TaskResult.failed(str(exc), outputs=outputs)
        context = {"actions": progress.context, "planned_outputs": outputs}
        if not progress.done:
            return TaskResult.running(
                after=progress.poll_after, context=context, message=progress.message, outputs=outputs
            )
        return TaskResult.succeeded(outputs=outputs, context=context)


def _health(group: ServerGroup, cfg: ClusterConfig, wait: bool) -> list[Action]:
    if not wait or group.capacity.desired == 0:
        return []
    return [Action("wait_healthy", group.name, count=group.capacity.desired, seconds=cfg.health_timeout)]


class EnableConfig(ServerGroupConfig):
    wait_for_healthy: bool = True


class EnableServerGroup(ActionStage):
    type = "enable_server_group"
    Config = EnableConfig
    description = "Put a server group back in rotation (resume processes, register its instances)"

    def plan(self, ctx: TaskContext, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        group = resolve_group(provider, ctx.config, ctx.application)
        actions = [Action("enable", group.name), *_health(group, ctx.config, ctx.config.wait_for_healthy)]
        return actions, {"server_group": group.name}


class DisableServerGroup(ActionStage):
    type = "disable_server_group"
    Config = ServerGroupConfig
    description = "Take a server group out of rotation (deregister, suspend Launch/Terminate/AddToLoadBalancer)"

    def plan(self, ctx: TaskContext, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        group = resolve_group(provider, ctx.config, ctx.application)
        return [Action("disable", group.name)], {"server_group": group.name}


class ResizeConfig(ServerGroupConfig):
    capacity: CapacityModel
    wait_for_healthy: bool = True


class ResizeServerGroup(ActionStage):
    type = "resize_server_group"
    Config = ResizeConfig
    description = "Set a server group's min/max/desired capacity"

    def plan(self, ctx: TaskContext, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        cfg: ResizeConfig = ctx.config
        group = resolve_group(provider, cfg, ctx.application)
        capacity = cfg.capacity.to_capacity()
        actions = [Action("resize", group.name, capacity)]
        if group.enabled and cfg.wait_for_healthy and capacity.desired:
            actions.append(Action("wait_healthy", group.name, count=capacity.desired, seconds=cfg.health_timeout))
        return actions, {"server_group": group.name, "capacity": capacity.as_dict()}


class DestroyServerGroup(ActionStage):
    type = "destroy_server_group"
    Config = ServerGroupConfig
    description = "Disable, then delete a server group and its launch template"

    def plan(self, ctx: TaskContext, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        group = resolve_group(provider, ctx.config, ctx.application)
        return [Action("disable", group.name), Action("destroy", group.name)], {"server_group": group.name}


class RollbackCluster(ActionStage):
    type = "rollback_cluster"
    Config = ClusterConfig
    description = "Serve the previous server group of a cluster again and disable the current one"

    def plan(self, ctx: TaskContext, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        cfg: ClusterConfig = ctx.config
        cluster = cfg.cluster(ctx.application)
        try:
            actions, current, target = rollback_cluster_actions(
                provider.list_server_groups(cluster=cluster), cfg.health_timeout
            )
        except ValueError as exc:
            raise NotFound(f"cannot roll back {cluster}: {exc}") from None
        return actions, {"rolled_back_from": current, "server_group": target}
