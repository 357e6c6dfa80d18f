"""Monitoring and incident management: alarms that exist, reach people, and an escalation path."""

from __future__ import annotations

from collections.abc import Iterator

from gennaker.ops.checks.base import Inventory, Result, fail, ok, unknown
from gennaker.ops.checks.common import actionable, asg_by_instance, k, running
from gennaker.ops.model import Resource
from gennaker.ops.settings import OpsSettings

NOTIFY_PROTOCOLS = {"email", "email-json", "sms", "https"}


def _watched(inv: Inventory) -> Iterator[tuple[Resource, str, str]]:
    """(resource, CloudWatch dimension, value) for everything that should have an alarm."""
    in_asg = asg_by_instance(inv)
    for g in inv.of("autoscaling.group"):
        yield g, "AutoScalingGroupName", g.id
    for i in running(inv):
        if k(i) not in in_asg:  # ASG members are covered by their group's alarms
            yield i, "InstanceId", i.id
    for lb in inv.of("elbv2.load_balancer"):
        yield lb, "LoadBalancer", (lb.arn or "").split(":loadbalancer/")[-1]
    for lb in inv.of("elb.load_balancer"):
        yield lb, "LoadBalancerName", lb.id
    for db in inv.of("rds.instance"):
        yield db, "DBInstanceIdentifier", db.id
    for c in inv.of("rds.cluster"):
        yield c, "DBClusterIdentifier", c.id


def _alarmed(inv: Inventory) -> set[tuple[str, str, str, str]]:
    """(account, region, dimension name, value) watched by an alarm with enabled actions: its own
    dimensions, or those of the metrics its math reads (a 5xx rate is RequestCount and 5XX_Count)."""
    out = set()
    for a in inv.of("cloudwatch.alarm"):
        if not actionable(a):
            continue
        dims = list(a.attrs.get("Dimensions", []))
        for m in a.attrs.get("Metrics") or []:
            dims += ((m.get("MetricStat") or {}).get("Metric") or {}).get("Dimensions", [])
        out |= {(a.account, a.region, d["Name"], d["Value"]) for d in dims}
    return out


def alarms_coverage(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    watched = _alarmed(inv)
    for r, dim, value in _watched(inv):
        joined = ("cloudwatch.alarm", "autoscaling.group") if r.type == "ec2.instance" else ("cloudwatch.alarm",)
        if (r.account, r.region, dim, value) in watched:
            yield ok(r, f"alarm with enabled actions on {dim}={value}")
        elif why := inv.gap(r.account, r.region, *joined):
            yield unknown(r, why)
        else:
            yield fail(r, f"no alarm with enabled actions on {dim}={value}")


def alarms_notify(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    confirmed = {
        sub.attrs.get("TopicArn")
        for sub in inv.of("sns.subscription")
        if sub.attrs.get("Protocol") in NOTIFY_PROTOCOLS and ":" in sub.id
    }  # not PendingConfirmation
    for a in inv.of("cloudwatch.alarm"):
        topics = [x for x in a.attrs.get("AlarmActions", []) if ":sns:" in x]
        reached = [t for t in topics if t in confirmed]
        if not a.attrs.get("ActionsEnabled"):
            yield fail(a, "alarm actions are disabled")
        elif reached:
            yield ok(a, f"notifies {', '.join(reached)}")
        elif topics and (
            why := next(
                (w for t in topics if (w := inv.gap(a.account, t.split(":")[3] or a.region, "sns.subscription"))),
                None,
            )
        ):
            yield unknown(a, f"subscriptions of {', '.join(topics)} unknown: {why}")
        elif topics:
            yield fail(a, f"SNS topic(s) without a confirmed email/SMS/HTTPS subscription: {', '.join(topics)}")
        else:
            yield fail(a, "no SNS notification action: nobody is told when it fires")


def incident_response_plan(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for info in inv.accounts:
        plans = [p.name or p.id for p in inv.of("ssm-incidents.response_plan") if p.account == info.name]
        subject = inv.account_subject(info)
        if plans:
            yield ok(subject, f"Incident Manager response plan(s): {', '.join(sorted(plans))}")
        elif gaps := inv.gaps(info.name):  # a plan may live in a region that could not be read
            yield unknown(subject, "; ".join(gaps))
        else:
            where = ", ".join(info.regions)
            yield fail(subject, f"no incident response plan (escalation policy) in {where}")
