"""Rolling red/black paused for a manual judgment between steps: continue finishes, rollback rolls back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.provider import Capacity
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import cluster_state, deploy_raw, run_stage, serving_groups

PAUSE = {"judgment": {"instructions": "Check the 50% dashboards", "roles": ["sre"]}}


def _operator(provider: AwsProvider, choice: str, seen: list[Any]) -> Any:
    """Answers after the deploy has waited three polls, as the engine's judge signal would: by writing
    the answer under "judgment" in the stage context."""

    def on_call(task: str, _n: int, context: dict[str, Any]) -> None:
        waiting = context.get("awaiting_judgment")
        if task != "apply_strategy" or not waiting or context.get("judgment"):
            return
        seen.append(waiting)
        if len(seen) == 3:
            state = cluster_state(provider)
            seen.append({name: (s["capacity"], s["serving"]) for name, s in state.items()})
            context["judgment"] = {"choice": choice, "by": "alice"}

    return on_call


def _raw(world: ShopWorld) -> dict[str, Any]:
    return deploy_raw(
        world,
        strategy="rolling_red_black",
        target_percentages=[50],
        capacity={"min": 2, "max": 4, "desired": 4},
        pause_between_steps=PAUSE,
    )


def test_judgment_continue(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    provider.resize_server_group("shop-web-v001", Capacity(1, 4, 2))
    seen: list[Any] = []
    run = run_stage(Deploy(), _raw(world), services, on_call=_operator(provider, "continue", seen))
    assert run.status == "SUCCEEDED", run.message
    assert seen[0] == {
        "instructions": "Check the 50% dashboards",
        "roles": ["sre"],
        "options": ["continue", "rollback"],
        "step": "pause after 50%",
    }
    # While waiting: half cut over, old minimum pinned; nothing moved during the three polls.
    assert seen[3] == {"shop-web-v001": ((2, 2, 4), 1), "shop-web-v002": ((2, 2, 4), 2)}
    assert serving_groups(provider) == ["shop-web-v002"]
    assert cluster_state(provider)["shop-web-v001"]["capacity"] == (1, 2, 4)
    assert run.context["awaiting_judgment"] is None and run.context["judgment"] is None
    assert any("alice chose continue" in line for line in run.logs)


def test_judgment_rollback(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    provider.resize_server_group("shop-web-v001", Capacity(1, 4, 2))
    seen: list[Any] = []
    run = run_stage(Deploy(), _raw(world), services, on_call=_operator(provider, "rollback", seen))
    assert run.status == "FAILED"
    assert "alice chose rollback" in (run.message or "") and "rolled back" in (run.message or "")
    state = cluster_state(provider)
    assert serving_groups(provider) == ["shop-web-v001"]
    assert state["shop-web-v001"]["capacity"] == (1, 2, 4) and not state["shop-web-v002"]["enabled"]


def test_pause_takes_a_duration_or_a_judgment_only(world: ShopWorld) -> None:
    cfg = Deploy.Config.model_validate({"id": "d", "type": "deploy", **_raw(world)})
    assert cfg.options().pause_judgment == PAUSE["judgment"] and cfg.options().pause_between_steps == 0
    timed = Deploy.Config.model_validate({"id": "d", "type": "deploy", **deploy_raw(world, pause_between_steps="30s")})
    assert timed.options().pause_between_steps == 30 and timed.options().pause_judgment is None
    with pytest.raises(ValueError):
        Deploy.Config.model_validate({"id": "d", "type": "deploy", **deploy_raw(world, pause_between_steps={"x": 1})})
