"""DR checks name the application's last successful DR drill of the last ``dr_drill_max_age_days``:
the audit service reads the drills (dr_drills) and hands them to the checks, which stay pure."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops import store
from gennaker.ops.dr.store import finish_drill, start_drill
from gennaker.ops.findings import Finding
from gennaker.ops.service import audit_and_store
from gennaker.ops.settings import OpsSettings
from gennaker.store.db import Database, open_database
from tests.ops.conftest import ACCOUNT_ID
from tests.ops.scene import run

Aws = Callable[..., Any]
DAY = 86400.0
CHECKS = ["dr.region.presence", "dr.ebs.cross_region_copy", "dr.route53.failover"]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'g.db'}")


def drill(db: Database, app: str, scenario: str, status: str, days_ago: float, to_region: str = "us-west-2") -> str:
    started = time.time() - days_ago * DAY
    with db.begin() as conn:
        drill_id = start_drill(
            conn,
            application=app,
            account="main",
            scenario=scenario,
            from_region="us-east-1",
            to_region=to_region,
            objectives={"rto_s": 1800, "rpo_s": 900},
            started_at=started,
        )
        finish_drill(conn, drill_id, status, rto_s=312.0, rpo=[], rpo_s=600.0, ended_at=started + 400)
    return drill_id


def by_resource(findings: list[Finding], check_id: str) -> dict[str, Finding]:
    return {f.resource_id: f for f in findings if f.check_id == check_id}


def scene(aws: Aws) -> tuple[str, str]:
    """web: AMI copied to us-west-2, a volume with a snapshot copy there, a failover record pair;
    api: no copy. Returns (web's volume ARN, the zone id)."""
    ec2, ec2_dr, r53 = aws("ec2"), aws("ec2", "us-west-2"), aws("route53")
    builder = run(ec2)[0]
    web_ami = ec2.create_image(InstanceId=builder, Name="web-v1")["ImageId"]
    api_ami = ec2.create_image(InstanceId=builder, Name="api-v1")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder])
    run(ec2, image=web_ami, n=2, Application="web")
    run(ec2, image=api_ami, Application="api")
    ec2_dr.copy_image(SourceImageId=web_ami, SourceRegion="us-east-1", Name="web-v1")
    vol = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=8,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Application", "Value": "web"}]}],
    )["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2_dr.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=snap, Description=f"[Copied {snap} from us-east-1]")
    east = ec2.allocate_address(Domain="vpc")["PublicIp"]
    west = ec2_dr.allocate_address(Domain="vpc")["PublicIp"]
    zone = r53.create_hosted_zone(Name="example.com", CallerReference="z")["HostedZone"]["Id"].split("/")[-1]
    hc = r53.create_health_check(
        CallerReference="hc", HealthCheckConfig={"IPAddress": east, "Port": 80, "Type": "HTTP", "ResourcePath": "/"}
    )["HealthCheck"]["Id"]
    changes = []
    for role, ip in (("PRIMARY", east), ("SECONDARY", west)):
        rrs: dict[str, Any] = {"Name": "web.example.com", "Type": "A", "SetIdentifier": role, "Failover": role}
        rrs |= {"TTL": 60, "ResourceRecords": [{"Value": ip}]} | ({"HealthCheckId": hc} if role == "PRIMARY" else {})
        changes.append({"Action": "CREATE", "ResourceRecordSet": rrs})
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    return f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:volume/{vol}", zone


def test_dr_items_name_their_last_successful_drill(db: Database, sessions: AwsSessions, aws: Aws) -> None:
    volume, zone = scene(aws)
    region_loss = drill(db, "web", "region_loss", "SUCCEEDED", days_ago=10)
    failover = drill(db, "web", "failover_dns", "SUCCEEDED", days_ago=2)
    failed = drill(db, "api", "region_loss", "FAILED", days_ago=1)  # a failed drill is no evidence
    stale = drill(db, "api", "region_loss", "SUCCEEDED", days_ago=120)  # older than 90 days
    elsewhere = drill(db, "web", "region_loss", "SUCCEEDED", days_ago=1, to_region="eu-west-1")  # not the DR region

    result = audit_and_store(db, sessions, OpsSettings(), checks=CHECKS)
    presence = by_resource(result.findings, "dr.region.presence")
    web, api = presence["Application=web"], presence["Application=api"]
    assert web.status == "PASS" and f"drilled: region_loss drill {region_loss} into us-west-2" in web.message
    assert "10 d ago" in web.message and "RTO 5.2 min" in web.message and "RPO 10.0 min" in web.message
    assert elsewhere not in web.message
    assert api.status == "FAIL" and "drilled" not in api.message
    assert failed not in api.message and stale not in api.message

    ebs = by_resource(result.findings, "dr.ebs.cross_region_copy")[volume]
    assert ebs.status == "PASS" and region_loss in ebs.message  # region_loss restores the data too

    dns = by_resource(result.findings, "dr.route53.failover")[f"{zone}/web.example.com./A"]
    assert dns.status == "PASS" and f"failover_dns drill {failover}" in dns.message  # the newest DNS drill

    # the stored audit (what the console and reports read) carries the same messages
    stored = store.get_audit(db, result.id)
    assert any(region_loss in f["message"] for f in stored["findings"] if f["check_id"] == "dr.region.presence")


def test_the_window_is_a_setting(db: Database, sessions: AwsSessions, aws: Aws) -> None:
    scene(aws)
    region_loss = drill(db, "web", "region_loss", "SUCCEEDED", days_ago=10)
    short = audit_and_store(db, sessions, OpsSettings(dr_drill_max_age_days=5), checks=["dr.region.presence"])
    assert "drilled" not in by_resource(short.findings, "dr.region.presence")["Application=web"].message
    longer = audit_and_store(db, sessions, OpsSettings(dr_drill_max_age_days=30), checks=["dr.region.presence"])
    assert region_loss in by_resource(longer.findings, "dr.region.presence")["Application=web"].message


def test_setting_is_validated() -> None:
    from gennaker.errors import ConfigError
    from gennaker.ops.settings import ops_settings

    assert ops_settings({}).dr_drill_max_age_days == 90
    with pytest.raises(ConfigError, match="dr_drill_max_age_days"):
        ops_settings({"dr_drill_max_age_days": 0})
