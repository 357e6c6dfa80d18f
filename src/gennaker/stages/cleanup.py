"""cleanup_server_groups: keep the N newest server groups of a cluster, never the serving one."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gennaker.cloud.actions import Action
from gennaker.cloud.provider import CloudProvider
from gennaker.cloud.strategies import cleanup_actions
from gennaker.stages.base import TaskContext
from gennaker.stages.server_group import ActionStage, ClusterConfig


class CleanupConfig(ClusterConfig):
    keep: int = Field(default=2, ge=1)
    action: Literal["destroy", "disable"] = "destroy"
    allow_delete_active: bool = False  # also destroy older groups that are still enabled


def plan_cleanup(provider: CloudProvider, cfg: CleanupConfig, application: str) -> list[Action]:
    groups = provider.list_server_groups(cluster=cfg.cluster(application))
    return cleanup_actions(groups, cfg.keep, cfg.action, cfg.allow_delete_active)


class CleanupServerGroups(ActionStage):
    type = "cleanup_server_groups"
    Config = CleanupConfig
    description = "Destroy or disable all but the N newest server groups of a cluster"

    def plan(self, ctx: TaskContext, provider: CloudProvider) -> tuple[list[Action], dict[str, Any]]:
        actions = plan_cleanup(provider, ctx.config, ctx.application)
        return actions, {"affected": [a.server_group for a in actions]}
