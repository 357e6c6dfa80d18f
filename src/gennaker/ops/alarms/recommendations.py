"""The alarms a careful operator sets, declared as data: one ``Recommendation`` per alarm kind.

Each names the inventory type it watches, the CloudWatch metric(s), how to compare, and the name of
its threshold; the number comes from the resource's business tier (``DEFAULT_TIERS``, overridden in
``alarms.tiers``). A recommendation with ``expression`` is a metric-math alarm over ``metrics``
(``m1``, ``m2``, … in order). ``dimensions`` reads one resource and returns the dimension sets to
watch (one alarm each; none when it does not apply). Adding an alarm kind is one declaration here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gennaker.ops.model import Resource

Dims = list[dict[str, str]]
GIB = 1024**3


@dataclass(frozen=True)
class Context:
    """What a recommendation may need beyond its resource: (account, region, id) of the instances
    that belong to an Auto Scaling group."""

    grouped: frozenset[tuple[str, str, str]] = frozenset()


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    stat: Literal["Sum", "Average", "Maximum", "Minimum"]


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    id: str
    resource: str  # inventory type (ops/registry.py)
    title: str
    metrics: tuple[Metric, ...]
    expression: str | None = None  # metric math over m1, m2, …; None: an alarm on metrics[0]
    comparison: Literal[">", ">=", "<", "<="]
    threshold: str  # key into the tier's thresholds
    period: int = 60
    evaluation_periods: int = 5
    datapoints: int = 3  # of evaluation_periods that must breach
    treat_missing: Literal["breaching", "notBreaching", "ignore", "missing"] = "notBreaching"
    dimensions: Callable[[Resource, Context], list[Dims]]
    scale: Callable[[Resource, float], float] | None = None  # tier value -> alarm threshold
    group_metrics: tuple[str, ...] = ()  # Auto Scaling group metrics the alarm needs collected


def alb_dims(lb: Resource, _: Context) -> list[Dims]:
    if lb.attrs.get("Type", "application") != "application" or not lb.arn:
        return []
    return [[{"Name": "LoadBalancer", "Value": lb.arn.split(":loadbalancer/")[-1]}]]


def target_group_dims(tg: Resource, _: Context) -> list[Dims]:
    """One set per load balancer the group serves (UnHealthyHostCount is per group and balancer)."""
    group = (tg.arn or "").split(":")[-1]  # targetgroup/NAME/ID
    return [
        [{"Name": "TargetGroup", "Value": group}, {"Name": "LoadBalancer", "Value": lb.split(":loadbalancer/")[-1]}]
        for lb in tg.attrs.get("LoadBalancerArns", [])
        if ":loadbalancer/app/" in lb
    ]


def one(name: str) -> Callable[[Resource, Context], list[Dims]]:
    return lambda r, _: [[{"Name": name, "Value": r.id}]]


def standalone_running(i: Resource, ctx: Context) -> list[Dims]:
    """Instances of Auto Scaling groups are watched through their group (as the audit counts them)."""
    running = i.attrs.get("State", {}).get("Name") == "running"
    return (
        [[{"Name": "InstanceId", "Value": i.id}]] if running and (i.account, i.region, i.id) not in ctx.grouped else []
    )


def replica(db: Resource, ctx: Context) -> list[Dims]:
    return one("DBInstanceIdentifier")(db, ctx) if db.attrs.get("ReadReplicaSourceDBInstanceIdentifier") else []


def with_storage(db: Resource, ctx: Context) -> list[Dims]:
    return one("DBInstanceIdentifier")(db, ctx) if db.attrs.get("AllocatedStorage") else []


def percent_of_storage(db: Resource, pct: float) -> float:
    return float(db.attrs.get("AllocatedStorage") or 0) * GIB * pct / 100


ALB = "AWS/ApplicationELB"
ELB = "AWS/ELB"
RDS = "AWS/RDS"

RECOMMENDATIONS: tuple[Recommendation, ...] = (
    Recommendation(
        id="alb.elb_5xx",
        resource="elbv2.load_balancer",
        title="The load balancer itself answers 5xx (no healthy target, timeouts)",
        metrics=(Metric(ALB, "HTTPCode_ELB_5XX_Count", "Sum"),),
        comparison=">",
        threshold="alb_elb_5xx_per_min",
        dimensions=alb_dims,
    ),
    Recommendation(
        id="alb.target_5xx_rate",
        resource="elbv2.load_balancer",
        title="Share of requests the targets answer with 5xx, in percent",
        metrics=(Metric(ALB, "HTTPCode_Target_5XX_Count", "Sum"), Metric(ALB, "RequestCount", "Sum")),
        expression="100 * m1 / m2",
        comparison=">",
        threshold="alb_target_5xx_rate_pct",
        dimensions=alb_dims,
    ),
    Recommendation(
        id="alb.response_time",
        resource="elbv2.load_balancer",
        title="Mean target response time, in seconds",
        metrics=(Metric(ALB, "TargetResponseTime", "Average"),),
        comparison=">",
        threshold="response_time_s",
        dimensions=alb_dims,
    ),
    Recommendation(
        id="tg.unhealthy_hosts",
        resource="elbv2.target_group",
        title="Targets failing their health check",
        metrics=(Metric(ALB, "UnHealthyHostCount", "Maximum"),),
        comparison=">",
        threshold="unhealthy_hosts",
        dimensions=target_group_dims,
    ),
    Recommendation(
        id="elb.elb_5xx",
        resource="elb.load_balancer",
        title="The classic load balancer itself answers 5xx",
        metrics=(Metric(ELB, "HTTPCode_ELB_5XX", "Sum"),),
        comparison=">",
        threshold="alb_elb_5xx_per_min",
        dimensions=one("LoadBalancerName"),
    ),
    Recommendation(
        id="elb.unhealthy_hosts",
        resource="elb.load_balancer",
        title="Instances failing the classic load balancer's health check",
        metrics=(Metric(ELB, "UnHealthyHostCount", "Maximum"),),
        comparison=">",
        threshold="unhealthy_hosts",
        dimensions=one("LoadBalancerName"),
    ),
    Recommendation(
        id="elb.latency",
        resource="elb.load_balancer",
        title="Mean latency behind the classic load balancer, in seconds",
        metrics=(Metric(ELB, "Latency", "Average"),),
        comparison=">",
        threshold="response_time_s",
        dimensions=one("LoadBalancerName"),
    ),
    Recommendation(
        id="asg.in_service_below_desired",
        resource="autoscaling.group",
        title="Fewer instances in service than desired (desired - in service)",
        metrics=(
            Metric("AWS/AutoScaling", "GroupDesiredCapacity", "Maximum"),
            Metric("AWS/AutoScaling", "GroupInServiceInstances", "Minimum"),
        ),
        expression="m1 - m2",
        comparison=">",
        threshold="asg_missing_instances",
        dimensions=one("AutoScalingGroupName"),
        group_metrics=("GroupDesiredCapacity", "GroupInServiceInstances"),
    ),
    Recommendation(
        id="ec2.status_check_failed",
        resource="ec2.instance",
        title="The instance or its host fails a status check",
        metrics=(Metric("AWS/EC2", "StatusCheckFailed", "Maximum"),),
        comparison=">",
        threshold="status_check_failed",
        evaluation_periods=2,
        datapoints=2,
        dimensions=standalone_running,
    ),
    Recommendation(
        id="rds.cpu",
        resource="rds.instance",
        title="Database CPU, in percent",
        metrics=(Metric(RDS, "CPUUtilization", "Average"),),
        comparison=">",
        threshold="rds_cpu_pct",
        period=300,
        evaluation_periods=3,
        datapoints=3,
        dimensions=one("DBInstanceIdentifier"),
    ),
    Recommendation(
        id="rds.free_storage",
        resource="rds.instance",
        title="Free storage below a share of the allocated storage",
        metrics=(Metric(RDS, "FreeStorageSpace", "Minimum"),),
        comparison="<",
        threshold="rds_free_storage_pct",
        period=300,
        evaluation_periods=1,
        datapoints=1,
        dimensions=with_storage,
        scale=percent_of_storage,
    ),
    Recommendation(
        id="rds.replica_lag",
        resource="rds.instance",
        title="Read replica behind its source, in seconds",
        metrics=(Metric(RDS, "ReplicaLag", "Maximum"),),
        comparison=">",
        threshold="rds_replica_lag_s",
        dimensions=replica,
    ),
    Recommendation(
        id="rds.cluster_cpu",
        resource="rds.cluster",
        title="Database cluster CPU, in percent",
        metrics=(Metric(RDS, "CPUUtilization", "Average"),),
        comparison=">",
        threshold="rds_cpu_pct",
        period=300,
        evaluation_periods=3,
        datapoints=3,
        dimensions=one("DBClusterIdentifier"),
    ),
)

BY_ID: dict[str, Recommendation] = {r.id: r for r in RECOMMENDATIONS}
TYPES: tuple[str, ...] = tuple(sorted({r.resource for r in RECOMMENDATIONS}))

# Business tiers: what each threshold is at each tier (high = page sooner). None disables the alarm.
DEFAULT_TIERS: dict[str, dict[str, float | None]] = {
    "high": {
        "alb_elb_5xx_per_min": 1,
        "alb_target_5xx_rate_pct": 1,
        "response_time_s": 0.5,
        "unhealthy_hosts": 0,
        "asg_missing_instances": 0,
        "status_check_failed": 0,
        "rds_cpu_pct": 80,
        "rds_free_storage_pct": 20,
        "rds_replica_lag_s": 30,
    },
    "medium": {
        "alb_elb_5xx_per_min": 5,
        "alb_target_5xx_rate_pct": 2,
        "response_time_s": 1,
        "unhealthy_hosts": 0,
        "asg_missing_instances": 0,
        "status_check_failed": 0,
        "rds_cpu_pct": 85,
        "rds_free_storage_pct": 15,
        "rds_replica_lag_s": 60,
    },
    "low": {
        "alb_elb_5xx_per_min": 20,
        "alb_target_5xx_rate_pct": 5,
        "response_time_s": 2,
        "unhealthy_hosts": 1,
        "asg_missing_instances": 1,
        "status_check_failed": 0,
        "rds_cpu_pct": 90,
        "rds_free_storage_pct": 10,
        "rds_replica_lag_s": 300,
    },
}
THRESHOLDS: frozenset[str] = frozenset(r.threshold for r in RECOMMENDATIONS)
assert all(set(t) == THRESHOLDS for t in DEFAULT_TIERS.values()), "every tier sets every threshold"
