"""Reads and checks for operator actions on server groups and clusters. The actions themselves run
as tasks on the engine (the server group stage types), started by the API and the console."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from gennaker.cloud import naming
from gennaker.cloud.provider import CloudProvider, newest_first
from gennaker.errors import Conflict, NotFound


def check_server_group(provider: CloudProvider, application: str, name: str) -> None:
    """Refuse at once (before any task starts) a server group that is not the application's or not there."""
    if naming.parse(name).application != application:
        raise Conflict(f"server group {name} does not belong to application {application}")
    if provider.get_server_group(name) is None:
        raise NotFound(f"server group {name} not found in {provider.account}/{provider.region}")


def clusters_view(providers: list[CloudProvider], application: str) -> list[dict[str, Any]]:
    """Per cluster, account and region: its server groups (newest first) with health and state."""
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for provider in providers:
        for g in newest_first(provider.list_server_groups(application=application)):
            out[(g.cluster, provider.account, provider.region)].append(g.summary())
    return [
        {"cluster": c, "account": a, "region": r, "server_groups": groups} for (c, a, r), groups in sorted(out.items())
    ]
