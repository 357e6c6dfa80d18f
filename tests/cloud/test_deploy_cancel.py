"""Canceling a deploy (or its stage timeout expiring) puts the cluster back to the previous group serving."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.aws.provider import DISABLE_PROCESSES, AwsProvider
from gennaker.cloud.provider import Capacity
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.base import TaskContext
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import (
    Clock,
    Interrupted,
    cluster_state,
    deploy_raw,
    interrupt_when,
    run_stage,
    serving_groups,
    waiting_on,
)


def cancel(
    raw: dict[str, Any], context: dict[str, Any], services: SimpleNamespace, logs: list[str], execution_id: str = "ex-1"
) -> None:
    stage = Deploy()
    config = stage.Config.model_validate({"id": "deploy", "type": "deploy", **raw})
    ctx = TaskContext(
        execution_id=execution_id,
        stage_id="deploy",
        pipeline="p",
        application="shop",
        trigger={},
        config=config,
        context=dict(context),
        outputs={},
        attempt=1,
        stage_started_at=0.0,
        services=services,
        log=logs.append,
        now=Clock().now,
    )
    stage.on_cancel(ctx)


def test_cancel_during_delay_before_disable(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    raw = deploy_raw(world, delay_before_disable="5m")
    saved: dict[str, Any] = {}
    with pytest.raises(Interrupted):
        run_stage(Deploy(), raw, services, on_call=interrupt_when(waiting_on("delay before disable"), saved))
    assert serving_groups(provider) == ["shop-web-v001", "shop-web-v002"]  # half cut over
    logs: list[str] = []
    cancel(raw, saved, services, logs)
    cancel(raw, saved, services, logs)  # delivered twice: same end state, no error
    state = cluster_state(provider)
    assert serving_groups(provider) == ["shop-web-v001"]
    assert state["shop-web-v001"]["enabled"] and state["shop-web-v001"]["suspended"] == set()
    assert state["shop-web-v001"]["capacity"] == (2, 2, 4)
    assert not state["shop-web-v002"]["enabled"]
    assert set(DISABLE_PROCESSES) <= state["shop-web-v002"]["suspended"]
    assert any("shop-web-v001 is serving again" in line for line in logs)


def test_cancel_during_rolling_pause_unpins(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    provider.resize_server_group("shop-web-v001", Capacity(1, 4, 2))  # so that the pin shows
    raw = deploy_raw(
        world,
        strategy="rolling_red_black",
        target_percentages=[50],
        capacity={"min": 2, "max": 4, "desired": 4},
        pause_between_steps="30s",
        destroy_on_rollback=True,
    )
    saved: dict[str, Any] = {}
    with pytest.raises(Interrupted):
        run_stage(Deploy(), raw, services, on_call=interrupt_when(waiting_on("pause between steps"), saved))
    state = cluster_state(provider)
    assert state["shop-web-v001"]["capacity"] == (2, 2, 4)  # pinned
    assert state["shop-web-v001"]["serving"] == 1 and state["shop-web-v002"]["serving"] == 2
    logs: list[str] = []
    cancel(raw, saved, services, logs)
    cancel(raw, saved, services, logs)
    state = cluster_state(provider)
    assert set(state) == {"shop-web-v001"}  # destroy_on_rollback
    assert state["shop-web-v001"]["capacity"] == (1, 2, 4)  # unpinned
    assert state["shop-web-v001"]["enabled"] and state["shop-web-v001"]["serving"] == 2
    assert state["shop-web-v001"]["suspended"] == set()


def test_cancel_before_anything_was_created(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    before = cluster_state(provider)
    logs: list[str] = []
    cancel(deploy_raw(world), {}, services, logs)
    assert cluster_state(provider) == before
    assert any("nothing to undo" in line for line in logs)


def test_cancel_finds_a_create_not_yet_saved(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    raw = deploy_raw(world)
    saved: dict[str, Any] = {}
    with pytest.raises(Interrupted):  # the group exists in AWS, the context does not know it yet
        run_stage(Deploy(), raw, services, on_call=interrupt_when(lambda task, _c: task == "wait_for_healthy", saved))
    assert serving_groups(provider) == ["shop-web-v001", "shop-web-v002"]
    logs: list[str] = []
    cancel(raw, {}, services, logs)
    assert serving_groups(provider) == ["shop-web-v001"]
    assert not cluster_state(provider)["shop-web-v002"]["enabled"]
