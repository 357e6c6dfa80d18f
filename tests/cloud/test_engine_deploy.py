"""Deploys through the engine itself, with real worker processes: a worker killed mid-deploy and a
new one started finish the deploy with exactly one new server group and launch template."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine import operations as ops
from gennaker.engine.runner import EngineSettings
from gennaker.errors import Forbidden
from gennaker.runtime import Runtime, build_runtime
from gennaker.sandbox.seed import ShopWorld
from gennaker.spec.config import Config
from tests.cloud.conftest import ACCOUNT, REGION, deploy_raw, serving_groups
from tests.core.conftest import finished, wait_for
from tests.core.test_durability import kill, spawn_worker, stop


def _asgs(sessions: AwsSessions) -> list[str]:
    asg = sessions.client(ACCOUNT, REGION, "autoscaling")
    return sorted(g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"])


def _templates(sessions: AwsSessions) -> list[str]:
    ec2 = sessions.client(ACCOUNT, REGION, "ec2")
    return sorted(t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"])


def test_worker_killed_mid_deploy_finishes_with_one_new_group(
    world: ShopWorld,
    config: Config,
    sessions: AwsSessions,
    provider: AwsProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg_file = tmp_path / "gennaker.yml"
    cfg_file.write_text(json.dumps(config.model_dump(exclude_none=True)))  # JSON is YAML
    stage = {"id": "deploy-prod", "type": "deploy", **deploy_raw(world, delay_before_disable=3, poll_interval=0.5)}
    pipeline_text = json.dumps({"name": "deploy", "application": "shop", "stages": [stage]})
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=EngineSettings())
    pipeline = rt.pipeline_from_text(pipeline_text)
    execution_id = ops.start_execution(rt.db, pipeline, {}, "tester")
    url = str(rt.db.engine.url)

    monkeypatch.setenv("GENNAKER_CONFIG", str(cfg_file))  # the worker processes read it
    first = spawn_worker(url)
    try:
        wait_for(lambda: "shop-web-v002" in _asgs(sessions), timeout=60)
        time.sleep(0.3)
        kill(first)  # mid-deploy: the new group exists, the strategy has not run (delay_before_disable)
    finally:
        if first.poll() is None:
            kill(first)
    assert "shop-web-v001" in serving_groups(provider)
    second = spawn_worker(url)
    try:
        detail = finished(rt, execution_id, timeout=120)
    finally:
        stop(second)
    assert detail["status"] == "SUCCEEDED", detail
    assert detail["stages"][0]["outputs"]["server_group"] == "shop-web-v002"
    assert _asgs(sessions) == ["shop-web-v001", "shop-web-v002"]
    assert _templates(sessions).count("shop-web-v002") == 1
    assert serving_groups(provider) == ["shop-web-v002"]


def test_rolling_deploy_pauses_for_a_judgment_through_the_engine(
    world: ShopWorld, config: Config, sessions: AwsSessions, provider: AwsProvider, tmp_path: Path
) -> None:
    stage = {
        "id": "roll",
        "type": "deploy",
        **deploy_raw(
            world,
            strategy="rolling_red_black",
            target_percentages=[50, 100],
            pause_between_steps={"judgment": {"instructions": "50% is live: go on?", "roles": ["release-managers"]}},
            poll_interval=0.2,
        ),
    }
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=EngineSettings(poll=0.02))
    rt.services._aws = sessions
    pipeline = rt.pipeline_from_text(json.dumps({"name": "roll", "application": "shop", "stages": [stage]}))
    execution_id = ops.start_execution(rt.db, pipeline, {}, "tester")
    worker = rt.worker()
    worker.start()
    try:
        wait_for(lambda: _stage(rt, execution_id).get("awaiting_judgment"), timeout=60)
        assert len(serving_groups(provider)) == 2  # half way: both versions serve
        with pytest.raises(Forbidden):
            ops.judge(rt.db, execution_id, "roll", "dev", "continue", None, actor_roles={"developers"})
        ops.judge(rt.db, execution_id, "roll", "rm", "continue", "looks fine", actor_roles={"release-managers"})
        detail = finished(rt, execution_id, timeout=60)
    finally:
        worker.stop()
    assert detail["status"] == "SUCCEEDED", detail
    assert serving_groups(provider) == ["shop-web-v002"]


def _stage(rt: Runtime, execution_id: str) -> dict[str, Any]:
    from gennaker.engine import views

    with rt.db.read() as conn:
        return views.execution_detail(conn, execution_id)["stages"][0]
