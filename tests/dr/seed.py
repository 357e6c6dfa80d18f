"""The ``shop`` world for DR drills on simulated AWS: production in us-east-1 (``seed_shop``) with a
data volume, a database and their snapshots, and in us-west-2 what a team would keep there: a
network and a standing load balancer, a copy of the release image, snapshot copies, a replicated
bucket, and Route 53 failover records between the two load balancers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from gennaker.sandbox.seed import ShopWorld, seed_shop

PRIMARY, DR = "us-east-1", "us-west-2"
APP_TAGS = [{"Key": "Application", "Value": "shop"}]


@dataclass
class DrWorld:
    primary: ShopWorld
    dr_lb_dns: str = ""
    image_copy: str | None = None
    volume: str = ""
    snapshot_copy: str | None = None
    db_snapshot_copy: str | None = None
    health_check: str = ""
    zone_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def seed_dr(sessions: AwsSessions, account: str, *, copy_image: bool = True, copy_data: bool = True) -> DrWorld:
    world = seed_shop(sessions, account, PRIMARY)
    c = lambda region, service: sessions.client(account, region, service)  # noqa: E731
    e1, e2, elb2 = c(PRIMARY, "ec2"), c(DR, "ec2"), c(DR, "elbv2")
    out = DrWorld(world)
    # The DR network and a standing (empty) load balancer.
    vpc = e2.create_vpc(
        CidrBlock="10.30.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "shop"}]}],
    )["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in e2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [
        e2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
        for i, z in enumerate(zones)
    ]
    lb = elb2.create_load_balancer(
        Name="shop-dr", Subnets=subnets, Scheme="internet-facing", Type="application", Tags=APP_TAGS
    )["LoadBalancers"][0]
    tg = elb2.create_target_group(
        Name="shop-web-dr", Protocol="HTTP", Port=8080, VpcId=vpc, HealthCheckPath="/health", Tags=APP_TAGS
    )["TargetGroups"][0]
    elb2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    out.dr_lb_dns = lb["DNSName"]
    if copy_image:
        out.image_copy = e2.copy_image(SourceImageId=world.release_image_id, SourceRegion=PRIMARY, Name="shop-1.0.0")[
            "ImageId"
        ]
    # Production data: a volume and a database, each with a snapshot in us-east-1.
    vol = e1.create_volume(
        AvailabilityZone=f"{PRIMARY}a", Size=8, TagSpecifications=[{"ResourceType": "volume", "Tags": APP_TAGS}]
    )["VolumeId"]
    snap = e1.create_snapshot(VolumeId=vol, TagSpecifications=[{"ResourceType": "snapshot", "Tags": APP_TAGS}])[
        "SnapshotId"
    ]
    out.volume = vol
    r1, r2 = c(PRIMARY, "rds"), c(DR, "rds")
    r1.create_db_instance(
        DBInstanceIdentifier="shop-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="shop",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=20,
        Tags=APP_TAGS,
    )
    dbsnap = r1.create_db_snapshot(
        DBInstanceIdentifier="shop-db", DBSnapshotIdentifier="shop-db-nightly", Tags=APP_TAGS
    )["DBSnapshot"]
    if copy_data:
        out.snapshot_copy = e2.copy_snapshot(
            SourceSnapshotId=snap,
            SourceRegion=PRIMARY,
            TagSpecifications=[
                {"ResourceType": "snapshot", "Tags": [*APP_TAGS, {"Key": "gennaker:source-volume", "Value": vol}]}
            ],
        )["SnapshotId"]
        out.db_snapshot_copy = r2.copy_db_snapshot(
            SourceDBSnapshotIdentifier=dbsnap["DBSnapshotArn"],
            TargetDBSnapshotIdentifier="shop-db-nightly-dr",
            SourceRegion=PRIMARY,
            Tags=APP_TAGS,
        )["DBSnapshot"]["DBSnapshotIdentifier"]
        s3 = c(DR, "s3")
        s3.create_bucket(Bucket="shop-assets-dr", CreateBucketConfiguration={"LocationConstraint": DR})
        s3.put_bucket_tagging(Bucket="shop-assets-dr", Tagging={"TagSet": APP_TAGS})
    # Route 53: shop.example.com fails over from the primary load balancer to the DR one.
    r53 = c(PRIMARY, "route53")
    zone = r53.create_hosted_zone(Name="example.com", CallerReference="shop-zone")["HostedZone"]["Id"].split("/")[-1]
    hc = r53.create_health_check(
        CallerReference="shop-primary",
        HealthCheckConfig={
            "Type": "HTTP",
            "FullyQualifiedDomainName": world.load_balancer_dns,
            "Port": 80,
            "ResourcePath": "/health",
        },
    )["HealthCheck"]["Id"]
    primary_lb = c(PRIMARY, "elbv2").describe_load_balancers(LoadBalancerArns=[world.load_balancer_arn])[
        "LoadBalancers"
    ][0]
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "shop.example.com",
                "Type": "A",
                "SetIdentifier": "shop-primary",
                "Failover": "PRIMARY",
                "HealthCheckId": hc,
                "AliasTarget": {
                    "HostedZoneId": primary_lb["CanonicalHostedZoneId"],
                    "DNSName": primary_lb["DNSName"],
                    "EvaluateTargetHealth": True,
                },
            },
        },
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "shop.example.com",
                "Type": "A",
                "SetIdentifier": "shop-secondary",
                "Failover": "SECONDARY",
                "AliasTarget": {
                    "HostedZoneId": lb["CanonicalHostedZoneId"],
                    "DNSName": lb["DNSName"],
                    "EvaluateTargetHealth": True,
                },
            },
        },
    ]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    out.health_check, out.zone_id = hc, zone
    return out


def standby_serving(sessions: AwsSessions, account: str, world: DrWorld) -> None:
    """A warm standby: one instance of the image copy registered (healthy) behind the DR load balancer."""
    e2, elb2 = sessions.client(account, DR, "ec2"), sessions.client(account, DR, "elbv2")
    assert world.image_copy
    iid = e2.run_instances(ImageId=world.image_copy, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0][
        "InstanceId"
    ]
    tg = elb2.describe_target_groups(Names=["shop-web-dr"])["TargetGroups"][0]["TargetGroupArn"]
    elb2.register_targets(TargetGroupArn=tg, Targets=[{"Id": iid}])
    world.extra["standby_instance"] = iid
