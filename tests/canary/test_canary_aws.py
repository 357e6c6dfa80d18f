"""A canary on an AWS account (simulated AWS): taking a share of an ALB's traffic is not built yet, so
the stage fails at once with that reason, before creating anything; never a silent full-share pair."""

from __future__ import annotations

from types import SimpleNamespace

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.canary import Canary
from tests.cloud.conftest import ACCOUNT, REGION, cluster_state, run_stage


def test_a_canary_on_aws_says_traffic_shares_are_not_supported(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace
) -> None:
    raw = {
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
        "analysis": {"lifetime": "1m", "metrics": [{"name": "e", "source": "cloudwatch", "query": "x"}]},
    }
    run = run_stage(Canary(), raw, services)
    assert run.status == "FAILED"
    assert run.message is not None and "ALB weighted target groups" in run.message
    assert set(cluster_state(provider)) == {"shop-web-v001"}
    assert cluster_state(provider, "shop-web-baseline") == {} and cluster_state(provider, "shop-web-canary") == {}
