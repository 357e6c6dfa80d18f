"""High availability: every single point of failure the source document asks about."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from gennaker.ops.checks.base import Inventory, Result, Subject, fail, na, ok, unknown
from gennaker.ops.checks.common import (
    age_hours,
    asg_by_instance,
    az,
    errored,
    instances_behind_lbs,
    k,
    latest_snapshots,
    lb_azs,
    lb_targets,
    load_balancers,
    recover_alarmed,
    running,
    workloads,
)
from gennaker.ops.model import GLOBAL, Resource
from gennaker.ops.settings import OpsSettings


def ec2_multi_az(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for group, members in workloads(inv, s).items():
        zones = sorted({az(i) for i in members})
        if why := inv.gap(members[0].account, members[0].region, "autoscaling.group"):
            yield unknown(group, f"cannot group instances into workloads: {why}")
        elif len(zones) >= 2:
            yield ok(group, f"{len(members)} running instance(s) across {', '.join(zones)}")
        else:
            yield fail(group, f"all {len(members)} running instance(s) are in {zones[0]}")


def ec2_singleton(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    in_asg, recover = asg_by_instance(inv), recover_alarmed(inv)
    for i in running(inv):
        if k(i) in in_asg:
            continue
        if why := inv.gap(i.account, i.region, "autoscaling.group", "cloudwatch.alarm"):
            yield unknown(i, why)
        elif k(i) in recover:
            yield ok(i, "outside any Auto Scaling group, protected by an EC2 auto-recover alarm")
        else:
            yield fail(i, "runs outside any Auto Scaling group without an EC2 auto-recover alarm")


def elb_multi_az(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for lb in load_balancers(inv):
        zones = sorted(lb_azs(lb))
        if len(zones) >= 2:
            yield ok(lb, f"enabled in {', '.join(zones)}")
        else:
            yield fail(lb, f"enabled in only {', '.join(zones) or 'no AZ'}")


def elb_healthy_targets_multi_az(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for lb in load_balancers(inv):
        if lb.type == "elbv2.load_balancer" and (why := inv.gap(lb.account, lb.region, "elbv2.target_group")):
            yield unknown(lb, why)
            continue
        healthy = [(tid, zone) for tid, zone, good in lb_targets(inv, lb) if good]
        zones = sorted({zone for _, zone in healthy if zone})
        unplaced = sorted(tid for tid, zone in healthy if not zone)
        if not healthy:
            yield fail(lb, "no healthy targets")
        elif len(zones) >= 2:
            yield ok(lb, f"{len(healthy)} healthy target(s) across {', '.join(zones)}")
        elif unplaced:  # an unknown AZ is not a second zone, nor proof of a single one
            why = inv.gap(lb.account, lb.region, "ec2.instance") or "target not among the collected instances"
            yield unknown(lb, f"AZ of healthy target(s) {', '.join(unplaced)} unknown: {why}")
        else:
            yield fail(lb, f"all {len(healthy)} healthy target(s) are in {zones[0]}")


def elb_cross_zone(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for lb in load_balancers(inv):
        if lb.type == "elb.load_balancer":
            on = lb.attrs.get("Attributes", {}).get("CrossZoneLoadBalancing", {}).get("Enabled", False)
        elif lb.attrs.get("Type", "application") == "application":
            yield ok(lb, "application load balancers always balance across zones")
            continue
        else:
            on = lb.attrs.get("Attributes", {}).get("load_balancing.cross_zone.enabled") == "true"
        yield (ok(lb, "cross-zone load balancing enabled") if on else fail(lb, "cross-zone load balancing disabled"))


def asg_in_use(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    in_asg, instances = asg_by_instance(inv), {k(i) for i in inv.of("ec2.instance")}
    for lb in load_balancers(inv):
        if why := inv.gap(lb.account, lb.region, "elbv2.target_group", "ec2.instance", "autoscaling.group"):
            yield unknown(lb, why)
            continue
        targets = [tid for tid, _, _ in lb_targets(inv, lb) if k(lb, tid) in instances]
        loose = sorted(t for t in targets if k(lb, t) not in in_asg)
        if not targets:
            yield na(lb, "no instance targets")
        elif loose:
            yield fail(lb, f"instance(s) not managed by an Auto Scaling group: {', '.join(loose)}")
        else:
            yield ok(lb, f"all {len(targets)} instance target(s) are managed by Auto Scaling groups")


def asg_multi_az(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for g in inv.of("autoscaling.group"):
        zones = sorted(g.attrs.get("AvailabilityZones", []))
        yield (ok(g, f"spans {', '.join(zones)}") if len(zones) >= 2 else fail(g, f"spans only {zones or 'no AZ'}"))


def asg_elb_health_check(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for g in inv.of("autoscaling.group"):
        if not (g.attrs.get("TargetGroupARNs") or g.attrs.get("LoadBalancerNames")):
            yield na(g, "not attached to a load balancer")
        elif g.attrs.get("HealthCheckType") == "ELB":
            yield ok(g, "replaces instances the load balancer finds unhealthy")
        else:
            yield fail(g, f"health check type is {g.attrs.get('HealthCheckType')}: unhealthy targets stay in service")


def asg_min_capacity(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for g in inv.of("autoscaling.group"):
        env = g.tags.get("Environment") or inv.account(g.account).environment
        size = int(g.attrs.get("MinSize", 0))
        if not s.is_production(env):
            yield na(g, f"not production (environment {env or 'unset'})")
        elif size >= s.asg_min_capacity:
            yield ok(g, f"minimum size {size}")
        else:
            yield fail(g, f"production group with minimum size {size} (< {s.asg_min_capacity})")


def eip_unassociated(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for a in inv.of("ec2.address"):
        if a.attrs.get("AssociationId"):
            yield ok(a, f"{a.attrs.get('PublicIp')} associated with {a.attrs.get('InstanceId') or 'an interface'}")
        else:
            yield fail(a, f"{a.attrs.get('PublicIp')} is not associated (billed, and no endpoint depends on it)")


def eip_static_endpoint(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    in_asg, behind = asg_by_instance(inv), instances_behind_lbs(inv)
    eips = {k(a, str(a.attrs.get("InstanceId"))) for a in inv.of("ec2.address")}
    for i in running(inv):
        if not i.attrs.get("PublicIpAddress") or k(i) in in_asg or k(i) in behind:
            continue
        if why := inv.gap(i.account, i.region):  # ASGs, load balancers and EIPs all decide this one
            yield unknown(i, why)
        elif k(i) in eips:
            yield ok(i, "public single instance reached through an Elastic IP")
        else:
            yield fail(i, f"reached by ephemeral public IP {i.attrs['PublicIpAddress']}, lost on stop/replace")


def ebs_recent_snapshot(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    latest = latest_snapshots(inv)
    for v in inv.of("ec2.volume"):
        snap = latest.get(k(v))
        age = age_hours(snap.attrs.get("StartTime"), inv.now) if snap else None
        if why := inv.gap(v.account, v.region, "ec2.snapshot"):
            yield unknown(v, why)
        elif age is None:
            yield fail(v, "no completed snapshot")
        elif s.rpo_hours is not None:
            msg = f"latest snapshot {snap.id if snap else ''} is {age:.1f} h old (RPO {s.rpo_hours:g} h)"
            yield ok(v, msg) if age <= s.rpo_hours else fail(v, msg)
        elif age > s.snapshot_fail_days * 24:
            yield fail(v, f"latest snapshot is {age / 24:.0f} days old")
        elif age > s.snapshot_warn_days * 24:
            yield fail(v, f"latest snapshot is {age / 24:.0f} days old", severity="low")
        else:
            yield ok(v, f"latest snapshot is {age / 24:.1f} days old")


def content_cdn(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    origins = {
        o.get("DomainName", "").split(".s3")[0]
        for d in inv.of("cloudfront.distribution")
        for o in d.attrs.get("Origins", {}).get("Items", [])
    }
    for b in inv.of("s3.bucket"):
        if errored(b, "website"):
            yield unknown(b, f"website configuration unreadable: {errored(b, 'website')}")
        elif not b.attrs.get("Website"):
            continue
        elif b.id in origins:
            yield ok(b, "website bucket served through CloudFront")
        elif why := inv.gap(b.account, b.region, "cloudfront.distribution"):
            yield unknown(b, why)
        else:
            yield fail(b, "website bucket served directly, without CloudFront")


def dynamodb_pitr(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for t in inv.of("dynamodb.table"):
        status = t.attrs.get("PointInTimeRecoveryStatus")
        msg = f"point-in-time recovery {status}"
        yield ok(t, msg) if status == "ENABLED" else fail(t, msg)


def beanstalk_health(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for e in inv.of("elasticbeanstalk.environment"):
        if e.attrs.get("Status") in {"Terminated", "Terminating"}:
            continue
        color, enhanced = e.attrs.get("Health"), "HealthStatus" in e.attrs
        if color == "Green" and enhanced:
            yield ok(e, f"health Green ({e.attrs['HealthStatus']}), enhanced reporting")
        else:
            yield fail(e, f"health {color}" + ("" if enhanced else ", basic health reporting only"))


def rds_multi_az(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    members: dict[tuple[str, str, str], set[str]] = {}
    for db in inv.of("rds.instance"):
        if db.attrs.get("DBClusterIdentifier"):
            members.setdefault(k(db, db.attrs["DBClusterIdentifier"]), set()).add(db.attrs.get("AvailabilityZone", "?"))
        elif not db.attrs.get("ReadReplicaSourceDBInstanceIdentifier"):
            multi = bool(db.attrs.get("MultiAZ"))
            yield ok(db, "Multi-AZ deployment") if multi else fail(db, "single-AZ database instance")
    for c in inv.of("rds.cluster"):
        zones = sorted(members.get(k(c), set()))
        if c.attrs.get("MultiAZ") or len(zones) >= 2:
            yield ok(c, f"cluster members in {', '.join(zones) or 'several AZs'}")
        elif why := inv.gap(c.account, c.region, "rds.instance"):
            yield unknown(c, f"cluster members unknown: {why}")
        else:
            yield fail(c, f"cluster members only in {', '.join(zones) or 'no AZ'}")


QUOTA_TYPES = ("ec2.instance", "ec2.address", "elbv2.load_balancer", "autoscaling.group")


def quota_usage(inv: Inventory, account: str, region: str) -> dict[str, float | None]:
    """Usage counted against each configured quota key, in one account and region."""

    def here(t: str) -> list[Resource] | None:
        # None when the type's collection failed there: zero would claim headroom nobody measured
        if inv.failure(t, account, region):
            return None
        return [r for r in inv.of(t) if r.account == account and r.region == region]

    def count(t: str, keep: Callable[[Resource], bool] = lambda r: True) -> float | None:
        found = here(t)
        return None if found is None else float(sum(1 for r in found if keep(r)))

    instances = here("ec2.instance")
    vcpus = [i.attrs.get("VCpus") for i in instances or [] if i.attrs.get("State", {}).get("Name") == "running"]
    return {
        "ec2_vcpus": None if instances is None or None in vcpus else float(sum(v or 0 for v in vcpus)),
        "elastic_ips": count("ec2.address"),
        "application_load_balancers": count("elbv2.load_balancer", lambda lb: lb.attrs.get("Type") == "application"),
        "auto_scaling_groups": count("autoscaling.group"),
    }


def quota_headroom(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    quotas = {(q.account, q.region, q.attrs.get("Key")): q for q in inv.of("servicequotas.quota")}
    for info in inv.accounts:
        for region in info.regions:
            usage = quota_usage(inv, info.name, region)
            if inv.failure("servicequotas.quota", info.name, region):
                continue  # the check's own data is missing there: the runner reports that scope UNKNOWN
            for key in s.quotas:
                q, used = quotas.get((info.name, region, key)), usage.get(key)
                subject = q or Subject("servicequotas.quota", info.name, region, key)
                if q is None:
                    yield unknown(subject, f"{key}: quota not known")
                    continue
                if used is None:
                    why = inv.gap(info.name, region, *QUOTA_TYPES) or "vCPUs of an instance type unknown"
                    yield unknown(subject, f"{key}: usage not known ({why})")
                    continue
                need, limit = used * s.failover_factor, float(q.attrs.get("Value", 0))
                msg = f"{key}: usage {used:g} x {s.failover_factor:g} = {need:g} vs quota {limit:g}"
                yield ok(subject, msg) if need <= limit else fail(subject, msg)


def opsworks_end_of_life(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    # boto3 no longer ships an OpsWorks client, but OpsWorks-launched instances keep their tags.
    stacks = Counter(
        (i.account, i.region, i.tags["opsworks:stack"])
        for i in inv.of("ec2.instance")
        if "opsworks:stack" in i.tags and i.attrs.get("State", {}).get("Name") != "terminated"
    )
    for (account, region, stack), n in sorted(stacks.items()):
        yield fail(
            Subject("opsworks.stack", account, region, stack),
            f"{n} instance(s) of OpsWorks stack '{stack}': OpsWorks reached end of life in May 2024",
        )
    for info in inv.accounts:
        if any(a == info.name for a, _, _ in stacks):
            continue
        if gaps := inv.gaps(info.name):  # an unread region may hold OpsWorks instances
            yield unknown(inv.account_subject(info, GLOBAL), "; ".join(gaps))
        else:
            yield ok(inv.account_subject(info, GLOBAL), "no OpsWorks-managed instances")
