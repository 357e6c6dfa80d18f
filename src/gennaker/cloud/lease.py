"""The per-cluster deploy guard: a lease written as a tag on the server group a deploy creates.

Two deploys to one cluster at once would each take the other's new group for an "older" one and
disable it. AWS gives no lock, and Gennaker installations sharing an account do not share a
database, so the only state every deployer sees is the ASG's tags. A deploy therefore tags its new
group ``gennaker:deploying = "<execution> <until>"`` when it creates it, clears the tag when it
ends (success, rollback, failure or cancel), and a deploy that finds another execution's unexpired
tag in the cluster refuses to start. The expiry bounds the damage of a deploy that is lost without
clearing it (a deleted database, a crashed worker never resumed): the cluster unblocks by itself.
Two deploys that check at the same instant both pick the same next name, and the second create
fails on the name clash without touching the first one's group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gennaker.cloud.provider import TAG_DEPLOYING, ServerGroup


@dataclass(frozen=True)
class Lease:
    server_group: str
    execution_id: str
    until: float

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.until, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return f"execution {self.execution_id} (server group {self.server_group}, lease until {when})"


def lease_value(execution_id: str, until: float) -> str:
    return f"{execution_id} {int(until)}"


def read_lease(group: ServerGroup) -> Lease | None:
    """The lease tagged on ``group``; a malformed tag counts as none (we only ever write it whole)."""
    execution, _, until = group.tags.get(TAG_DEPLOYING, "").partition(" ")
    if not execution or not until.isdigit():
        return None
    return Lease(group.name, execution, float(until))


def held_by_other(groups: list[ServerGroup], execution_id: str, now: float) -> Lease | None:
    """A live lease of another execution on the cluster, if any."""
    for group in groups:
        lease = read_lease(group)
        if lease and lease.execution_id != execution_id and lease.until > now:
            return lease
    return None
