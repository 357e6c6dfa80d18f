"""A failed collection decides nothing it does not cover: hand-built snapshots, check logic only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gennaker.ops.audit import evaluate
from gennaker.ops.checks import select
from gennaker.ops.findings import Finding
from gennaker.ops.model import GLOBAL, AccountInfo, Failure, Resource, Snapshot
from gennaker.ops.registry import TYPES
from gennaker.ops.settings import OpsSettings

NOW = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
EAST, WEST = "us-east-1", "us-west-2"


def denied(rtype: str, region: str, account: str = "main") -> Failure:
    return Failure(account, region, rtype, "AccessDenied", "not authorized")


def snap(resources: list[Resource], failures: list[Failure], regions: tuple[str, ...] = (EAST, WEST)) -> Snapshot:
    info = AccountInfo("main", "111111111111", regions, dr_region=WEST, environment="prod")
    return Snapshot("s1", NOW, {"main": info}, resources, failures, [t.name for t in TYPES])


def run(check: str, snapshot: Snapshot) -> list[tuple[str, str, str]]:
    found: list[Finding] = evaluate(snapshot, OpsSettings(), select([check]))
    return sorted((f.resource_type, f.resource_id, f.status) for f in found)


def instance(iid: str, region: str = EAST, **attrs: Any) -> Resource:
    base = {"State": {"Name": "running"}, "Placement": {"AvailabilityZone": f"{region}a"}, "ImageId": "ami-1"}
    return Resource("ec2.instance", "main", region, iid, attrs=base | attrs)


# 1. per-type exclusion


def test_untagged_volume_still_fails_when_buckets_are_denied() -> None:
    vol = Resource("ec2.volume", "main", EAST, "vol-1", tags={"Owner": "ops"})
    found = run("golive.assets.required_tags", snap([vol], [denied("s3.bucket", GLOBAL)]))
    assert found == [("ec2.volume", "vol-1", "FAIL"), ("scope", f"111111111111/{GLOBAL}", "UNKNOWN")]


def test_instance_without_alarm_still_fails_when_rds_clusters_are_denied() -> None:
    found = run("mon.alarms.coverage", snap([instance("i-1")], [denied("rds.cluster", EAST)]))
    assert found == [("ec2.instance", "i-1", "FAIL"), ("scope", f"111111111111/{EAST}", "UNKNOWN")]


def test_joined_type_missing_makes_that_resource_unknown() -> None:
    # Alarms unreadable: the instance's coverage cannot be decided, but it is still named.
    found = run("mon.alarms.coverage", snap([instance("i-1")], [denied("cloudwatch.alarm", EAST)]))
    assert ("ec2.instance", "i-1", "UNKNOWN") in found
    vol = Resource("ec2.volume", "main", EAST, "vol-1")
    found = run("ha.ebs.recent_snapshot", snap([vol], [denied("ec2.snapshot", EAST)]))
    assert ("ec2.volume", "vol-1", "UNKNOWN") in found


# 2. region-spanning and account-level checks


def test_region_presence_unknown_when_dr_images_denied() -> None:
    image = Resource("ec2.image", "main", EAST, "ami-1", name="web")
    found = run("dr.region.presence", snap([instance("i-1"), image], [denied("ec2.image", WEST)]))
    assert ("ec2.instance", "i-1", "UNKNOWN") in found and not any(s == "FAIL" for _, _, s in found)


def test_change_tracking_unknown_when_one_recorder_region_denied() -> None:
    recorder = Resource("config.recorder", "main", EAST, "default", attrs={"recording": True})
    trail = Resource("cloudtrail.trail", "main", EAST, "t", attrs={"IsMultiRegionTrail": True, "IsLogging": True})
    ok_snap = snap([recorder, trail], [], regions=(EAST,))
    assert run("golive.assets.change_tracking", ok_snap) == [("account", "111111111111", "PASS")]
    found = run("golive.assets.change_tracking", snap([recorder, trail], [denied("config.recorder", WEST)]))
    assert ("account", "111111111111", "UNKNOWN") in found and not any(s == "PASS" for _, _, s in found)


def test_change_tracking_still_fails_on_a_gap_it_can_see() -> None:
    found = run("golive.assets.change_tracking", snap([], [denied("config.recorder", WEST)]))
    assert ("account", "111111111111", "FAIL") in found


def test_glacier_archive_unknown_when_a_vault_region_denied() -> None:
    found = run("dr.glacier.archive", snap([], [denied("glacier.vault", WEST)]))
    assert ("account", "111111111111", "UNKNOWN") in found and not any(s == "FAIL" for _, _, s in found)
    vault = Resource("glacier.vault", "main", EAST, "archive")
    found = run("dr.glacier.archive", snap([vault], [denied("glacier.vault", WEST)]))
    assert ("account", "111111111111", "PASS") in found  # what was read already decides it


def test_ebs_cross_region_copy_unknown_when_dr_snapshots_denied() -> None:
    vol = Resource("ec2.volume", "main", EAST, "vol-1")
    found = run("dr.ebs.cross_region_copy", snap([vol], [denied("ec2.snapshot", WEST)]))
    assert ("ec2.volume", "vol-1", "UNKNOWN") in found and not any(s == "FAIL" for _, _, s in found)


def test_incident_response_plan_unknown_when_one_region_denied() -> None:
    found = run("mon.incident.response_plan", snap([], [denied("ssm-incidents.response_plan", WEST)]))
    assert ("account", "111111111111", "UNKNOWN") in found and not any(s == "FAIL" for _, _, s in found)
    assert run("mon.incident.response_plan", snap([], [])) == [("account", "111111111111", "FAIL")]


# 5. no score without PASS or FAIL


def test_score_is_none_when_nothing_passed_or_failed() -> None:
    from gennaker.ops.audit import AuditResult, score

    snapshot = snap([], [denied("ssm-incidents.response_plan", EAST), denied("ssm-incidents.response_plan", WEST)])
    findings = evaluate(snapshot, OpsSettings(), select(["mon.incident.response_plan"]))
    assert {f.status for f in findings} == {"UNKNOWN"} and score(findings) is None
    summary = AuditResult("a", NOW, snapshot, findings, ["mon.incident.response_plan"]).summary
    assert summary["score"] is None and summary["by_pillar"]["mon"]["score"] is None


# 8. low-severity defects


def test_unknown_target_az_is_not_a_second_zone() -> None:
    lb = Resource(
        "elb.load_balancer",
        "main",
        EAST,
        "web",
        attrs={
            "InstanceStates": [
                {"InstanceId": "i-1", "State": "InService"},
                {"InstanceId": "i-gone", "State": "InService"},
            ]
        },
    )
    found = run("ha.elb.healthy_targets_multi_az", snap([lb, instance("i-1")], []))
    assert found == [("elb.load_balancer", "web", "UNKNOWN")]  # i-gone's AZ is unknown, not "?"


def test_non_aws_error_in_a_collector_fails_only_that_collection(sessions: Any, monkeypatch: Any) -> None:
    from gennaker.ops import collect as collect_mod

    def broken(scope: Any) -> list[Resource]:
        raise KeyError("EbsEncryptionByDefault")

    monkeypatch.setitem(collect_mod.COLLECTORS, "ebs_encryption", broken)
    got = collect_mod.collect(sessions, OpsSettings(), types=["ec2.ebs_encryption", "ec2.address"])
    assert {(f.type, f.code) for f in got.failures} == {("ec2.ebs_encryption", "KeyError")}
    assert "EbsEncryptionByDefault" in got.failures[0].message and got.types == ["ec2.address", "ec2.ebs_encryption"]
