"""Operator actions on server groups and clusters, as plain functions over a provider.

The API calls these directly today; a stage task (or an engine-routed action) can call the same
functions, or take the action lists and run them with ``advance`` to poll instead of block.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from gennaker.cloud import naming
from gennaker.cloud.actions import Action
from gennaker.cloud.provider import Capacity, CloudProvider, newest_first
from gennaker.cloud.strategies import rollback_cluster_actions
from gennaker.cloud.tasks import run_to_completion
from gennaker.errors import Conflict, NotFound

Operation = Literal["enable", "disable", "resize", "destroy"]


def server_group_actions(op: Operation, name: str, capacity: Capacity | None = None) -> list[Action]:
    if op == "enable":
        return [Action("enable", name)]
    if op == "disable":
        return [Action("disable", name)]
    if op == "resize":
        if capacity is None:
            raise ValueError("resize needs a capacity {min, max, desired}")
        return [Action("resize", name, capacity)]
    if op == "destroy":
        return [Action("disable", name), Action("destroy", name)]
    raise ValueError(f"unknown operation {op}")


def check_server_group(provider: CloudProvider, application: str, name: str) -> None:
    """Refuse at once (before any task starts) a server group that is not the application's or not there."""
    if naming.parse(name).application != application:
        raise Conflict(f"server group {name} does not belong to application {application}")
    if provider.get_server_group(name) is None:
        raise NotFound(f"server group {name} not found in {provider.account}/{provider.region}")


def perform(
    provider: CloudProvider, application: str, op: Operation, name: str, capacity: Capacity | None = None
) -> list[str]:
    """Run one operation on a server group of ``application``; returns what was done."""
    check_server_group(provider, application, name)
    return run_to_completion(provider, server_group_actions(op, name, capacity))


def rollback_cluster(
    provider: CloudProvider, cluster: str, health_timeout: float = 600.0, poll_interval: float = 5.0
) -> dict[str, Any]:
    """Serve the cluster's previous server group again (waiting until healthy), disable the current."""
    try:
        actions, current, target = rollback_cluster_actions(
            provider.list_server_groups(cluster=cluster), health_timeout
        )
    except ValueError as exc:
        raise Conflict(f"cannot roll back {cluster}: {exc}") from None
    done = run_to_completion(provider, actions, poll_interval=poll_interval)
    return {"rolled_back_from": current, "server_group": target, "done": done}


def clusters_view(providers: list[CloudProvider], application: str) -> list[dict[str, Any]]:
    """Per cluster, account and region: its server groups (newest first) with health and state."""
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for provider in providers:
        for g in newest_first(provider.list_server_groups(application=application)):
            out[(g.cluster, provider.account, provider.region)].append(g.summary())
    return [
        {"cluster": c, "account": a, "region": r, "server_groups": groups} for (c, a, r), groups in sorted(out.items())
    ]
