"""Seed a sandbox account with resources the audit has something to say about: some well
configured, some not (single-AZ workload, idle EIP, unversioned bucket, unsnapshotted volume, alarm
nobody hears, SSH open to the world). Idempotent: a second call finds its marker bucket and stops."""

from __future__ import annotations

from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import CloudError

IMAGE = "ami-12c6146b"  # an image simulated AWS ships in every region
TAGS = {"Owner": "platform-team", "Environment": "prod"}


def _tags(**extra: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in {**TAGS, **extra}.items()]


def _run(ec2: Any, subnet: str, n: int, app: str) -> list[str]:
    spec = [{"ResourceType": "instance", "Tags": _tags(Application=app, Name=app)}]
    res = ec2.run_instances(
        ImageId=IMAGE, MinCount=n, MaxCount=n, InstanceType="t3.micro", SubnetId=subnet, TagSpecifications=spec
    )
    return [i["InstanceId"] for i in res["Instances"]]


def _alarm(cw: Any, name: str, instance: str, topic: str) -> None:
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/EC2",
        MetricName="CPUUtilization",
        Statistic="Average",
        Period=300,
        EvaluationPeriods=2,
        Threshold=80,
        ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "InstanceId", "Value": instance}],
        AlarmActions=[topic],
    )


def seed_audit_examples(sessions: AwsSessions, account: str, region: str) -> None:
    c = lambda service: sessions.client(account, region, service)  # noqa: E731
    ec2, s3, cw, sns = c("ec2"), c("s3"), c("cloudwatch"), c("sns")
    marker = f"gennaker-audit-examples-{region}"
    try:
        s3.head_bucket(Bucket=marker)
        return  # already seeded
    except CloudError as exc:
        if exc.code not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate("ab", start=1)
    ]

    # Well configured: a two-AZ workload, a versioned and archived bucket, a snapshotted volume,
    # an alarm whose topic has a subscriber.
    # Application=shop is the demo application (the readiness gate before Deploy To Prod audits it);
    # Application=reports is another one, there to show a single-AZ workload.
    web = _run(ec2, subnets[0], 1, "shop") + _run(ec2, subnets[1], 1, "shop")
    s3.create_bucket(Bucket=marker, **location)
    s3.put_bucket_versioning(Bucket=marker, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=marker,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "archive",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "NoncurrentVersionTransitions": [{"NoncurrentDays": 30, "StorageClass": "GLACIER"}],
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=marker,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_tagging(Bucket=marker, Tagging={"TagSet": _tags(Application="shop")})
    kept = ec2.create_volume(
        AvailabilityZone=f"{region}a",
        Size=8,
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(Application="shop")}],
    )
    ec2.create_snapshot(VolumeId=kept["VolumeId"], Description="nightly")
    staffed = sns.create_topic(Name="ops-oncall")["TopicArn"]
    sns.subscribe(TopicArn=staffed, Protocol="email", Endpoint="oncall@example.com")
    _alarm(cw, "shop-cpu", web[0], staffed)

    # Misconfigured: a single-AZ workload, an idle EIP, an unversioned untagged bucket, a volume with
    # no snapshot, an alarm whose topic nobody subscribed to, SSH open to the internet.
    batch = _run(ec2, subnets[0], 2, "reports")
    ec2.allocate_address(Domain="vpc")
    s3.create_bucket(Bucket=f"gennaker-audit-scratch-{region}", **location)
    # (the misconfigured application's: shop's data has snapshots, copied to the DR region by the
    # sandbox's DR seed, so `gennaker dr drill shop` has every store to restore)
    ec2.create_volume(
        AvailabilityZone=f"{region}b",
        Size=8,
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(Application="reports")}],
    )
    silent = sns.create_topic(Name="nobody-listens")["TopicArn"]
    _alarm(cw, "reports-cpu", batch[0], silent)
    sg = ec2.create_security_group(GroupName="legacy-ssh", Description="open SSH (example finding)", VpcId=vpc)
    ec2.authorize_security_group_ingress(
        GroupId=sg["GroupId"],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
