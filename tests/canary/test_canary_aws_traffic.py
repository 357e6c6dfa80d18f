"""Traffic shares on simulated AWS: a group whose share is set apart gets a target group of its own
in the ALB listener's weighted forward, weighed by its instances' weights; destroying it (again, or
after a create cut short) leaves the listener forwarding to production alone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.aws.options import AwsDeployOptions
from gennaker.cloud.aws.provider import TAG_SHARES_WITH, AwsProvider, alb_weights, own_target_group_name
from gennaker.cloud.provider import TAG_EXECUTION, TAG_SERVER_GROUP, Capacity, ServerGroupSpec
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.canary import Canary
from tests.cloud.conftest import ACCOUNT, REGION, run_stage


def forward(provider: AwsProvider, world: ShopWorld) -> dict[str, int]:
    listener = provider.elb.describe_listeners(LoadBalancerArn=world.load_balancer_arn)["Listeners"][0]
    action = listener["DefaultActions"][0]
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
    return {g["TargetGroupArn"]: g["Weight"] for g in groups} if groups else {action["TargetGroupArn"]: 1}


def target_groups(provider: AwsProvider) -> set[str]:
    return {t.name for t in provider.list_target_groups()}


def spec(world: ShopWorld, name: str, execution: str = "ex-1", stage: str = "canary") -> ServerGroupSpec:
    options = AwsDeployOptions(
        instance_type="t3.small",
        subnets=world.subnets,
        security_groups=[world.security_groups["shop-web"]],
        target_groups=[world.target_group_arn],
    )
    return ServerGroupSpec(
        name=name,
        application="shop",
        image=world.release_image_id,
        capacity=Capacity(1, 1, 1),
        provider_options=options,
        execution_id=execution,
        stage_id=stage,
        separate_traffic=True,
    )


def test_a_separate_share_is_a_weighted_target_group_of_its_own(world: ShopWorld, provider: AwsProvider) -> None:
    name = "shop-web-canary-v001"
    group = provider.create_server_group(provider.prepare_server_group(spec(world, name)))
    own = group.load_balancers[0]
    assert group.load_balancers == [own] and own != world.target_group_arn
    tags = {t["Key"]: t["Value"] for t in provider.elb.describe_tags(ResourceArns=[own])["TagDescriptions"][0]["Tags"]}
    assert tags[TAG_SERVER_GROUP] == name and tags[TAG_EXECUTION] == "ex-1"
    assert tags[TAG_SHARES_WITH] == world.target_group_arn
    # It joins the listener at weight 0: nothing of it is weighed in before the next weight change.
    assert forward(provider, world) == {world.target_group_arn: 1, own: 0}
    lb_id = world.load_balancer_arn.split(":loadbalancer/")[1]
    assert group.metric_scope == {"target_group": own.split(":")[-1], "load_balancer": lb_id}
    assert group.metric_scope["target_group"].startswith(f"targetgroup/{name}/")

    # Then every target group weighs its healthy instances' weights (unweighed ones: 1), as HAProxy does.
    provider.set_traffic_weight("shop-web-v001", 9)  # 2 healthy instances x 9
    assert forward(provider, world) == {world.target_group_arn: 18, own: 1}
    provider.set_traffic_weight(name, 2)  # 1 instance x 2: a tenth
    assert forward(provider, world) == {world.target_group_arn: 18, own: 2}
    provider.set_traffic_weight("shop-web-v001", 256)
    provider.set_traffic_weight(name, 256)  # 512 : 256, within ALB's 999
    assert forward(provider, world) == {world.target_group_arn: 512, own: 256}
    provider.set_traffic_weight(name, 0)
    assert forward(provider, world) == {world.target_group_arn: 512, own: 0}

    provider.destroy_server_group(name)
    assert forward(provider, world) == {world.target_group_arn: 1}
    assert target_groups(provider) == {"shop-web"}
    provider.destroy_server_group(name)  # again: nothing left, nothing fails
    assert {g.name for g in provider.list_server_groups(cluster="shop-web-canary")} == set()


def test_another_executions_target_group_of_the_same_name_is_not_adopted(
    world: ShopWorld, provider: AwsProvider
) -> None:
    provider.create_server_group(provider.prepare_server_group(spec(world, "shop-web-canary-v001")))
    provider.asg.delete_auto_scaling_group(AutoScalingGroupName="shop-web-canary-v001", ForceDelete=True)
    provider.ec2.delete_launch_template(LaunchTemplateName="shop-web-canary-v001")
    with pytest.raises(Exception, match="target group shop-web-canary-v001 already exists"):
        provider.create_server_group(provider.prepare_server_group(spec(world, "shop-web-canary-v001", "ex-2")))


def test_names_and_weights() -> None:
    assert own_target_group_name("shop-web-canary-v001") == "shop-web-canary-v001"
    long = own_target_group_name("shopping-frontend-europe-baseline-v012")
    assert len(long) == 32 and long.startswith("shopping-frontend-europ-")
    assert own_target_group_name("shop.web_x-v001") != "shop.web_x-v001"
    assert alb_weights({"a": 2048.0, "b": 256.0, "c": 0.0, "d": 0.1}) == {"a": 999, "b": 125, "c": 0, "d": 1}


def canary_raw(world: ShopWorld) -> dict[str, Any]:
    return {
        "account": ACCOUNT,
        "region": REGION,
        "stack": "web",
        "image": world.release_image_id,
        "instance_type": "t3.small",
        "subnets": world.subnets,
        "security_groups": [world.security_groups["shop-web"]],
        "target_groups": [world.target_group_arn],
        "traffic": "10%",
        "poll_interval": 1,
        "analysis": {
            "lifetime": "1m",
            "metrics": [
                {
                    "name": "errors",
                    "source": "cloudwatch",
                    "query": "namespace=AWS/ApplicationELB metric=HTTPCode_Target_5XX_Count stat=Sum "
                    "dimensions=target_group",
                }
            ],
        },
    }


def assert_back_to_production(provider: AwsProvider, world: ShopWorld) -> None:
    assert forward(provider, world) == {world.target_group_arn: 1}
    assert target_groups(provider) == {"shop-web"}
    assert {g.name for g in provider.list_server_groups(application="shop")} == {"shop-web-v001"}
    names = {t["LaunchTemplateName"] for t in provider.ec2.describe_launch_templates()["LaunchTemplates"]}
    assert names == {"shop-web-v001"}


class Killed(BaseException):
    """A worker dying mid-call: nothing after this point of the call happens (no handler sees it)."""


def test_a_worker_killed_mid_create_and_the_retry_adopts_what_it_made(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the target group joined the listener, before the ASG: the next attempt of the
    stage finds the name (its launch template), adopts the target group, and runs to its end (no
    CloudWatch data here: Nodata, a failing score), leaving production alone in the listener."""
    original = AwsProvider._join_with_own_target_group

    def join_then_die(self: AwsProvider, spec: ServerGroupSpec) -> tuple[str, str]:
        original(self, spec)
        raise Killed

    monkeypatch.setattr(AwsProvider, "_join_with_own_target_group", join_then_die)
    name = "shop-web-canary-v001"
    with pytest.raises(Killed):  # as the canary stage "deploy" of execution ex-1 would
        provider.create_server_group(provider.prepare_server_group(spec(world, name, stage="deploy")))
    monkeypatch.undo()
    assert len(forward(provider, world)) == 2 and provider.get_server_group(name) is None

    run = run_stage(Canary(), canary_raw(world), services)
    assert any(f"found the canary {name} from an earlier attempt cut short" in line for line in run.logs), run.logs
    assert run.outputs["canary_server_group"] == name
    assert run.status == "FAILED" and "destroyed" in (run.message or ""), run.message
    assert_back_to_production(provider, world)


def test_a_create_that_fails_half_way_is_torn_down(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = AwsProvider._join_with_own_target_group

    def join_then_fail(self: AwsProvider, spec: ServerGroupSpec) -> tuple[str, str]:
        original(self, spec)
        raise RuntimeError("the network went away")

    monkeypatch.setattr(AwsProvider, "_join_with_own_target_group", join_then_fail)
    run = run_stage(Canary(), canary_raw(world), services)
    assert run.status == "FAILED" and "the network went away" in (run.message or "")
    assert "cleaning up failed" not in (run.message or ""), run.message
    assert_back_to_production(provider, world)
