"""Data for the CLUSTERS / LOAD BALANCERS / SECURITY GROUPS and READINESS tabs, from the cloud and ops
layers. Those are other modules' business: this one only calls the read functions they expose, and
says plainly when there is none, instead of guessing."""

from __future__ import annotations

import importlib
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gennaker.errors import GennakerError
from gennaker.runtime import Runtime

# Per tab, the function of gennaker.api.cloud that serves it: f(application, providers) -> list of dicts.
CLOUD_READERS = {"clusters": "clusters", "loadbalancers": "load_balancers", "securitygroups": "security_groups"}
READINESS_READER = ("gennaker.ops.views", "latest_for_application")


def _reader(module: str, name: str) -> Any:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise
    return getattr(mod, name, None)


def cloud(runtime: Runtime, application: str, tab: str) -> dict[str, Any]:
    api = _reader("gennaker.api.cloud", "all_providers") and importlib.import_module("gennaker.api.cloud")
    fn = getattr(api, CLOUD_READERS[tab], None) if api else None
    if api is None or fn is None:
        return {"available": False, "items": [], "error": "",
                "why": "The cloud layer (gennaker.api.cloud) is not installed here, so there is nothing to show."}
    if not runtime.config.accounts:
        return {"available": False, "items": [], "error": "",
                "why": "No AWS accounts are configured (accounts: in gennaker.yml), so there is nothing to show."}
    providers = api.all_providers(runtime.config, runtime.services.aws)
    try:
        items = fn(application, providers)
    except (GennakerError, BotoCoreError, ClientError) as exc:
        # Shown on the tab (with its cause) rather than as a 500: AWS being unreachable is an answer too.
        return {"available": True, "items": [], "error": f"{type(exc).__name__}: {exc}", "why": ""}
    return {"available": True, "items": items, "error": "", "why": ""}


def readiness(runtime: Runtime, application: str) -> dict[str, Any]:
    fn = _reader(*READINESS_READER)
    if fn is None:
        return {"available": False, "audit": None,
                "why": "No readiness audit reader is available (gennaker.ops). Run `gennaker ops audit` "
                       "and see its report."}
    return {"available": True, "audit": fn(runtime, application), "why": ""}
