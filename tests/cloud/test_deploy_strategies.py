"""Each strategy end to end against simulated AWS, checking the cluster after each deploy."""

from __future__ import annotations

from types import SimpleNamespace

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.provider import TAG_APPLICATION, TAG_CLUSTER, TAG_EXECUTION, TAG_SERVER_GROUP
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import cluster_state, deploy_raw, launch_templates, run_stage, serving_groups

DISABLED = {"Launch", "Terminate", "AddToLoadBalancer"}


def test_seeded_world_serves_v001(world: ShopWorld, provider: AwsProvider) -> None:
    state = cluster_state(provider)
    assert list(state) == ["shop-web-v001"]
    assert state["shop-web-v001"]["serving"] == 2 and state["shop-web-v001"]["enabled"]


def test_red_black_three_deploys(world: ShopWorld, provider: AwsProvider, services: SimpleNamespace) -> None:
    run = run_stage(Deploy(), deploy_raw(world), services, execution_id="ex-2")
    assert run.status == "SUCCEEDED", run.message
    assert run.outputs["server_group"] == "shop-web-v002"
    assert run.outputs["previous_server_group"] == "shop-web-v001"
    assert run.outputs["image_id"] == world.release_image_id
    state = cluster_state(provider)
    assert set(state) == {"shop-web-v001", "shop-web-v002"}
    new, old = state["shop-web-v002"], state["shop-web-v001"]
    assert new["enabled"] and new["serving"] == 2 and new["capacity"] == (2, 2, 4)
    assert not new["suspended"]
    assert not old["enabled"] and old["serving"] == 0 and old["suspended"] == DISABLED
    assert old["capacity"] == (2, 2, 4)  # no scale_down: the old group stays warm for a rollback
    assert new["tags"][TAG_APPLICATION] == "shop" and new["tags"][TAG_CLUSTER] == "shop-web"
    assert new["tags"][TAG_SERVER_GROUP] == "shop-web-v002" and new["tags"][TAG_EXECUTION] == "ex-2"
    assert launch_templates(provider) == ["shop-web-v001", "shop-web-v002"]
    lt = provider.ec2.describe_launch_templates(LaunchTemplateNames=["shop-web-v002"])["LaunchTemplates"][0]
    assert {t["Key"]: t["Value"] for t in lt["Tags"]}[TAG_EXECUTION] == "ex-2"

    run = run_stage(
        Deploy(),
        deploy_raw(world, max_remaining_server_groups=2, scale_down=True),
        services,
        execution_id="ex-3",
    )
    assert run.status == "SUCCEEDED", run.message
    state = cluster_state(provider)
    # v001 is destroyed (only 2 remain), v002 is disabled and scaled to 0, v003 serves.
    assert set(state) == {"shop-web-v002", "shop-web-v003"}
    assert serving_groups(provider) == ["shop-web-v003"]
    assert state["shop-web-v002"]["capacity"] == (0, 0, 4) and not state["shop-web-v002"]["enabled"]
    assert state["shop-web-v002"]["instances"] == 0
    assert launch_templates(provider) == ["shop-web-v002", "shop-web-v003"]


def test_highlander_keeps_only_the_new_group(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    assert run_stage(Deploy(), deploy_raw(world, strategy="none"), services, execution_id="a").status == "SUCCEEDED"
    # none: v001 and v002 both serve side by side
    assert serving_groups(provider) == ["shop-web-v001", "shop-web-v002"]
    run = run_stage(Deploy(), deploy_raw(world, strategy="highlander"), services, execution_id="b")
    assert run.status == "SUCCEEDED", run.message
    state = cluster_state(provider)
    assert list(state) == ["shop-web-v003"] and state["shop-web-v003"]["serving"] == 2
    assert launch_templates(provider) == ["shop-web-v003"]
    tg = provider.elb.describe_target_health(TargetGroupArn=world.target_group_arn)["TargetHealthDescriptions"]
    registered = {d["Target"]["Id"] for d in tg if d["TargetHealth"]["State"] == "healthy"}
    new_ids = {i.id for i in provider.get_server_group("shop-web-v003").instances}  # type: ignore[union-attr]
    assert registered == new_ids  # nothing but the new group behind the load balancer


def test_none_adds_a_group_beside_the_others(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    run = run_stage(
        Deploy(),
        deploy_raw(world, strategy="none", stack="web", detail="canary", capacity={"min": 1, "max": 1, "desired": 1}),
        services,
    )
    assert run.status == "SUCCEEDED", run.message
    assert run.outputs["server_group"] == "shop-web-canary-v001"
    assert run.outputs["previous_server_group"] is None
    assert serving_groups(provider, "shop-web-canary") == ["shop-web-canary-v001"]
    assert serving_groups(provider) == ["shop-web-v001"]
