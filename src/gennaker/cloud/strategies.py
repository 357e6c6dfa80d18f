"""Deploy strategies, written once above the provider: given the cluster as it is, list the actions.

Each function is pure (no API calls), so the same code drives a deploy and its plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from gennaker.cloud.actions import Action
from gennaker.cloud.provider import Capacity, ServerGroup, newest_first

StrategyName = Literal["red_black", "highlander", "rolling_red_black", "none"]


@dataclass(frozen=True)
class StrategyOptions:
    strategy: StrategyName = "red_black"
    max_remaining_server_groups: int = 0  # 0 = keep all; counts the new group
    delay_before_disable: float = 0.0
    scale_down: bool = False
    delay_before_scale_down: float = 0.0
    target_percentages: list[int] = field(default_factory=lambda: [50, 100])
    pause_between_steps: float = 0.0
    # rolling_red_black: wait between steps for an operator ({"instructions", "roles"}) instead of a time
    pause_judgment: dict[str, Any] | None = None
    destroy_on_rollback: bool = False
    health_timeout: float = 1800.0


def previous_server_group(others: list[ServerGroup]) -> ServerGroup | None:
    """The group serving before this deploy: the newest enabled one (the new group excluded)."""
    enabled = [g for g in newest_first(others) if g.enabled]
    return enabled[0] if enabled else None


def initial_capacity(opts: StrategyOptions, capacity: Capacity, has_previous: bool) -> Capacity:
    """Rolling red/black starts the new group empty and grows it step by step."""
    if opts.strategy == "rolling_red_black" and has_previous:
        return Capacity(0, capacity.max, 0)
    return capacity


def percentages(opts: StrategyOptions) -> list[int]:
    steps = sorted({p for p in opts.target_percentages if 0 < p <= 100})
    if not steps or steps[-1] != 100:
        steps.append(100)
    return steps


def _tail(opts: StrategyOptions, others: list[ServerGroup], new: str, skip: set[str]) -> list[Action]:
    """Disable the other enabled groups, then scale down and shrink the cluster (red/black's end)."""
    actions: list[Action] = []
    ordered = newest_first(others)
    # in_rotation, not enabled: a disable cut short by a crash must be finished on the re-run.
    to_disable = [g for g in ordered if g.in_rotation and g.name not in skip]
    if to_disable and opts.delay_before_disable:
        actions.append(Action("wait", seconds=opts.delay_before_disable, reason="delay before disable"))
    actions += [Action("disable", g.name, reason=f"{new} replaces it") for g in to_disable]
    destroyed: set[str] = set()
    if opts.strategy == "highlander":
        actions += [Action("destroy", g.name, reason="highlander keeps only the new group") for g in ordered]
        return actions
    if opts.max_remaining_server_groups > 0:
        # The new group counts as one of the groups that remain; older ones go, newest kept first.
        keep = opts.max_remaining_server_groups - 1
        for g in ordered[keep:]:
            actions.append(
                Action(
                    "destroy",
                    g.name,
                    reason=f"max_remaining_server_groups={opts.max_remaining_server_groups}",
                )
            )
            destroyed.add(g.name)
    if opts.scale_down:
        to_scale = [g for g in ordered if g.name not in destroyed and g.capacity.desired > 0]
        if to_scale and opts.delay_before_scale_down:
            actions.append(Action("wait", seconds=opts.delay_before_scale_down, reason="delay before scale down"))
        actions += [
            Action("resize", g.name, Capacity(0, g.capacity.max, 0), reason="scale down disabled group")
            for g in to_scale
        ]
    return actions


def strategy_actions(opts: StrategyOptions, others: list[ServerGroup], new: str, capacity: Capacity) -> list[Action]:
    """What happens after the new group exists (and, except for rolling, is healthy).

    ``others`` are the cluster's other server groups as they are now.
    """
    if opts.strategy == "none":
        return []
    if opts.strategy in ("red_black", "highlander"):
        return _tail(opts, others, new, skip=set())
    if opts.strategy != "rolling_red_black":
        raise ValueError(f"unknown strategy {opts.strategy}")
    source = previous_server_group(others)
    if source is None:
        return _tail(opts, others, new, skip=set())
    pinned = Capacity(source.capacity.desired, source.capacity.max, source.capacity.desired)
    actions = [Action("resize", source.name, pinned, reason="pin minimum during cutover")]
    steps = percentages(opts)
    for p in steps:
        n = math.ceil(capacity.desired * p / 100)
        actions.append(Action("resize", new, Capacity(min(capacity.min, n), capacity.max, n), reason=f"{p}%"))
        actions.append(Action("wait_healthy", new, count=n, seconds=opts.health_timeout, reason=f"{p}%"))
        if p < 100:
            actions.append(Action("disable_share", source.name, percent=p, reason=f"{p}%"))
            if opts.pause_judgment is not None:
                actions.append(
                    Action(
                        "judgment",
                        new,
                        reason=f"pause after {p}%",
                        instructions=str(opts.pause_judgment.get("instructions") or ""),
                        roles=list(opts.pause_judgment.get("roles") or []),
                    )
                )
            elif opts.pause_between_steps:
                actions.append(Action("wait", seconds=opts.pause_between_steps, reason="pause between steps"))
        else:
            actions.append(Action("disable", source.name, reason=f"{new} replaces it"))
    actions.append(Action("resize", source.name, source.capacity, reason="unpin minimum"))
    return actions + _tail(opts, others, new, skip={source.name})


def rollback_actions(
    opts: StrategyOptions, previous: str | None, previous_capacity: Capacity | None, new: str
) -> list[Action]:
    """Back to exactly the previous group serving: re-enable it (and restore the capacity it had
    before the deploy, which also unpins a rolling cutover), wait until it is healthy, and only
    then take the new group out."""
    if previous is None or previous_capacity is None:
        return []
    actions = [
        Action("enable", previous, reason="rollback"),
        Action("resize", previous, previous_capacity, reason="rollback: restore capacity"),
        Action(
            "wait_healthy",
            previous,
            count=previous_capacity.desired,
            seconds=opts.health_timeout,
            reason="rollback",
        ),
        Action("disable", new, reason="rollback"),
    ]
    if opts.destroy_on_rollback:
        actions.append(Action("destroy", new, reason="rollback"))
    return actions


def cancel_actions(opts: StrategyOptions, previous: str, previous_capacity: Capacity, new: str) -> list[Action]:
    """What a canceled (or timed-out) deploy does at once: the rollback without its health wait.

    ``on_cancel`` must return within seconds, so the previous group is put back (enabled, its
    capacity restored, which unpins a rolling cutover) and the new one taken out in the same breath;
    the previous group's instances are still running, they only rejoin the target groups.
    """
    return [a for a in rollback_actions(opts, previous, previous_capacity, new) if a.kind != "wait_healthy"]


def cleanup_actions(
    groups: list[ServerGroup],
    keep: int,
    action: Literal["destroy", "disable"],
    allow_delete_active: bool = False,
) -> list[Action]:
    """Keep the ``keep`` newest groups; never touch the newest enabled one (it is serving).

    Other enabled groups beyond ``keep`` are disabled, and destroyed only with ``allow_delete_active``.
    """
    ordered = newest_first(groups)
    serving = next((g.name for g in ordered if g.enabled), None)
    result: list[Action] = []
    for g in ordered[keep:]:
        if g.name == serving:
            continue
        if action == "disable":
            if g.enabled:
                result.append(Action("disable", g.name, reason=f"cleanup: keep {keep}"))
        elif g.enabled and not allow_delete_active:
            continue
        else:
            result.append(Action("destroy", g.name, reason=f"cleanup: keep {keep}"))
    return result


def rollback_cluster_actions(groups: list[ServerGroup], health_timeout: float) -> tuple[list[Action], str, str]:
    """Back to the server group before the serving one, if it still exists.

    Returns the actions, the group rolled back from and the one rolled back to.
    """
    ordered = newest_first(groups)
    current = next((g for g in ordered if g.enabled), None)
    if current is None:
        raise ValueError("no enabled server group to roll back from")
    older = [
        g
        for g in ordered
        if g.created < current.created or (g.created == current.created and (g.version or 0) < (current.version or 0))
    ]
    if not older:
        raise ValueError(f"{current.name} has no older server group to roll back to")
    target = older[0]
    capacity = target.capacity if target.capacity.desired > 0 else current.capacity
    actions = [
        Action("enable", target.name, reason="rollback"),
        Action("resize", target.name, capacity, reason="rollback"),
        Action("wait_healthy", target.name, count=capacity.desired, seconds=health_timeout, reason="rollback"),
        Action("disable", current.name, reason="rollback"),
    ]
    return actions, current.name, target.name
