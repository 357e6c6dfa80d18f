"""DR and backup checks, with the DR region us-west-2 configured for the account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from tests.ops.conftest import ACCOUNT_ID, statuses
from tests.ops.scene import run, stub, tags

Audit = Callable[..., Any]
Aws = Callable[..., Any]
VOL = f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:volume/"


def test_region_presence(aws: Aws, audit: Audit) -> None:
    ec2, ec2_dr = aws("ec2"), aws("ec2", "us-west-2")
    builder = run(ec2)[0]
    web_ami = ec2.create_image(InstanceId=builder, Name="web-v1")["ImageId"]
    api_ami = ec2.create_image(InstanceId=builder, Name="api-v1")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder])
    run(ec2, image=web_ami, n=2, Application="web")
    run(ec2, image=api_ami, Application="api")
    ec2_dr.copy_image(SourceImageId=web_ami, SourceRegion="us-east-1", Name="web-v1")
    assert statuses(audit("dr.region.presence"), "dr.region.presence") == {
        "Application=web": "PASS",
        "Application=api": "FAIL",
    }


def test_route53_failover(aws: Aws, audit: Audit) -> None:
    r53, ec2, ec2_dr = aws("route53"), aws("ec2"), aws("ec2", "us-west-2")
    east = ec2.allocate_address(Domain="vpc")["PublicIp"]
    west = ec2_dr.allocate_address(Domain="vpc")["PublicIp"]
    east2 = ec2.allocate_address(Domain="vpc")["PublicIp"]
    zone = r53.create_hosted_zone(Name="example.com", CallerReference="1")["HostedZone"]["Id"].split("/")[-1]
    bare = r53.create_hosted_zone(Name="plain.org", CallerReference="2")["HostedZone"]["Id"].split("/")[-1]
    hc = r53.create_health_check(
        CallerReference="hc",
        HealthCheckConfig={"IPAddress": east, "Port": 80, "Type": "HTTP", "ResourcePath": "/"},
    )["HealthCheck"]["Id"]

    def rec(name: str, role: str, ip: str, check: str | None) -> dict[str, Any]:
        rrs: dict[str, Any] = {
            "Name": name,
            "Type": "A",
            "SetIdentifier": role,
            "Failover": role,
            "TTL": 60,
            "ResourceRecords": [{"Value": ip}],
        }
        if check:
            rrs["HealthCheckId"] = check
        return {"Action": "CREATE", "ResourceRecordSet": rrs}

    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                rec("www.example.com", "PRIMARY", east, hc),
                rec("www.example.com", "SECONDARY", west, None),
                rec("api.example.com", "PRIMARY", east, hc),
                rec("api.example.com", "SECONDARY", east2, None),
            ]
        },
    )
    got = statuses(audit("dr.route53.failover"), "dr.route53.failover")
    assert got == {
        f"{zone}/www.example.com./A": "PASS",
        f"{zone}/api.example.com./A": "FAIL",
        f"arn:aws:route53:::hostedzone/{bare}": "FAIL",
    }


def test_rds_cross_region(aws: Aws, audit: Audit) -> None:
    rds, rds_dr = aws("rds"), aws("rds", "us-west-2")
    for name in ("replicated", "lonely"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="u",
            MasterUserPassword="password1",
            AllocatedStorage=20,
        )
    src = f"arn:aws:rds:us-east-1:{ACCOUNT_ID}:db:"
    rds_dr.create_db_instance_read_replica(
        DBInstanceIdentifier="replicated-dr", SourceDBInstanceIdentifier=src + "replicated"
    )
    assert statuses(audit("dr.rds.cross_region"), "dr.rds.cross_region") == {
        src + "replicated": "PASS",
        src + "lonely": "FAIL",
    }


def test_ebs_cross_region_copy(aws: Aws, audit: Audit) -> None:
    ec2, ec2_dr = aws("ec2"), aws("ec2", "us-west-2")
    copied = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    local = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    in_dr = ec2_dr.create_volume(AvailabilityZone="us-west-2a", Size=8)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=copied)["SnapshotId"]
    ec2.create_snapshot(VolumeId=local)
    # AWS's default description of a copy names its source snapshot.
    ec2_dr.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=snap, Description=f"[Copied {snap} from us-east-1]")
    got = statuses(audit("dr.ebs.cross_region_copy"), "dr.ebs.cross_region_copy")
    assert got == {
        VOL + copied: "PASS",
        VOL + local: "FAIL",
        f"arn:aws:ec2:us-west-2:{ACCOUNT_ID}:volume/{in_dr}": "NOT_APPLICABLE",
    }


def test_s3_versioning_lifecycle_and_glacier(aws: Aws, audit: Audit) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="kept")
    s3.create_bucket(Bucket="loose")
    s3.put_bucket_versioning(Bucket="kept", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket="kept",
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "archive",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "NoncurrentVersionTransitions": [{"NoncurrentDays": 30, "StorageClass": "DEEP_ARCHIVE"}],
                }
            ]
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket="loose",
        LifecycleConfiguration={
            "Rules": [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 90}}]
        },
    )
    result = audit("dr.s3.*", "dr.glacier.archive")
    expect = {"arn:aws:s3:::kept": "PASS", "arn:aws:s3:::loose": "FAIL"}
    assert statuses(result, "dr.s3.versioning") == expect
    assert statuses(result, "dr.s3.lifecycle_archive") == expect
    assert statuses(result, "dr.glacier.archive") == {ACCOUNT_ID: "PASS"}  # via kept's lifecycle rule


def test_glacier_archive_vault_or_nothing(aws: Aws, audit: Audit) -> None:
    assert statuses(audit("dr.glacier.archive"), "dr.glacier.archive") == {ACCOUNT_ID: "FAIL"}
    aws("glacier", "us-west-2").create_vault(vaultName="archive")
    assert statuses(audit("dr.glacier.archive"), "dr.glacier.archive") == {ACCOUNT_ID: "PASS"}


def test_backup_coverage_by_snapshots_and_native_backups(aws: Aws, audit: Audit) -> None:
    ec2, rds, ddb = aws("ec2"), aws("rds"), aws("dynamodb")
    snapped = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    bare = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    ec2.create_snapshot(VolumeId=snapped)
    rds.create_db_instance(
        DBInstanceIdentifier="db1",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="u",
        MasterUserPassword="password1",
        AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )
    ddb.create_table(
        TableName="cart",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert statuses(audit("dr.backup.coverage"), "dr.backup.coverage") == {
        VOL + snapped: "PASS",
        VOL + bare: "FAIL",
        f"arn:aws:rds:us-east-1:{ACCOUNT_ID}:db:db1": "PASS",
        f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/cart": "FAIL",
    }


def test_backup_coverage_by_selection_stubbed(sessions: AwsSessions, aws: Aws, audit: Audit) -> None:
    """Simulated AWS lacks Backup selections; the Backup API is stubbed, EC2 is simulated."""
    ec2 = aws("ec2")
    tagged = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=8,
        TagSpecifications=[{"ResourceType": "volume", "Tags": tags(Backup="daily")}],
    )["VolumeId"]
    other = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]

    def answers(region: str) -> list[tuple[str, Any]]:
        if region != "us-east-1":
            return [("list_backup_plans", {"BackupPlansList": []})]
        return [
            (
                "list_backup_plans",
                {"BackupPlansList": [{"BackupPlanId": "plan-1", "BackupPlanName": "daily"}]},
            ),
            (
                "list_backup_selections",
                {"BackupSelectionsList": [{"SelectionId": "sel-1", "SelectionName": "by-tag"}]},
            ),
            (
                "get_backup_selection",
                {
                    "BackupPlanId": "plan-1",
                    "SelectionId": "sel-1",
                    "BackupSelection": {
                        "SelectionName": "by-tag",
                        "IamRoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/backup",
                        "ListOfTags": [
                            {
                                "ConditionType": "STRINGEQUALS",
                                "ConditionKey": "Backup",
                                "ConditionValue": "daily",
                            }
                        ],
                    },
                },
            ),
        ]

    stub(sessions, "backup", answers)
    assert statuses(audit("dr.backup.coverage"), "dr.backup.coverage") == {
        VOL + tagged: "PASS",
        VOL + other: "FAIL",
    }


def test_backup_coverage_unknown_when_selections_unreadable(aws: Aws, audit: Audit) -> None:
    aws("ec2").create_volume(AvailabilityZone="us-east-1a", Size=8)
    aws("backup").create_backup_plan(
        BackupPlan={
            "BackupPlanName": "daily",
            "Rules": [{"RuleName": "r", "TargetBackupVaultName": "Default"}],
        }
    )
    found = [f for f in audit("dr.backup.coverage").findings if f.region == "us-east-1"]
    # the failed collection itself (scope), and the volume it leaves undecided
    assert sorted((f.resource_type, f.status) for f in found) == [("ec2.volume", "UNKNOWN"), ("scope", "UNKNOWN")]
    assert all("backup.selection could not be collected" in f.message for f in found)
