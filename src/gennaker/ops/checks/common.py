"""Lookups several checks share: running instances, ASG membership, load balancer targets, alarms."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any

from gennaker.ops.checks.base import Inventory, Subject, Target
from gennaker.ops.model import Resource, parse_time
from gennaker.ops.settings import OpsSettings

Key = tuple[str, str, str]  # (account, region, id)
LB_TYPES = ("elb.load_balancer", "elbv2.load_balancer")
ARCHIVE_CLASSES = {"GLACIER", "GLACIER_IR", "DEEP_ARCHIVE"}


def k(r: Resource, rid: str | None = None) -> Key:
    return (r.account, r.region, rid if rid is not None else r.id)


def running(inv: Inventory) -> list[Resource]:
    return [i for i in inv.of("ec2.instance") if i.attrs.get("State", {}).get("Name") == "running"]


def az(instance: Resource) -> str:
    return str(instance.attrs.get("Placement", {}).get("AvailabilityZone", "?"))


def asg_by_instance(inv: Inventory) -> dict[Key, Resource]:
    return {k(g, i["InstanceId"]): g for g in inv.of("autoscaling.group") for i in g.attrs.get("Instances", [])}


def load_balancers(inv: Inventory) -> list[Resource]:
    return [lb for t in LB_TYPES for lb in inv.of(t)]


def lb_azs(lb: Resource) -> set[str]:
    zones = lb.attrs.get("AvailabilityZones", [])
    return {z["ZoneName"] if isinstance(z, dict) else str(z) for z in zones}


def lb_targets(inv: Inventory, lb: Resource) -> list[tuple[str, str | None, bool]]:
    """(target id, its AZ when known, healthy) for every target registered behind a load balancer."""
    azs = {k(i): az(i) for i in inv.of("ec2.instance")}
    if lb.type == "elb.load_balancer":
        return [
            (s["InstanceId"], azs.get(k(lb, s["InstanceId"])), s.get("State") == "InService")
            for s in lb.attrs.get("InstanceStates", [])
        ]
    out = []
    for tg in inv.of("elbv2.target_group"):
        if tg.account != lb.account or lb.arn not in tg.attrs.get("LoadBalancerArns", []):
            continue
        for d in tg.attrs.get("TargetHealth", []):
            tid = d["Target"]["Id"]
            zone = d["Target"].get("AvailabilityZone") or azs.get(k(tg, tid))
            out.append((tid, zone, d.get("TargetHealth", {}).get("State") == "healthy"))
    return out


def instances_behind_lbs(inv: Inventory) -> set[Key]:
    return {k(lb, tid) for lb in load_balancers(inv) for tid, _, _ in lb_targets(inv, lb)}


def workloads(inv: Inventory, s: OpsSettings) -> dict[Target, list[Resource]]:
    """Running instances grouped into workloads: by ASG, else by the first workload tag, else alone."""
    groups: dict[Target, list[Resource]] = defaultdict(list)
    asgs = asg_by_instance(inv)
    for i in running(inv):
        group: Target = asgs.get(k(i)) or i
        if group is i:
            tag = next((t for t in s.workload_tags if i.tags.get(t)), None)
            if tag:
                group = Subject("ec2.workload", i.account, i.region, f"{tag}={i.tags[tag]}")
        groups[group].append(i)
    return groups


def actionable(alarm: Resource) -> bool:
    return bool(alarm.attrs.get("ActionsEnabled")) and bool(alarm.attrs.get("AlarmActions"))


def alarmed(inv: Inventory) -> set[tuple[str, str, str, str]]:
    """(account, region, dimension name, value) watched by an alarm that has enabled actions."""
    return {
        (a.account, a.region, d["Name"], d["Value"])
        for a in inv.of("cloudwatch.alarm")
        if actionable(a)
        for d in a.attrs.get("Dimensions", [])
    }


def recover_alarmed(inv: Inventory) -> set[Key]:
    """Instances with an EC2 auto-recover alarm (action arn:aws:automate:<region>:ec2:recover)."""
    out = set()
    for a in inv.of("cloudwatch.alarm"):
        if a.attrs.get("ActionsEnabled") and any(x.endswith(":ec2:recover") for x in a.attrs.get("AlarmActions", [])):
            out |= {k(a, d["Value"]) for d in a.attrs.get("Dimensions", []) if d["Name"] == "InstanceId"}
    return out


def age_hours(t: Any, now: dt.datetime) -> float | None:
    when = parse_time(t)
    return None if when is None else (now - when).total_seconds() / 3600


def latest_snapshots(inv: Inventory) -> dict[Key, Resource]:
    """Newest completed snapshot per (account, region, volume id)."""
    out: dict[Key, Resource] = {}
    for snap in inv.of("ec2.snapshot"):
        if snap.attrs.get("State", "completed") != "completed":
            continue
        key = k(snap, str(snap.attrs.get("VolumeId")))
        if key not in out or str(snap.attrs.get("StartTime")) > str(out[key].attrs.get("StartTime")):
            out[key] = snap
    return out


def archive_rule(bucket: Resource) -> str | None:
    """Id of an enabled lifecycle rule moving current or noncurrent versions to an archive class."""
    for rule in bucket.attrs.get("LifecycleRules") or []:
        moves = rule.get("Transitions", []) + rule.get("NoncurrentVersionTransitions", [])
        if rule.get("Status") == "Enabled" and any(t.get("StorageClass") in ARCHIVE_CLASSES for t in moves):
            return str(rule.get("ID", "(unnamed rule)"))
    return None


REGION_IN_NAME = re.compile(r"\b((?:[a-z]{2}-gov|[a-z]{2})-[a-z]+-\d)\b")


def region_in(text: str) -> str | None:
    m = REGION_IN_NAME.search(text)
    return m.group(1) if m else None


def errored(r: Resource, what: str) -> str | None:
    """The reason a per-resource detail call failed, if it did."""
    err = r.attrs.get("_errors", {}).get(what)
    return str(err) if err else None
