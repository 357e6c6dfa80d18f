"""Steps that change a cluster, as data: strategies and plans produce them, one executor runs them.

Because the deploy stage runs exactly the list the planner shows, ``gennaker plan`` cannot drift
from what a deploy does. Every action is idempotent and may be run again after a crash; the ones
that wait keep their deadline in a small state dict that the caller persists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from gennaker.cloud.provider import Capacity, CloudProvider
from gennaker.errors import GennakerError

ActionKind = Literal[
    "create", "enable", "disable", "disable_share", "resize", "destroy", "wait", "wait_healthy", "judgment"
]
# A judgment's answers: go on with the cutover, or roll back to the previous group.
JUDGMENT_OPTIONS = ("continue", "rollback")


class HealthTimeout(Exception):
    """A server group did not reach its healthy count in time (a deploy failure, not a crash)."""


class JudgedRollback(GennakerError):
    """An operator answered a judgment with "rollback"."""


@dataclass
class Action:
    kind: ActionKind
    server_group: str = ""
    capacity: Capacity | None = None
    percent: int | None = None  # disable_share: share of instances to take out of rotation
    count: int | None = None  # wait_healthy: instances that must be healthy
    seconds: float = 0.0  # wait: how long; wait_healthy: timeout
    reason: str = ""
    instructions: str = ""  # judgment: what the operator should check
    roles: list[str] = field(default_factory=list)  # judgment: who may answer (empty: anyone)

    def describe(self) -> str:
        sg = self.server_group
        text = {
            "create": f"create {sg} ({self.capacity})",
            "enable": f"enable {sg}",
            "disable": f"disable {sg}",
            "disable_share": f"disable {self.percent}% of {sg}'s instances",
            "resize": f"resize {sg} to {self.capacity}",
            "destroy": f"destroy {sg}",
            "wait": f"wait {self.seconds:g}s",
            "wait_healthy": f"wait until {self.count} instances of {sg} are healthy",
            "judgment": f"wait for a manual judgment ({' / '.join(JUDGMENT_OPTIONS)}): {self.instructions}",
        }[self.kind]
        return f"{text} ({self.reason})" if self.reason else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "server_group": self.server_group,
            "capacity": self.capacity.as_dict() if self.capacity else None,
            "percent": self.percent,
            "count": self.count,
            "seconds": self.seconds,
            "reason": self.reason,
            "instructions": self.instructions,
            "roles": list(self.roles),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Action:
        cap = d.get("capacity")
        return cls(
            d["kind"],
            d.get("server_group", ""),
            Capacity.from_dict(cap) if cap else None,
            d.get("percent"),
            d.get("count"),
            float(d.get("seconds") or 0),
            d.get("reason", ""),
            d.get("instructions", ""),
            list(d.get("roles") or []),
        )


@dataclass
class StepOutcome:
    done: bool
    poll_after: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


def run_action(
    provider: CloudProvider, action: Action, state: dict[str, Any], now: float, poll_interval: float
) -> StepOutcome:
    """Run (or continue) one action. ``state`` is what the previous call for this action returned.

    Raises HealthTimeout when a wait_healthy runs out of time; AWS errors propagate as CloudError.
    """
    sg = action.server_group
    if action.kind == "wait":
        until = float(state.get("until", now + action.seconds))
        if now >= until:
            return StepOutcome(True)
        return StepOutcome(False, min(poll_interval, until - now), {"until": until}, f"waiting {until - now:.0f}s")
    if action.kind == "judgment":
        # The deploy stage copies the operator's answer (the engine's "judgment" signal) into state.
        answer = state.get("judgment")
        if not answer:
            return StepOutcome(False, poll_interval, {}, f"awaiting judgment: {action.instructions}")
        who = answer.get("by") or "an operator"
        if answer.get("choice") == "rollback":
            raise JudgedRollback(f"{who} chose rollback at the judgment between steps ({action.reason})")
        return StepOutcome(True, message=f"{who} chose continue ({action.reason})")
    if action.kind == "wait_healthy":
        deadline = float(state.get("deadline", now + action.seconds))
        group = provider.get_server_group(sg)
        if group is None:
            raise HealthTimeout(f"server group {sg} disappeared while waiting for it to be healthy")
        healthy = len(group.healthy_instances())
        wanted = action.count if action.count is not None else group.capacity.desired
        if healthy >= wanted:
            return StepOutcome(True, message=f"{sg}: {healthy}/{wanted} healthy")
        if now >= deadline:
            unhealthy = [i.describe() for i in group.instances if not i.healthy(group.load_balancers)]
            report = provider.health_report(sg)
            raise HealthTimeout(
                f"{sg}: only {healthy} of {wanted} instances healthy after "
                f"{action.seconds:g}s; not healthy: {'; '.join(unhealthy) or 'none launched'}"
                + (f"\n{report}" if report else "")
            )
        return StepOutcome(
            False,
            min(poll_interval, max(deadline - now, 0.0)),
            {"deadline": deadline},
            f"{sg}: {healthy}/{wanted} healthy",
        )
    if action.kind == "enable":
        provider.enable_server_group(sg)
    elif action.kind == "disable":
        # A re-run may find the group already destroyed by a later step of the same list.
        provider.disable_server_group(sg, missing_ok=True)
    elif action.kind == "disable_share":
        group = provider.get_server_group(sg)
        if group is not None:
            # The source's capacity is pinned during the cutover, so its instance list is stable and
            # taking the first N by id gives the same N on a re-run.
            n = math.ceil(len(group.instances) * (action.percent or 0) / 100)
            provider.deregister_instances(sg, [i.id for i in group.instances[:n]])
    elif action.kind == "resize":
        if action.capacity is None:
            raise ValueError("resize needs a capacity")
        provider.resize_server_group(sg, action.capacity)
    elif action.kind == "destroy":
        provider.destroy_server_group(sg)
    elif action.kind == "create":
        raise ValueError("create is run by the deploy stage itself, not by run_action")
    return StepOutcome(True, message=action.describe())
