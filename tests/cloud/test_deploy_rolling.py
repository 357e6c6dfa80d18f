"""Rolling red/black: the new group grows step by step while the old one's share leaves rotation."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.provider import Capacity
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import cluster_state, deploy_raw, run_stage, serving_groups


def _observe(provider: AwsProvider, seen: list[dict[str, Any]]) -> Any:
    def on_call(task: str, _n: int, _context: dict[str, Any]) -> None:
        if task == "apply_strategy":
            snap = {name: (s["capacity"], s["serving"], s["enabled"]) for name, s in cluster_state(provider).items()}
            if not seen or seen[-1] != snap:
                seen.append(snap)

    return on_call


def test_rolling_red_black_steps(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    provider.resize_server_group("shop-web-v001", Capacity(1, 4, 2))  # so that pinning shows
    seen: list[dict[str, Any]] = []
    raw = deploy_raw(
        world,
        strategy="rolling_red_black",
        target_percentages=[25, 50],
        capacity={"min": 2, "max": 4, "desired": 4},
        pause_between_steps="1m",
    )
    run = run_stage(Deploy(), raw, services, on_call=_observe(provider, seen))
    assert run.status == "SUCCEEDED", run.message
    # Created empty, so the first look at the cluster shows v002 at 0 and v001 untouched.
    assert seen[0] == {"shop-web-v001": ((1, 2, 4), 2, True), "shop-web-v002": ((0, 0, 4), 0, True)}
    # 25%: one new instance, one of the two old ones out of rotation, old minimum pinned to 2.
    assert seen[1] == {"shop-web-v001": ((2, 2, 4), 1, True), "shop-web-v002": ((1, 1, 4), 1, True)}
    # 50%: two new instances; ceil(50% of 2) = 1 old one out.
    assert seen[2] == {"shop-web-v001": ((2, 2, 4), 1, True), "shop-web-v002": ((2, 2, 4), 2, True)}
    state = cluster_state(provider)
    assert state["shop-web-v002"]["capacity"] == (2, 4, 4) and state["shop-web-v002"]["serving"] == 4
    # 100%: the old group is disabled and its minimum unpinned back to 1.
    assert state["shop-web-v001"]["capacity"] == (1, 2, 4) and not state["shop-web-v001"]["enabled"]
    assert serving_groups(provider) == ["shop-web-v002"]
    assert any("pin minimum during cutover" in line for line in run.logs)


def test_rolling_failure_unpins_and_rolls_back(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace, bad_images: set[str]
) -> None:
    provider.resize_server_group("shop-web-v001", Capacity(1, 4, 2))
    bad_images.add(world.base_image_id)  # the base image has no app: it never passes health checks
    raw = deploy_raw(
        world,
        image=world.base_image_id,
        strategy="rolling_red_black",
        target_percentages=[50],
        capacity={"min": 2, "max": 4, "desired": 4},
    )
    run = run_stage(Deploy(), raw, services)
    assert run.status == "FAILED"
    assert "rolled back" in (run.message or "") and "shop-web-v001 is serving again" in (run.message or "")
    state = cluster_state(provider)
    assert state["shop-web-v001"]["capacity"] == (1, 2, 4)  # unpinned
    assert state["shop-web-v001"]["enabled"] and state["shop-web-v001"]["serving"] == 2
    assert not state["shop-web-v002"]["enabled"] and state["shop-web-v002"]["serving"] == 0
    assert serving_groups(provider) == ["shop-web-v001"]
