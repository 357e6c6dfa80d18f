"""DR and backup: copies in another region, DNS failover, replication, versioning, archiving."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from gennaker.ops.checks.base import CheckFn, Inventory, Result, Subject, fail, na, ok, unknown
from gennaker.ops.checks.common import (
    age_hours,
    archive_rule,
    errored,
    k,
    latest_snapshots,
    region_in,
    workloads,
)
from gennaker.ops.checks.ha import quota_usage
from gennaker.ops.model import Resource
from gennaker.ops.settings import OpsSettings

# Which drill scenarios exercise what a check looks at (the drill facts: ops/drill_facts.py).
IMAGE_SCENARIOS = ("region_loss",)
DATA_SCENARIOS = ("region_loss", "restore_data")
DNS_SCENARIOS = ("failover_dns", "region_loss")
APP_TAGS = ("Application", "gennaker:application")


def _minutes(seconds: Any) -> str:
    return f"{float(seconds) / 60:.1f} min" if isinstance(seconds, int | float) else "n/a"


def last_drill(
    inv: Inventory, s: OpsSettings, application: str | None, scenarios: tuple[str, ...], region: str | None = None
) -> dict[str, Any] | None:
    """The newest successful drill of ``application`` among ``scenarios`` (into ``region`` when
    given) started within ``dr_drill_max_age_days`` of the inventory's time."""
    if not application:
        return None
    since = inv.now.timestamp() - s.dr_drill_max_age_days * 86400
    return next(
        (
            d
            for d in inv.drills.get(application, [])
            if d.get("scenario") in scenarios
            and float(d.get("started_at") or 0) >= since
            and (region is None or d.get("to_region") in (None, region))
        ),
        None,
    )


def with_drill(
    result: Result,
    inv: Inventory,
    s: OpsSettings,
    application: str | None,
    scenarios: tuple[str, ...],
    region: str | None = None,
) -> Result:
    """``result`` with its message naming the application's last successful drill, when recent."""
    d = last_drill(inv, s, application, scenarios, region)
    if d is None:
        return result
    days = max(0.0, (inv.now.timestamp() - float(d["started_at"])) / 86400)
    note = (
        f"drilled: {d['scenario']} drill {d['id']} into {d.get('to_region') or '?'} succeeded "
        f"{days:.0f} d ago (RTO {_minutes(d.get('rto_s'))}, RPO {_minutes(d.get('rpo_s'))})"
    )
    return dataclasses.replace(result, message=f"{result.message}; {note}")


