"""Recommended alarms on the simulated shop, through the CLI: the audit's monitoring checks fail,
``alarms apply`` creates what is missing, the checks pass, a second apply changes nothing, and a
user's own alarm is counted as covering and never touched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gennaker.cli import run as gennaker
from gennaker.ops.alarms.plan import TAG_MANAGED, TAG_RECOMMENDATION, TAG_TIER
from tests.alarms.conftest import Shop


def cli(shop: Shop, capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = gennaker(["--config", str(shop.config_path), *args])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def user_alarm(shop: Shop, lb_dim: str, topic: str) -> dict[str, Any]:
    cw = shop.aws("cloudwatch")
    cw.put_metric_alarm(
        AlarmName="shop-latency-by-hand",
        Namespace="AWS/ApplicationELB",
        MetricName="TargetResponseTime",
        Statistic="Average",
        Period=300,
        EvaluationPeriods=1,
        Threshold=3.0,
        ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "LoadBalancer", "Value": lb_dim}],
        AlarmActions=[topic],
    )
    alarm: dict[str, Any] = cw.describe_alarms(AlarmNames=["shop-latency-by-hand"])["MetricAlarms"][0]
    return alarm


def test_apply_makes_the_monitoring_checks_pass_and_is_idempotent(
    shop: Shop, capfd: pytest.CaptureFixture[str]
) -> None:
    lb_dim = shop.world.load_balancer_arn.split(":loadbalancer/")[-1]
    mine = user_alarm(shop, lb_dim, shop.topic)

    before = shop.statuses(shop.audit())
    asg_arn = next(r for (c, r) in before if c == "mon.alarms.coverage" and ":autoScalingGroup:" in r)
    failing = {r for (c, r), s in before.items() if c == "mon.alarms.coverage" and s == "FAIL"}
    assert asg_arn in failing and any(shop.instance in r for r in failing) and any("shop-db" in r for r in failing)

    code, out, err = cli(shop, capfd, "alarms", "plan", "--json")
    assert code == 0, err
    planned = json.loads(out)
    assert planned["warnings"] == [] and planned["problems"] == []  # the topic has a subscriber
    by_rec = {(r["recommendation"], r["action"]) for r in planned["rows"]}
    for rec in (
        "alb.elb_5xx",
        "alb.target_5xx_rate",
        "tg.unhealthy_hosts",
        "asg.in_service_below_desired",
        "ec2.status_check_failed",
        "rds.cpu",
        "rds.free_storage",
        "rds.replica_lag",
    ):
        assert (rec, "create") in by_rec, rec
    assert ("alb.response_time", "covered") in by_rec  # the user's alarm watches that metric
    assert ("asg.in_service_below_desired", "enable-metrics") in by_rec
    # only the replica lags; the group's instances are watched through the group
    assert [r["resource"] for r in planned["rows"] if r["recommendation"] == "rds.replica_lag"] == [
        next(r["resource"] for r in planned["rows"] if "shop-db-replica" in (r["resource"] or ""))
    ]
    status_checked = [r for r in planned["rows"] if r["recommendation"] == "ec2.status_check_failed"]
    assert [r["alarm"] for r in status_checked] == [f"gennaker:ec2.status_check_failed:{shop.instance}"]
    tiers = {(r["recommendation"], r["resource"].rsplit(":", 1)[-1]): r["tier"] for r in planned["rows"]}
    assert tiers["rds.cpu", "shop-db"] == "high"
    assert tiers["rds.cpu", "shop-db-replica"] == tiers["rds.replica_lag", "shop-db-replica"] == "medium"  # no tag

    code, out, err = cli(shop, capfd, "alarms", "apply")
    assert code == 0, err
    assert "0 failed" in out

    after = shop.statuses(shop.audit())
    assert {s for (c, _), s in after.items()} == {"PASS"}, {k: v for k, v in after.items() if v != "PASS"}
    assert len([k for k in after if k[0] == "mon.alarms.coverage"]) == len(
        [k for k in before if k[0] == "mon.alarms.coverage"]
    )

    cw = shop.aws("cloudwatch")
    ours = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNamePrefix="gennaker:")["MetricAlarms"]}
    db_cpu = ours["gennaker:rds.cpu:shop-db"]
    assert db_cpu["Threshold"] == 80.0 and db_cpu["AlarmActions"] == db_cpu["OKActions"] == [shop.topic]
    storage = ours["gennaker:rds.free_storage:shop-db"]
    assert storage["Threshold"] == 100 * 1024**3 * 0.20 and storage["ComparisonOperator"] == "LessThanThreshold"
    tagged = {t["Key"]: t["Value"] for t in cw.list_tags_for_resource(ResourceARN=db_cpu["AlarmArn"])["Tags"]}
    assert tagged[TAG_MANAGED] == "true" and tagged[TAG_RECOMMENDATION] == "rds.cpu" and tagged[TAG_TIER] == "high"
    groups = shop.aws("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert {m["Metric"] for m in groups[0]["EnabledMetrics"]} >= {"GroupInServiceInstances", "GroupDesiredCapacity"}

    code, out, err = cli(shop, capfd, "alarms", "apply", "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["outcomes"] == []
    assert set(again["counts"]) <= {"unchanged", "covered"}

    untouched = cw.describe_alarms(AlarmNames=["shop-latency-by-hand"])["MetricAlarms"][0]
    for key in ("Threshold", "AlarmActions", "OKActions", "EvaluationPeriods", "Period", "Dimensions"):
        assert untouched.get(key) == mine.get(key), key
    assert cw.list_tags_for_resource(ResourceARN=untouched["AlarmArn"])["Tags"] == []
