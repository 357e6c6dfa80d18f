"""The canary stage end to end on simulated AWS: the engine with a worker, the pair behind the shop's
ALB on target groups of their own with a weighted forward taking 10 % of the listener's traffic, and
CloudWatch data that the test publishes for each group (moto stores metric data, it evaluates
nothing). A good canary passes, a bad one fails and is torn down with production taking all the
traffic again, a marginal one pauses for a judgment that ends it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine import operations as ops
from gennaker.metrics import store as canary_store
from gennaker.runtime import Runtime, build_runtime
from gennaker.sandbox.seed import CanaryMetrics, Profile, ShopWorld, bad_release, good_release
from gennaker.spec.config import Config
from tests.cloud.conftest import ACCOUNT, REGION
from tests.core.conftest import FAST, detail, finished, stage_status, wait_for

ERRORS = "namespace=AWS/ApplicationELB metric=HTTPCode_Target_5XX_Count stat=Sum dimensions=target_group"
LATENCY = "namespace=AWS/ApplicationELB metric=TargetResponseTime stat=Average dimensions=target_group"
CPU = "namespace=AWS/EC2 metric=CPUUtilization stat=Average"

# One judgement over 6 s of 1 s samples: 6 figures a group, the fewest with which Mann-Whitney at
# 0.98 confidence can tell two groups apart.
PIPELINE = """name: shop-canary-aws-{name}
application: shop
stages:
  - id: canary
    type: canary
    account: {account}
    region: {region}
    stack: web
    image: {image}
    instance_type: t3.small
    subnets: {subnets}
    security_groups: [{security_group}]
    target_groups: [{target_group}]
    traffic: 10%
    poll_interval: 100ms
    health_timeout: 30s
    analysis:
      lifetime: 6s
      interval: 6s
      step: 1s
      on_marginal: pause
      metrics:
        - {{name: errors, source: cloudwatch, query: "{errors}", direction: increase, critical: {critical}}}
        - {{name: latency, source: cloudwatch, query: "{latency}", direction: increase}}
        - {{name: cpu, source: cloudwatch, query: "{cpu}", muted: true}}
"""


def only_errors(role: str, tick: int) -> dict[str, float]:
    """The canary answers more 5xx; its latency and CPU are the baseline's (a marginal score)."""
    figures = good_release(role, tick)
    if role == "canary":
        figures["HTTPCode_Target_5XX_Count"] = 3.0 + tick % 2
    return figures


@dataclass
class Aws:
    rt: Runtime
    world: ShopWorld
    provider: AwsProvider
    sessions: AwsSessions
    tmp: Path

    def start(self, name: str, profile: Profile, critical: bool = True) -> tuple[str, CanaryMetrics]:
        text = PIPELINE.format(
            name=name,
            account=ACCOUNT,
            region=REGION,
            image=self.world.release_image_id,
            subnets="[" + ", ".join(self.world.subnets) + "]",
            security_group=self.world.security_groups["shop-web"],
            target_group=self.world.target_group_arn,
            errors=ERRORS,
            latency=LATENCY,
            cpu=CPU,
            critical=str(critical).lower(),
        )
        path = self.tmp / f"{name}.yml"
        path.write_text(text)
        metrics = CanaryMetrics(self.sessions, ACCOUNT, REGION, profile=profile, max_seconds=120).start()
        pipe = self.rt.load_pipeline(str(path))
        return ops.start_execution(self.rt.db, pipe, {}, "tester", base_dir=str(self.tmp)), metrics

    def stage(self, execution_id: str) -> dict[str, Any]:
        return next(s for s in detail(self.rt, execution_id)["stages"] if s["stage_id"] == "canary")

    def forward(self) -> dict[str, int]:
        """The shop listener's default forward: target group ARN -> weight."""
        listener = self.provider.elb.describe_listeners(LoadBalancerArn=self.world.load_balancer_arn)["Listeners"][0]
        action = listener["DefaultActions"][0]
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return {g["TargetGroupArn"]: g["Weight"] for g in groups}
        return {action["TargetGroupArn"]: 1}

    def groups(self) -> set[str]:
        return {g.name for g in self.provider.list_server_groups(application="shop", with_health=False)}

    def target_groups(self) -> set[str]:
        return {t.name for t in self.provider.list_target_groups()}

    def assert_back_to_production(self) -> None:
        assert self.forward() == {self.world.target_group_arn: 1}
        assert self.groups() == {"shop-web-v001"}
        assert self.target_groups() == {"shop-web"}