def _data_drilled(check: CheckFn) -> CheckFn:
    """``check`` with each result about a data store tagged with an application naming that
    application's last successful drill that restored data (into the account's DR region if set)."""

    def drilled(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
        for r in check(inv, s):
            target = r.subject
            if not isinstance(target, Resource):
                yield r
                continue
            yield with_drill(r, inv, s, _application(target), DATA_SCENARIOS, _dr_region(inv, target.account))

    drilled.__doc__ = check.__doc__
    return drilled


def _dr_region(inv: Inventory, account: str) -> str | None:
    try:
        return inv.account(account).dr_region
    except KeyError:  # a resource of an account the snapshot does not describe: any region
        return None


def _application(r: Resource) -> str | None:
    return next((r.tags[t] for t in APP_TAGS if r.tags.get(t)), None)


def _group_application(group: Any, members: list[Resource]) -> str | None:
    if isinstance(group, Subject) and group.ref.startswith("Application="):
        return group.ref.split("=", 1)[1]
    if isinstance(group, Resource) and _application(group):
        return _application(group)
    return next((a for m in members if (a := _application(m))), None)


def region_presence(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    images = inv.of("ec2.image")
    for group, members in workloads(inv, s).items():
        dr = inv.account(members[0].account).dr_region
        if not dr:
            yield na(group, f"no dr_region configured for account {members[0].account}")
            continue
        if members[0].region == dr:
            continue
        amis = {i.attrs.get("ImageId") for i in members}
        names = {im.name for im in images if im.id in amis and im.region == members[0].region and im.name}
        copies = [
            im
            for im in images
            if im.account == members[0].account
            and im.region == dr
            and (im.attrs.get("SourceImageId") in amis or im.name in names)
        ]
        src = (members[0].account, members[0].region)
        app = _group_application(group, members)
        if copies:
            result = ok(group, f"AMI copies in {dr}: {', '.join(sorted(c.id for c in copies))}")
        elif why := inv.gap(src[0], dr, "ec2.image") or inv.gap(*src, "ec2.image", "autoscaling.group"):
            result = unknown(group, f"cannot look for AMI copies in DR region {dr}: {why}")
        else:
            result = fail(group, f"no copy of {', '.join(sorted(a for a in amis if a))} in DR region {dr}")
        yield with_drill(result, inv, s, app, IMAGE_SCENARIOS, dr)


def _record_region(rec: Resource, where: dict[str, str]) -> str | None:
    alias = rec.attrs.get("AliasTarget", {}).get("DNSName")
    if alias:
        return region_in(alias)
    values = [v["Value"] for v in rec.attrs.get("ResourceRecords", [])]
    found = {where[v] for v in values if v in where} | {r for v in values if (r := region_in(v))}
    return found.pop() if len(found) == 1 else None


def route53_failover(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    where = {str(a.attrs.get("PublicIp")): a.region for a in inv.of("ec2.address")}
    where |= {str(i.attrs.get("PublicIpAddress")): i.region for i in inv.of("ec2.instance")}
    sets: dict[tuple[str, str, str, str], list[Resource]] = defaultdict(list)
    for rec in inv.of("route53.record"):
        if rec.attrs.get("Failover"):
            sets[(rec.account, rec.attrs["HostedZoneId"], rec.attrs["Name"], rec.attrs["Type"])].append(rec)
    for zone in inv.of("route53.hosted_zone"):
        zid = zone.id.split("/")[-1]
        if not zone.attrs.get("Config", {}).get("PrivateZone") and not any(z == zid for _, z, _, _ in sets):
            if why := inv.gap(zone.account, zone.region, "route53.record"):
                yield unknown(zone, why)
            else:
                yield fail(zone, f"public zone {zone.name} has no failover record sets")
    for (account, zid, name, rtype), recs in sorted(sets.items()):
        subject = Subject("route53.record_set", account, "global", f"{zid}/{name}/{rtype}")
        # the application a failover set is for: its first label (as the drill finds it: cloud/aws/dr.py)
        app = next(
            (
                a
                for a in inv.drills
                if a == name.split(".")[0] or any(str(r.attrs.get("SetIdentifier", "")).startswith(a) for r in recs)
            ),
            None,
        )
        result = _failover_result(subject, name, rtype, recs, where)
        yield with_drill(result, inv, s, app, DNS_SCENARIOS, _dr_region(inv, account))


def _failover_result(subject: Subject, name: str, rtype: str, recs: list[Resource], where: dict[str, str]) -> Result:
    primary = [r for r in recs if r.attrs["Failover"] == "PRIMARY"]
    secondary = [r for r in recs if r.attrs["Failover"] == "SECONDARY"]
    regions = {_record_region(r, where) for r in recs}
    if not primary or not secondary:
        return fail(subject, f"{name} {rtype}: needs both PRIMARY and SECONDARY records")
    if not all(p.attrs.get("HealthCheckId") for p in primary):
        return fail(subject, f"{name} {rtype}: PRIMARY record has no health check")
    if None in regions:
        return unknown(subject, f"{name} {rtype}: cannot tell which region a target is in")
    if len(regions) < 2:
        return fail(subject, f"{name} {rtype}: PRIMARY and SECONDARY both point into {regions.pop()}")
    return ok(subject, f"{name} {rtype}: failover between {', '.join(sorted(r or '' for r in regions))}")


def _other_region(arns: list[str], region: str) -> list[str]:
    return [a for a in arns if a.startswith("arn:") and a.split(":")[3] != region]


def _rds_cross_region(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    global_members = {
        m["DBClusterArn"] for g in inv.of("rds.global_cluster") for m in g.attrs.get("GlobalClusterMembers", [])
    }
    for db in inv.of("rds.instance"):
        if db.attrs.get("DBClusterIdentifier") or db.attrs.get("ReadReplicaSourceDBInstanceIdentifier"):
            continue
        replicas = _other_region(db.attrs.get("ReadReplicaDBInstanceIdentifiers", []), db.region)
        if replicas:
            yield ok(db, f"cross-region read replica {', '.join(replicas)}")
        elif db.attrs.get("DBInstanceAutomatedBackupsReplications"):
            yield ok(db, "automated backups replicated to another region")
        else:
            yield fail(db, "no cross-region read replica or replicated automated backups")
    for c in inv.of("rds.cluster"):
        if c.attrs.get("ReplicationSourceIdentifier"):
            continue
        replicas = _other_region(c.attrs.get("ReadReplicaIdentifiers", []), c.region)
        if c.arn in global_members or replicas:
            yield ok(c, "member of a global cluster" if c.arn in global_members else f"replica {replicas[0]}")
        elif why := inv.gap(c.account, c.region, "rds.global_cluster"):
            yield unknown(c, why)
        else:
            yield fail(c, "no global cluster or cross-region replica")


def _copies_to_other_region(plan: Resource) -> list[str]:
    return [
        a["DestinationBackupVaultArn"]
        for rule in plan.attrs.get("Rules", [])
        for a in rule.get("CopyActions", [])
        if _other_region([a.get("DestinationBackupVaultArn", "")], plan.region)
    ]


def _ebs_cross_region_copy(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    plan_copies = {(p.account, p.region): p for p in inv.of("backup.plan") if _copies_to_other_region(p)}
    latest = latest_snapshots(inv)
    for v in inv.of("ec2.volume"):
        dr = inv.account(v.account).dr_region
        if not dr or v.region == dr:
            yield na(v, "no DR region configured") if not dr else na(v, "volume is in the DR region")
            continue
        if (v.account, v.region) in plan_copies:
            yield ok(v, f"Backup plan {plan_copies[(v.account, v.region)].name} copies to another region")
            continue
        src = latest.get(k(v))
        copy = latest.get((v.account, dr, v.id)) or next(
            (
                c
                for c in inv.of("ec2.snapshot")
                if c.account == v.account and c.region == dr and src and src.id in str(c.attrs.get("Description", ""))
            ),
            None,
        )
        age = age_hours(copy.attrs.get("StartTime"), inv.now) if copy else None
        if age is not None and age <= s.dr_copy_max_age_days * 24:
            yield ok(v, f"snapshot copy {copy.id if copy else ''} in {dr}, {age:.0f} h old")
        elif why := inv.gap(v.account, dr, "ec2.snapshot") or inv.gap(
            v.account, v.region, "ec2.snapshot", "backup.plan"
        ):
            yield unknown(v, why)
        else:
            yield fail(v, f"no snapshot copy in DR region {dr} younger than {s.dr_copy_max_age_days:g} days")


def s3_versioning(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for b in inv.of("s3.bucket"):
        status = b.attrs.get("Versioning")
        if errored(b, "versioning"):
            yield unknown(b, f"versioning unreadable: {errored(b, 'versioning')}")
        else:
            yield ok(b, "versioning enabled") if status == "Enabled" else fail(b, f"versioning {status}")


def s3_lifecycle_archive(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for b in inv.of("s3.bucket"):
        rule = archive_rule(b)
        if errored(b, "lifecycle"):
            yield unknown(b, f"lifecycle unreadable: {errored(b, 'lifecycle')}")
        else:
            yield (ok(b, f"rule {rule} archives to Glacier") if rule else fail(b, "no lifecycle rule to Glacier"))


def glacier_archive(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for info in inv.accounts:
        vaults = [v.id for v in inv.of("glacier.vault") if v.account == info.name]
        archiving = [b.id for b in inv.of("s3.bucket") if b.account == info.name and archive_rule(b)]
        subject = inv.account_subject(info)
        if vaults or archiving:
            yield ok(subject, f"Glacier vaults: {len(vaults)}, buckets archiving via lifecycle: {len(archiving)}")
        elif gaps := inv.gaps(info.name):  # an unread region may hold the vault
            yield unknown(subject, "; ".join(gaps))
        else:
            yield fail(subject, "no Glacier vault and no bucket lifecycle transition to Glacier")


def _selected(sel: dict[str, Any], r: Resource) -> bool:
    arn = r.arn or ""
    if any(fnmatch.fnmatchcase(arn, p) for p in sel.get("NotResources") or []):
        return False
    if any(fnmatch.fnmatchcase(arn, p) for p in sel.get("Resources") or []):
        return True
    tag_rules = [(t["ConditionKey"], t["ConditionValue"]) for t in sel.get("ListOfTags") or []]
    tag_rules += [
        (c["ConditionKey"].removeprefix("aws:ResourceTag/"), c["ConditionValue"])
        for c in (sel.get("Conditions") or {}).get("StringEquals", [])
    ]
    return any(r.tags.get(key) == value for key, value in tag_rules)


def _backup_coverage(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    selections = inv.of("backup.selection")
    latest = latest_snapshots(inv)
    max_h = s.rpo_hours or s.snapshot_fail_days * 24
    kinds = ("ec2.volume", "rds.instance", "rds.cluster", "dynamodb.table")
    for r in (r for t in kinds for r in inv.of(t)):
        if r.type == "rds.instance" and r.attrs.get("DBClusterIdentifier"):
            continue  # backed up with its cluster
        sel = next(
            (x for x in selections if x.account == r.account and x.region == r.region and _selected(x.attrs, r)),
            None,
        )
        snap = latest.get(k(r)) if r.type == "ec2.volume" else None
        age = age_hours(snap.attrs.get("StartTime"), inv.now) if snap else None
        joined = ("backup.selection", "ec2.snapshot") if r.type == "ec2.volume" else ("backup.selection",)
        if sel:
            yield ok(r, f"in Backup selection {sel.name or sel.id} of plan {sel.attrs.get('BackupPlanId')}")
        elif age is not None and age <= max_h:
            yield ok(r, f"snapshot {snap.id if snap else ''} is {age:.0f} h old")
        elif r.type.startswith("rds.") and int(r.attrs.get("BackupRetentionPeriod") or 0) > 0:
            yield ok(r, f"automated backups kept {r.attrs['BackupRetentionPeriod']} days")
        elif r.type == "dynamodb.table" and r.attrs.get("PointInTimeRecoveryStatus") == "ENABLED":
            yield ok(r, "point-in-time recovery enabled")
        elif why := inv.gap(r.account, r.region, *joined):
            yield unknown(r, why)
        else:
            yield fail(r, "in no Backup plan selection and no recent snapshot or automated backup")


def quota_dr_region(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    quotas = {(q.account, q.region, q.attrs.get("Key")): q for q in inv.of("servicequotas.quota")}
    for info in inv.accounts:
        dr = info.dr_region
        if not dr:
            yield na(inv.account_subject(info), "no dr_region configured")
            continue
        primaries = [r for r in info.regions if r != dr]
        if not primaries or inv.failure("servicequotas.quota", info.name, dr):
            continue  # nothing to compare, or the DR quotas are unread (the runner reports that scope)
        for key in s.quotas:
            q = quotas.get((info.name, dr, key))
            used = [quota_usage(inv, info.name, r).get(key) for r in primaries]
            subject = q or Subject("servicequotas.quota", info.name, dr, key)
            if q is None or None in used:
                why = "; ".join(inv.gaps(info.name)) or "not reported"
                yield unknown(subject, f"{key}: {'DR quota' if q is None else 'primary usage'} not known ({why})")
                continue
            need, limit = max([u or 0.0 for u in used] or [0.0]), float(q.attrs.get("Value", 0))
            msg = f"{key}: DR quota {limit:g} vs primary usage {need:g}"
            yield ok(subject, msg) if limit >= need else fail(subject, msg)


# The data-store checks, with the drill that restored the store's application named (see above).
rds_cross_region = _data_drilled(_rds_cross_region)
ebs_cross_region_copy = _data_drilled(_ebs_cross_region_copy)
backup_coverage = _data_drilled(_backup_coverage)
