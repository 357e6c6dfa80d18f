"""The plan shows what the deploy then does, and changes nothing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.cloud.plan import plan_pipeline, render
from gennaker.sandbox.seed import ShopWorld
from gennaker.spec.pipeline import pipeline_from_text
from gennaker.stages.cleanup import CleanupServerGroups
from gennaker.stages.deploy import Deploy
from gennaker.stages.server_group import RollbackCluster
from tests.cloud.conftest import ACCOUNT, REGION, cluster_state, deploy_raw, run_stage

REGISTRY: dict[str, Any] = {t.type: t for t in (Deploy(), CleanupServerGroups(), RollbackCluster())}


def _pipeline(world: ShopWorld, strategy: str) -> str:
    subnets = ", ".join(world.subnets)
    return f"""
name: release
application: shop
parameters:
  - name: region
    default: {REGION}
  - name: image
stages:
  - id: deploy
    type: deploy
    account: {ACCOUNT}
    region: "${{parameters.region}}"
    stack: web
    image: "${{parameters.image}}"
    instance_type: t3.small
    subnets: [{subnets}]
    security_groups: [{world.security_groups["shop-web"]}]
    target_groups: [{{load_balancer: shop, target_group: shop-web}}]
    capacity: {{min: 2, max: 4, desired: 4}}
    strategy: {strategy}
    target_percentages: [50]
    max_remaining_server_groups: 2
    scale_down: true
  - id: cleanup
    type: cleanup_server_groups
    requires: [deploy]
    account: {ACCOUNT}
    region: {REGION}
    stack: web
    keep: 1
"""


@pytest.mark.parametrize("strategy", ["red_black", "rolling_red_black", "highlander"])
def test_plan_matches_the_deploy(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace, strategy: str
) -> None:
    # Two earlier deploys so that there is something to disable, scale down and destroy.
    for i in range(2):
        assert run_stage(Deploy(), deploy_raw(world), services, execution_id=f"e{i}").status == "SUCCEEDED"
    before = cluster_state(provider)
    pipeline = pipeline_from_text(_pipeline(world, strategy), {k: v.Config for k, v in REGISTRY.items()})
    calls_before = dict(sessions.calls)
    plans = plan_pipeline(pipeline, REGISTRY, services, {"image": world.release_image_id})
    assert cluster_state(provider) == before  # nothing changed ...
    mutating = [k for k in sessions.calls if not k.split(".")[1].startswith("describe")]
    assert all(sessions.calls[k] == calls_before.get(k, 0) for k in mutating)  # ... and nothing was asked to

    deploy_plan = plans[0]
    assert deploy_plan.error is None, deploy_plan.error
    assert deploy_plan.cluster == "shop-web" and deploy_plan.actions[0].kind == "create"
    assert deploy_plan.actions[0].server_group == "shop-web-v004"
    text = render(plans)
    assert "+ create shop-web-v004" in text and "- destroy shop-web-v002" in text

    stage = pipeline.stage("deploy")
    raw = {k: v for k, v in stage.model_dump(mode="json").items() if k not in ("id", "type", "when")}
    raw.update(region=REGION, image=world.release_image_id, poll_interval=1)
    run = run_stage(Deploy(), raw, services, execution_id="e-plan")
    assert run.status == "SUCCEEDED", run.message
    assert run.outputs["server_group"] == deploy_plan.actions[0].server_group
    planned_strategy = [a.to_dict() for a in deploy_plan.actions if a.kind != "create"]
    if deploy_plan.actions[1].kind == "wait_healthy":  # the deploy's wait_for_healthy task
        planned_strategy = planned_strategy[1:]
    assert run.context["strategy"]["actions"] == planned_strategy
    after = cluster_state(provider)
    destroyed = {a.server_group for a in deploy_plan.actions if a.kind == "destroy"}
    assert set(after) == (set(before) - destroyed) | {"shop-web-v004"}


def test_plan_reports_problems_per_stage(world: ShopWorld, services: SimpleNamespace) -> None:
    text = _pipeline(world, "red_black").replace(
        f'account: {ACCOUNT}\n    region: "${{parameters.region}}"', "account: nowhere\n    region: us-east-1"
    )
    pipeline = pipeline_from_text(text, {k: v.Config for k, v in REGISTRY.items()})
    plans = plan_pipeline(pipeline, REGISTRY, services, {"image": "ami-123"})
    assert plans[0].error is not None and "unknown account 'nowhere'" in plans[0].error
    assert plans[1].error is None and plans[1].actions == []