@pytest.fixture
def aws(config: Config, world: ShopWorld, sessions: AwsSessions, tmp_path: Path) -> Iterator[Aws]:
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config, settings=FAST)
    worker = rt.worker(threads=4)
    worker.start()
    try:
        yield Aws(rt, world, AwsProvider(sessions, ACCOUNT, REGION), sessions, tmp_path)
    finally:
        worker.stop()
        rt.db.dispose()


def _pair_share(aws: Aws) -> float:
    weights = aws.forward()
    return 1 - weights[aws.world.target_group_arn] / sum(weights.values())


def test_a_good_canary_passes_with_a_tenth_of_the_traffic(aws: Aws) -> None:
    eid, metrics = aws.start("good", good_release)
    with metrics:
        # While it is analysed the listener splits: production, and the pair on target groups of its own.
        wait_for(lambda: aws.stage(eid)["outputs"].get("report"), timeout=60)
        weights = aws.forward()
        assert len(weights) == 3 and aws.target_groups() == {
            "shop-web",
            "shop-web-baseline-v001",
            "shop-web-canary-v001",
        }
        assert abs(_pair_share(aws) - 0.10) < 0.01, weights
        ex = finished(aws.rt, eid, timeout=60)
    assert ex["status"] == "SUCCEEDED", (stage_status(aws.rt, eid), aws.stage(eid).get("message"))
    outputs = aws.stage(eid)["outputs"]
    assert (outputs["result"], outputs["score"], outputs["judgements"]) == ("pass", 100, 1)
    analysis = canary_store.get_analysis(aws.rt.db, outputs["report"]["id"])
    assert analysis["status"] == "succeeded"
    judged = {m["name"]: m for m in analysis["judgements"][0]["metrics"]}
    assert {n: m["label"] for n, m in judged.items()} == {"errors": "Pass", "latency": "Pass", "cpu": "Pass"}
    assert len(judged["latency"]["canary"]["v"]) >= 5  # the test's figures, read back per target group
    assert aws.rt.services.aws.calls["cloudwatch.get_metric_data"] == 1  # one call for the interval
    assert not metrics.errors
    aws.assert_back_to_production()


def test_a_bad_canary_fails_and_production_gets_all_the_traffic_back(aws: Aws) -> None:
    eid, metrics = aws.start("bad", bad_release)
    with metrics:
        ex = finished(aws.rt, eid, timeout=60)
    assert ex["status"] == "FAILED", stage_status(aws.rt, eid)
    stage = aws.stage(eid)
    assert (stage["outputs"]["result"], stage["outputs"]["score"]) == ("fail", 0)
    assert "destroyed" in (stage.get("message") or ""), stage.get("message")
    judgement = canary_store.get_analysis(aws.rt.db, stage["outputs"]["report"]["id"])["judgements"][0]
    assert {m["name"]: m["label"] for m in judgement["metrics"]} == {"errors": "High", "latency": "High", "cpu": "Pass"}
    aws.assert_back_to_production()


@pytest.mark.parametrize("choice", ["promote", "abort"])
def test_a_marginal_canary_pauses_for_a_judgment(aws: Aws, choice: str) -> None:
    eid, metrics = aws.start(f"marginal-{choice}", only_errors, critical=False)
    with metrics:
        # errors High, latency Pass: 50, at the marginal threshold: paused for a judgment.
        wait_for(lambda: "marginal" in (aws.stage(eid).get("message") or "") or None, timeout=60)
        stage = aws.stage(eid)
        assert stage["awaiting_judgment"] and stage["judgment_request"]["options"] == ["promote", "abort"]
        assert stage["outputs"]["score"] == 50 and len(aws.forward()) == 3  # still serving while paused
        ops.judge(aws.rt.db, eid, "canary", "rita", choice, None)
        ex = finished(aws.rt, eid, timeout=60)
    stage = aws.stage(eid)
    if choice == "promote":
        assert ex["status"] == "SUCCEEDED", stage_status(aws.rt, eid)
        assert stage["outputs"].get("promoted_by") == "rita" and stage["outputs"]["result"] == "marginal", stage
    else:
        assert ex["status"] == "FAILED", stage_status(aws.rt, eid)
        assert "rita aborted the canary" in (stage.get("message") or "")
    aws.assert_back_to_production()
