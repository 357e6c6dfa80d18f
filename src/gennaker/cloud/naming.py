"""Spinnaker's naming: cluster ``app-stack-detail``, server groups ``app-stack-detail-vNNN``.

Names are the identity of a server group (tags only confirm who created it), so every part of
the cloud layer goes through these functions rather than splitting strings itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Versions are three digits and wrap after 999, as in Spinnaker; four digits are parsed too so a
# name written by hand (``-v1000``) is still recognised instead of treated as a detail.
_VERSION = re.compile(r"^(?P<cluster>.+)-v(?P<version>\d{3,4})$")
_PART = re.compile(r"^[A-Za-z0-9._]*$")
MAX_VERSION = 999


@dataclass(frozen=True)
class Name:
    application: str
    stack: str = ""
    detail: str = ""
    version: int | None = None

    @property
    def cluster(self) -> str:
        return cluster_name(self.application, self.stack, self.detail)

    @property
    def server_group(self) -> str:
        if self.version is None:
            raise ValueError(f"cluster {self.cluster} has no version")
        return server_group_name(self.cluster, self.version)


def _check(part: str, what: str) -> None:
    if not _PART.match(part):
        raise ValueError(f"{what} '{part}' may contain only letters, digits, '.' and '_' (no '-')")


def cluster_name(application: str, stack: str = "", detail: str = "") -> str:
    """``shop``, ``shop-web``, ``shop-web-blue``, ``shop--blue`` (detail without stack)."""
    if not application:
        raise ValueError("an application name is required")
    _check(application, "application")
    _check(stack, "stack")
    # The detail may itself contain '-' (Spinnaker allows it: shop-web-canary-eu).
    if detail and not re.match(r"^[A-Za-z0-9._-]+$", detail):
        raise ValueError(f"detail '{detail}' may contain only letters, digits, '.', '_' and '-'")
    if detail:
        return f"{application}-{stack}-{detail}"
    if stack:
        return f"{application}-{stack}"
    return application


def server_group_name(cluster: str, version: int) -> str:
    if not 0 <= version <= MAX_VERSION:
        raise ValueError(f"version {version} is out of range 0..{MAX_VERSION}")
    return f"{cluster}-v{version:03d}"


def parse(name: str) -> Name:
    """Split a cluster or server-group name into its parts."""
    version: int | None = None
    cluster = name
    m = _VERSION.match(name)
    if m:
        cluster, version = m.group("cluster"), int(m.group("version"))
    parts = cluster.split("-", 2)
    app = parts[0]
    stack = parts[1] if len(parts) > 1 else ""
    detail = parts[2] if len(parts) > 2 else ""
    return Name(app, stack, detail, version)


def cluster_of(server_group: str) -> str:
    """The cluster a server-group name belongs to (the name itself when it has no version)."""
    m = _VERSION.match(server_group)
    return m.group("cluster") if m else server_group


def version_of(server_group: str) -> int | None:
    m = _VERSION.match(server_group)
    return int(m.group("version")) if m else None


def next_version(existing: Iterable[str], cluster: str) -> int:
    """The version after the highest one in use in ``cluster``; wraps after 999, skipping used ones.

    "Highest" is by number, so after a wrap (v999 then v000) callers that care about age sort by
    creation time; here we only need a free number that continues the sequence.
    """
    used = {v for n in existing if cluster_of(n) == cluster and (v := version_of(n)) is not None}
    if not used:
        return 1
    candidate = (max(used) + 1) % (MAX_VERSION + 1)
    for _ in range(MAX_VERSION + 1):
        if candidate not in used:
            return candidate
        candidate = (candidate + 1) % (MAX_VERSION + 1)
    raise ValueError(f"cluster {cluster} has used every version 000..999; destroy old server groups")


def next_server_group(existing: Iterable[str], cluster: str) -> str:
    return server_group_name(cluster, next_version(existing, cluster))


def in_cluster(server_group: str, cluster: str) -> bool:
    return version_of(server_group) is not None and cluster_of(server_group) == cluster
