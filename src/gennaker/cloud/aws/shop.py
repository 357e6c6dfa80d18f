"""The sample application ``shop`` in a simulated (or any) account: network, load balancer, images
and a first server group ``shop-web-v001`` serving behind the load balancer; and, for the sandbox,
``CanaryMetrics``: the CloudWatch figures a canary pair would have if anyone sent it traffic.

The server group is created through the AWS provider, exactly as a deploy would, so it carries the
same tags and shape as everything Gennaker makes later. It lives in the AWS provider's package
because building the world is AWS SDK work; ``gennaker.sandbox.seed`` re-exports it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gennaker.cloud.aws.options import AwsDeployOptions
from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.cloud.provider import (
    TAG_APPLICATION,
    TAG_BASE_IMAGE,
    TAG_VERSION,
    Capacity,
    ServerGroupSpec,
)

APPLICATION = "shop"
# The tag the operations audit and the demo's readiness gate group an application's resources by
# (gennaker:application marks what Gennaker itself created, which the audit does not look at).
READINESS_TAGS = {"Application": APPLICATION}
SEED_EXECUTION = "sandbox-seed"


@dataclass
class ShopWorld:
    account: str
    region: str
    vpc_id: str
    subnets: list[str]
    security_groups: dict[str, str]  # name -> id
    load_balancer_arn: str
    load_balancer_dns: str
    target_group_arn: str
    base_image_id: str
    release_image_id: str
    server_group: str
    extra: dict[str, str] = field(default_factory=dict)


def _image_from(ec2: AwsClient, source_ami: str, name: str, tags: dict[str, str]) -> str:
    """Make an image the way a bake does (instance → image), then terminate the instance."""
    run = ec2.run_instances(ImageId=source_ami, MinCount=1, MaxCount=1, InstanceType="t3.micro")
    instance_id = run["Instances"][0]["InstanceId"]
    image = ec2.create_image(
        InstanceId=instance_id,
        Name=name,
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )
    ec2.terminate_instances(InstanceIds=[instance_id])
    return str(image["ImageId"])


def seed_shop(sessions: AwsSessions, account: str, region: str, capacity: Capacity | None = None) -> ShopWorld:
    """Create the ``shop`` world in ``account``/``region`` and return what was made."""
    ec2 = sessions.client(account, region, "ec2")
    elb = sessions.client(account, region, "elbv2")
    vpc_id = ec2.create_vpc(
        CidrBlock="10.20.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "shop"}]}],
    )["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:3]
    subnets = []
    for i, zone in enumerate(zones):
        subnet = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=f"10.20.{i}.0/24",
            AvailabilityZone=zone,
            TagSpecifications=[
                {
                    "ResourceType": "subnet",
                    "Tags": [{"Key": "Name", "Value": f"shop-{zone}"}, {"Key": "tier", "Value": "app"}],
                }
            ],
        )
        subnets.append(subnet["Subnet"]["SubnetId"])
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    lb_sg = ec2.create_security_group(GroupName="shop-lb", Description="shop load balancer", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=lb_sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    web_sg = ec2.create_security_group(GroupName="shop-web", Description="shop web servers", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web_sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": lb_sg}]}
        ],
    )
    lb = elb.create_load_balancer(
        Name="shop",
        Subnets=subnets,
        SecurityGroups=[lb_sg],
        Scheme="internet-facing",
        Type="application",
        Tags=[{"Key": k, "Value": v} for k, v in {TAG_APPLICATION: APPLICATION, **READINESS_TAGS}.items()],
    )["LoadBalancers"][0]
    tg_arn = elb.create_target_group(
        Name="shop-web",
        Protocol="HTTP",
        Port=8080,
        VpcId=vpc_id,
        HealthCheckPath="/health",
        Tags=[{"Key": k, "Value": v} for k, v in {TAG_APPLICATION: APPLICATION, **READINESS_TAGS}.items()],
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    # Any Linux image moto ships stands in for the distribution's AMI the base is built on.
    # An Amazon Linux image moto ships stands in for the distribution AMI the base is built on
    # (filtered by name: listing all ~1,200 public images costs seconds).
    stock = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"][
        0
    ]["ImageId"]
    base = _image_from(ec2, stock, "shop-base-ubuntu-22.04", {"role": "base", "os": "ubuntu-22.04"})
    release = _image_from(
        ec2,
        base,
        "shop-1.0.0",
        {TAG_APPLICATION: APPLICATION, TAG_VERSION: "1.0.0", TAG_BASE_IMAGE: base},
    )
    provider = AwsProvider(sessions, account, region)
    group = provider.create_server_group(
        ServerGroupSpec(
            name="shop-web-v001",
            application=APPLICATION,
            image=release,
            capacity=capacity or Capacity(2, 4, 2),
            provider_options=AwsDeployOptions(
                instance_type="t3.small",
                subnets=subnets,
                security_groups=[web_sg],
                target_groups=[tg_arn],
                health_check_type="ELB",
            ),
            load_balancers=[tg_arn],
            tags=dict(READINESS_TAGS),
            execution_id=SEED_EXECUTION,
            stage_id="seed",
        )
    )
    return ShopWorld(
        account=account,
        region=region,
        vpc_id=vpc_id,
        subnets=subnets,
        security_groups={"shop-lb": lb_sg, "shop-web": web_sg},
        load_balancer_arn=lb["LoadBalancerArn"],
        load_balancer_dns=lb.get("DNSName", ""),
        target_group_arn=tg_arn,
        base_image_id=base,
        release_image_id=release,
        server_group=group.name,
    )


# --- canary metrics in the sandbox -----------------------------------------------------------------
# Simulated AWS has no traffic, so nothing would ever publish the metrics a canary is judged by.
# In the sandbox (never in the product's path) this publisher stands in for ALB and the instances:
# while it runs it publishes, once a second, plausible figures for every canary pair's group.

CANARY_ROLE_TAG = "gennaker:canary-role"  # what the canary stage tags its baseline and canary with
ALB_NAMESPACE = "AWS/ApplicationELB"
EC2_NAMESPACE = "AWS/EC2"

# role ("baseline" | "canary"), tick (0, 1, ...) -> metric name -> value (see ``good_release``).
Profile = Callable[[str, int], dict[str, float]]


def good_release(role: str, tick: int) -> dict[str, float]:
    """A healthy release: both groups alike, about 50 requests a second, a 5xx now and then, ~45 ms,
    with small repeatable noise (no randomness: a demo that passes passes every time)."""
    wobble = (tick * 7 + (3 if role == "canary" else 0)) % 5  # 0..4
    return {
        "RequestCount": 48.0 + wobble,
        "HTTPCode_Target_5XX_Count": 1.0 if (tick + wobble) % 9 == 0 else 0.0,
        "TargetResponseTime": 0.043 + 0.001 * wobble,
        "CPUUtilization": 30.0 + wobble,
    }


def bad_release(role: str, tick: int) -> dict[str, float]:
    """The canary answers about 5 % of its requests with 5xx and is slower; the baseline is healthy."""
    figures = good_release(role, tick)
    if role == "canary":
        figures["HTTPCode_Target_5XX_Count"] = 2.0 + tick % 3
        figures["TargetResponseTime"] *= 1.6
    return figures


class CanaryMetrics:
    """Publishes ``profile``'s figures for each group of the application tagged with a canary role:
    ALB metrics with the TargetGroup and LoadBalancer dimensions of the group's own target group,
    EC2's CPUUtilization with AutoScalingGroupName. One PutMetricData a group a second, stamped on
    whole seconds (so each one-second period holds exactly one figure). Stops by itself after
    ``max_seconds``; a failed call is retried the next second (the sandbox may be stopping)."""

    def __init__(
        self,
        sessions: AwsSessions,
        account: str,
        region: str,
        profile: Profile = good_release,
        application: str = APPLICATION,
        max_seconds: float = 3600.0,
    ) -> None:
        self.provider = AwsProvider(sessions, account, region)
        self.cloudwatch = sessions.client(account, region, "cloudwatch")
        self.profile = profile
        self.application = application
        self.max_seconds = max_seconds
        self.published: dict[str, int] = {}  # server group -> figures sets published
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CanaryMetrics:
        self._thread = threading.Thread(target=self._run, daemon=True, name="sandbox-canary-metrics")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> CanaryMetrics:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            second = math.floor(time.time())
            try:
                self.publish(datetime.fromtimestamp(second, UTC))
            except Exception as exc:  # said and retried: the sandbox may be starting or stopping
                self.errors.append(str(exc))
            self._stop.wait(max(0.05, second + 1 - time.time()))

    def publish(self, at: datetime) -> None:
        """One set of figures, stamped ``at``, for every group of a canary pair serving now."""
        groups = self.provider.list_server_groups(application=self.application, with_health=False)
        for group in groups:
            role = group.tags.get(CANARY_ROLE_TAG)
            if role is None:
                continue
            tick = self.published.get(group.name, 0)
            figures = self.profile(role, tick)
            data: list[dict[str, Any]] = []
            scope = group.metric_scope
            if scope.get("target_group") and scope.get("load_balancer"):
                dims = [
                    {"Name": "TargetGroup", "Value": scope["target_group"]},
                    {"Name": "LoadBalancer", "Value": scope["load_balancer"]},
                ]
                data += [
                    {"MetricName": m, "Dimensions": dims, "Timestamp": at, "Value": v}
                    for m, v in figures.items()
                    if m != "CPUUtilization"
                ]
            if data:
                self.cloudwatch.put_metric_data(Namespace=ALB_NAMESPACE, MetricData=data)
            if "CPUUtilization" in figures:
                self.cloudwatch.put_metric_data(
                    Namespace=EC2_NAMESPACE,
                    MetricData=[
                        {
                            "MetricName": "CPUUtilization",
                            "Dimensions": [{"Name": "AutoScalingGroupName", "Value": group.name}],
                            "Timestamp": at,
                            "Value": figures["CPUUtilization"],
                        }
                    ],
                )
            self.published[group.name] = tick + 1
