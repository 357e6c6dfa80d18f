"""Data for the CLUSTERS / LOAD BALANCERS / SECURITY GROUPS and READINESS tabs, from the cloud and ops
layers' read functions (``gennaker.api.cloud``, ``gennaker.ops.views``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gennaker.api import cloud as cloud_api
from gennaker.cloud import registry
from gennaker.errors import GennakerError
from gennaker.ops import views as ops_views
from gennaker.runtime import Runtime

# Per tab, the function of gennaker.api.cloud that serves it: f(application, providers) -> list of dicts.
CLOUD_READERS: dict[str, Callable[[str, Any], list[dict[str, Any]]]] = {
    "clusters": cloud_api.clusters,
    "loadbalancers": cloud_api.load_balancers,
    "securitygroups": cloud_api.security_groups,
}


def cloud(runtime: Runtime, application: str, tab: str) -> dict[str, Any]:
    if not runtime.config.accounts:
        return {
            "available": False,
            "items": [],
            "error": "",
            "why": "No accounts are configured (accounts: in gennaker.yml), so there is nothing to show.",
        }
    try:
        providers = registry.all_providers(runtime.services)
        items = CLOUD_READERS[tab](application, providers)
    except GennakerError as exc:
        # Shown on the tab (with its cause) rather than as a 500: a cloud being unreachable is an
        # answer too. Providers raise their SDK's errors as CloudError (a GennakerError).
        return {"available": True, "items": [], "error": f"{type(exc).__name__}: {exc}", "why": ""}
    return {"available": True, "items": items, "error": "", "why": ""}


def readiness(runtime: Runtime, application: str, sees_all: bool = True) -> dict[str, Any]:
    """``sees_all``: the caller may read every application. Otherwise an audit that cannot be narrowed
    to the application's resources is not shown: its findings are about other applications too."""
    audit = ops_views.latest_for_application(runtime, application)
    if audit is not None and not audit["narrowed"] and not sees_all:
        return {
            "available": False,
            "audit": None,
            "sees_all": False,
            "why": (
                f"The latest audit ({audit['id']}) has no resources tagged with {application}, and its "
                "findings cover whole accounts: only viewers of every application may read it."
            ),
        }
    return {"available": True, "audit": audit, "why": "", "sees_all": sees_all}
