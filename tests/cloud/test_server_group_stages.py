"""enable/disable/resize/destroy, rollback_cluster and cleanup_server_groups against simulated AWS."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.errors import NotFound
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.cleanup import CleanupServerGroups
from gennaker.stages.deploy import Deploy
from gennaker.stages.server_group import (
    DestroyServerGroup,
    DisableServerGroup,
    EnableServerGroup,
    ResizeServerGroup,
    RollbackCluster,
)
from tests.cloud.conftest import (
    ACCOUNT,
    REGION,
    cluster_state,
    deploy_raw,
    launch_templates,
    run_stage,
    serving_groups,
)

WHERE = {"account": ACCOUNT, "region": REGION, "poll_interval": 1}


def _deploys(world: ShopWorld, services: SimpleNamespace, n: int, strategy: str = "red_black") -> None:
    for i in range(n):
        run = run_stage(Deploy(), deploy_raw(world, strategy=strategy), services, execution_id=f"d{i}")
        assert run.status == "SUCCEEDED", run.message


def test_rollback_cluster(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    _deploys(world, services, 1)
    assert serving_groups(provider) == ["shop-web-v002"]
    run = run_stage(RollbackCluster(), {**WHERE, "stack": "web"}, services)
    assert run.status == "SUCCEEDED", run.message
    assert run.outputs == {"rolled_back_from": "shop-web-v002", "server_group": "shop-web-v001"}
    assert serving_groups(provider) == ["shop-web-v001"]
    assert not cluster_state(provider)["shop-web-v002"]["enabled"]
    # A second rollback would need a group older than v001: there is none, and it says so.
    with pytest.raises(NotFound, match="no older server group"):
        run_stage(RollbackCluster(), {**WHERE, "stack": "web"}, services)


def test_rollback_cluster_restores_a_scaled_down_group(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    assert run_stage(Deploy(), deploy_raw(world, scale_down=True), services).status == "SUCCEEDED"
    assert cluster_state(provider)["shop-web-v001"]["capacity"] == (0, 0, 4)
    assert run_stage(RollbackCluster(), {**WHERE, "stack": "web"}, services).status == "SUCCEEDED"
    state = cluster_state(provider)
    assert state["shop-web-v001"]["capacity"] == (2, 2, 4) and state["shop-web-v001"]["serving"] == 2
    assert serving_groups(provider) == ["shop-web-v001"]


def test_enable_disable_resize_destroy(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    run = run_stage(DisableServerGroup(), {**WHERE, "stack": "web", "target": "current"}, services)
    assert run.status == "SUCCEEDED" and run.outputs["server_group"] == "shop-web-v001"
    state = cluster_state(provider)["shop-web-v001"]
    assert not state["enabled"] and state["serving"] == 0
    assert state["suspended"] == {"Launch", "Terminate", "AddToLoadBalancer"}

    run = run_stage(EnableServerGroup(), {**WHERE, "server_group": "shop-web-v001"}, services)
    assert run.status == "SUCCEEDED", run.message
    state = cluster_state(provider)["shop-web-v001"]
    assert state["enabled"] and state["serving"] == 2 and not state["suspended"]

    raw = {**WHERE, "server_group": "shop-web-v001", "capacity": {"min": 3, "max": 5, "desired": 3}}
    assert run_stage(ResizeServerGroup(), raw, services).status == "SUCCEEDED"
    state = cluster_state(provider)["shop-web-v001"]
    assert state["capacity"] == (3, 3, 5) and state["serving"] == 3

    assert run_stage(DestroyServerGroup(), {**WHERE, "server_group": "shop-web-v001"}, services).status == "SUCCEEDED"
    assert cluster_state(provider) == {} and launch_templates(provider) == []
    tg = provider.elb.describe_target_health(TargetGroupArn=world.target_group_arn)["TargetHealthDescriptions"]
    assert [d for d in tg if d["TargetHealth"]["State"] == "healthy"] == []


def test_missing_server_group_fails_clearly(world: ShopWorld, services: SimpleNamespace) -> None:
    with pytest.raises(NotFound, match="shop-web-v009 not found"):
        run_stage(EnableServerGroup(), {**WHERE, "server_group": "shop-web-v009"}, services)


def test_cleanup_keeps_newest_and_never_the_serving_one(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    _deploys(world, services, 4)  # v001..v005, v005 serving
    assert run_stage(RollbackCluster(), {**WHERE, "stack": "web"}, services).status == "SUCCEEDED"
    assert serving_groups(provider) == ["shop-web-v004"]
    run = run_stage(CleanupServerGroups(), {**WHERE, "stack": "web", "keep": 1}, services)
    assert run.status == "SUCCEEDED", run.message
    # v005 is the newest (kept), v004 serves (never touched); the rest are gone with their templates.
    assert set(cluster_state(provider)) == {"shop-web-v004", "shop-web-v005"}
    assert launch_templates(provider) == ["shop-web-v004", "shop-web-v005"]
    assert serving_groups(provider) == ["shop-web-v004"]
    assert sorted(run.outputs["affected"]) == ["shop-web-v001", "shop-web-v002", "shop-web-v003"]


def test_cleanup_disable(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    _deploys(world, services, 2, strategy="none")  # v001..v003 all serving
    run = run_stage(CleanupServerGroups(), {**WHERE, "stack": "web", "keep": 1, "action": "disable"}, services)
    assert run.status == "SUCCEEDED", run.message
    state = cluster_state(provider)
    assert set(state) == {"shop-web-v001", "shop-web-v002", "shop-web-v003"}
    assert serving_groups(provider) == ["shop-web-v003"]
