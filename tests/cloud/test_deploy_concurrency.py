"""Deploys never undo each other: a name clash fails without touching the other execution's group,
and a second deploy to a cluster refuses while another execution's deploy holds it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.provider import TAG_DEPLOYING, TAG_EXECUTION
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages import deploy as deploy_module
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
from tests.cloud.test_deploy_cancel import cancel


def test_name_clash_does_not_roll_back_the_other_executions_group(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = run_stage(Deploy(), deploy_raw(world, strategy="none"), services, execution_id="ex-other")
    assert other.status == "SUCCEEDED" and other.outputs["server_group"] == "shop-web-v002"
    # Both executions read the cluster before either created its group: both pick v002.
    monkeypatch.setattr(deploy_module, "choose_name", lambda *_args: "shop-web-v002")
    run = run_stage(Deploy(), deploy_raw(world), services, execution_id="ex-1")
    assert run.status == "FAILED"
    assert "no rollback: shop-web-v002 was not created by this deploy" in (run.message or "")
    assert "ex-other" in (run.message or "")
    state = cluster_state(provider)
    assert set(state) == {"shop-web-v001", "shop-web-v002"}
    assert state["shop-web-v002"]["enabled"] and state["shop-web-v002"]["serving"] == 2
    assert state["shop-web-v002"]["tags"][TAG_EXECUTION] == "ex-other"
    assert serving_groups(provider) == ["shop-web-v001", "shop-web-v002"]


def test_second_deploy_refuses_while_another_holds_the_cluster(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    raw = deploy_raw(world, delay_before_disable="5m")
    saved: dict[str, Any] = {}
    with pytest.raises(Interrupted):  # ex-A is between "v002 healthy" and "disable v001"
        run_stage(
            Deploy(),
            raw,
            services,
            execution_id="ex-A",
            on_call=interrupt_when(waiting_on("delay before disable"), saved),
        )
    assert cluster_state(provider)["shop-web-v002"]["tags"][TAG_DEPLOYING].startswith("ex-A ")

    blocked = run_stage(Deploy(), deploy_raw(world), services, execution_id="ex-B")
    assert blocked.status == "FAILED"
    assert "cluster shop-web is being deployed by execution ex-A (server group shop-web-v002" in (blocked.message or "")
    assert set(cluster_state(provider)) == {"shop-web-v001", "shop-web-v002"}  # nothing created, nothing disabled
    assert serving_groups(provider) == ["shop-web-v001", "shop-web-v002"]

    cancel(raw, saved, services, [], execution_id="ex-A")  # ex-A ends: its lease goes with it
    assert TAG_DEPLOYING not in cluster_state(provider)["shop-web-v002"]["tags"]
    after = run_stage(Deploy(), deploy_raw(world), services, execution_id="ex-B")
    assert after.status == "SUCCEEDED", after.message
    assert serving_groups(provider) == ["shop-web-v003"]
    assert all(TAG_DEPLOYING not in s["tags"] for s in cluster_state(provider).values())


def test_an_expired_lease_does_not_block(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    clock = Clock()
    # A deploy lost without clearing its lease (its database deleted, say), long expired.
    provider.set_server_group_tag("shop-web-v001", TAG_DEPLOYING, f"ex-lost {int(clock.now()) - 1}")
    run = run_stage(Deploy(), deploy_raw(world), services, execution_id="ex-1", clock=clock)
    assert run.status == "SUCCEEDED", run.message
    provider.set_server_group_tag("shop-web-v002", TAG_DEPLOYING, f"ex-live {int(clock.now()) + 600}")
    blocked = run_stage(Deploy(), deploy_raw(world), services, execution_id="ex-2", clock=clock)
    assert blocked.status == "FAILED" and "execution ex-live" in (blocked.message or "")
