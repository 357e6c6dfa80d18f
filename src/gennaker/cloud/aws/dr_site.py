"""What a team keeps in the DR region for ``shop``, seeded in the sandbox so ``gennaker dr drill shop``
has something to recover from: in the DR region a network and a standing load balancer with a warm
standby (one instance of the image copy, healthy behind it), a copy of the release image, a copy of
the newest snapshot of each of shop's volumes; and Route 53 failover records (with a health check on
the primary) between the primary load balancer and the DR one.

Everything is tagged ``Application=shop`` (how the audit and the drill find an application's
resources, ``gennaker.cloud.aws.dr``). Idempotent on a fresh sandbox only: it runs once, after
``seed_shop`` and the audit examples (whose shop volume it copies the snapshot of).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.cloud.aws.shop import APPLICATION, READINESS_TAGS, ShopWorld
from gennaker.cloud.provider import TAG_APPLICATION, TAG_VERSION

DOMAIN = "shop.example.com"  # the record the failover pair answers for (its first label names the app)
ZONE = "example.com"
DR_VPC_CIDR = "10.30.0.0/16"
STANDBY_TARGET_GROUP = "shop-web-dr"


@dataclass
class DrSite:
    """What ``seed_dr`` made, for the sandbox's config comments and the tests."""

    region: str
    vpc_id: str
    subnets: list[str]
    load_balancer_dns: str
    target_group_arn: str
    image_copy: str
    standby_instance: str
    snapshot_copies: dict[str, str] = field(default_factory=dict)  # volume id -> snapshot copy id
    zone_id: str = ""
    health_check: str = ""


def _tags(**extra: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in {**READINESS_TAGS, TAG_APPLICATION: APPLICATION, **extra}.items()]


def _network(ec2: AwsClient) -> tuple[str, list[str], str]:
    vpc = ec2.create_vpc(
        CidrBlock=DR_VPC_CIDR,
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": APPLICATION}]}],
    )["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.30.{i}.0/24",
            AvailabilityZone=zone,
            TagSpecifications=[
                {
                    "ResourceType": "subnet",
                    "Tags": [{"Key": "Name", "Value": f"shop-{zone}"}, {"Key": "tier", "Value": "app"}],
                }
            ],
        )["Subnet"]["SubnetId"]
        for i, zone in enumerate(zones)
    ]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    # The drill's server group joins shop-web (security_groups_for); the load balancer's own group.
    web = ec2.create_security_group(GroupName="shop-web", Description="shop web servers (DR)", VpcId=vpc)["GroupId"]
    return vpc, subnets, web


def _snapshot_copies(primary: AwsClient, dr: AwsClient, source_region: str) -> dict[str, str]:
    """A copy in the DR region of the newest completed snapshot of each of shop's volumes."""
    copies: dict[str, str] = {}
    volumes = primary.describe_volumes(Filters=[{"Name": "tag:Application", "Values": [APPLICATION]}])["Volumes"]
    for vol in volumes:
        snaps = primary.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [vol["VolumeId"]]}]
        )["Snapshots"]
        done = [s for s in snaps if s.get("State") == "completed"]
        if not done:
            continue  # nothing to copy: the drill names the volume as missing its copy
        newest = max(done, key=lambda s: s["StartTime"])
        copies[vol["VolumeId"]] = dr.copy_snapshot(
            SourceRegion=source_region,
            SourceSnapshotId=newest["SnapshotId"],
            # AWS's own description of a copy names its source (the audit's EBS check reads it)
            Description=f"[Copied {newest['SnapshotId']} from {source_region}]",
            TagSpecifications=[
                {"ResourceType": "snapshot", "Tags": _tags(**{"gennaker:source-volume": vol["VolumeId"]})}
            ],
        )["SnapshotId"]
    return copies


def _failover_records(r53: AwsClient, primary_lb: dict[str, Any], dr_lb: dict[str, Any]) -> tuple[str, str]:
    zone = r53.create_hosted_zone(Name=ZONE, CallerReference="sandbox-shop-zone")["HostedZone"]["Id"].split("/")[-1]
    r53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zone, AddTags=_tags())
    check = r53.create_health_check(
        CallerReference="sandbox-shop-primary",
        HealthCheckConfig={
            "Type": "HTTP",
            "FullyQualifiedDomainName": primary_lb["DNSName"],
            "Port": 80,
            "ResourcePath": "/health",
        },
    )["HealthCheck"]["Id"]
    r53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=check, AddTags=_tags())

    def record(role: str, lb: dict[str, Any]) -> dict[str, Any]:
        rrs: dict[str, Any] = {
            "Name": DOMAIN,
            "Type": "A",
            "SetIdentifier": f"shop-{role.lower()}",
            "Failover": role,
            "AliasTarget": {
                "HostedZoneId": lb["CanonicalHostedZoneId"],
                "DNSName": lb["DNSName"],
                "EvaluateTargetHealth": True,
            },
        }
        if role == "PRIMARY":
            rrs["HealthCheckId"] = check
        return {"Action": "CREATE", "ResourceRecordSet": rrs}

    changes = [record("PRIMARY", primary_lb), record("SECONDARY", dr_lb)]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    return zone, check


def seed_dr(sessions: AwsSessions, world: ShopWorld, dr_region: str) -> DrSite:
    """Seed ``shop``'s DR region (``world`` is its primary, from ``seed_shop``)."""
    c = lambda region, service: sessions.client(world.account, region, service)  # noqa: E731
    ec2, elb = c(dr_region, "ec2"), c(dr_region, "elbv2")
    vpc, subnets, web_sg = _network(ec2)
    lb = elb.create_load_balancer(
        Name="shop-dr", Subnets=subnets, Scheme="internet-facing", Type="application", Tags=_tags()
    )["LoadBalancers"][0]
    tg = elb.create_target_group(
        Name=STANDBY_TARGET_GROUP, Protocol="HTTP", Port=8080, VpcId=vpc, HealthCheckPath="/health", Tags=_tags()
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )
    # The release image under its own name (how the drill matches a copy to what production runs).
    source = c(world.region, "ec2").describe_images(ImageIds=[world.release_image_id])["Images"][0]
    image = ec2.copy_image(SourceImageId=world.release_image_id, SourceRegion=world.region, Name=source["Name"])[
        "ImageId"
    ]
    version = next((t["Value"] for t in source.get("Tags", []) if t["Key"] == TAG_VERSION), "1.0.0")
    ec2.create_tags(Resources=[image], Tags=_tags(**{TAG_VERSION: version}))
    # A warm standby: one instance of the copy behind the DR load balancer, so the failover target
    # is alive (the failover_dns drill checks it) and the region_loss drill has a standing stack.
    standby = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.small",
        SubnetId=subnets[0],
        SecurityGroupIds=[web_sg],
        TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(Name="shop-standby")}],
    )["Instances"][0]["InstanceId"]
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": standby}])
    copies = _snapshot_copies(c(world.region, "ec2"), ec2, world.region)
    primary_lb = c(world.region, "elbv2").describe_load_balancers(LoadBalancerArns=[world.load_balancer_arn])[
        "LoadBalancers"
    ][0]
    zone, check = _failover_records(c(world.region, "route53"), primary_lb, lb)
    return DrSite(
        region=dr_region,
        vpc_id=vpc,
        subnets=subnets,
        load_balancer_dns=str(lb.get("DNSName", "")),
        target_group_arn=tg,
        image_copy=image,
        standby_instance=standby,
        snapshot_copies=copies,
        zone_id=zone,
        health_check=check,
    )
