"""Helpers that build scenes in simulated AWS (raw boto3 clients against moto) for the check tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.stub import Stubber

from gennaker.cloud.aws.session import AwsSessions

AMI = "ami-12c6146b"  # one of moto's built-in images


def tags(**kv: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in kv.items()]


def network(ec2: Any) -> tuple[str, str, str]:
    """A VPC with one subnet in us-east-1a and one in us-east-1b: (vpc, subnet a, subnet b)."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    return vpc, a, b


def run(ec2: Any, subnet: str | None = None, n: int = 1, image: str = AMI, **tag_kv: str) -> list[str]:
    kw: dict[str, Any] = {"ImageId": image, "MinCount": n, "MaxCount": n, "InstanceType": "t3.micro"}
    if subnet:
        kw["SubnetId"] = subnet
    if tag_kv:
        kw["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags(**tag_kv)}]
    return [i["InstanceId"] for i in ec2.run_instances(**kw)["Instances"]]


def alb(elbv2: Any, name: str, subnets: list[str], vpc: str, targets: list[str] | None = None) -> tuple[str, str]:
    """An ALB with one target group and a listener; returns (lb arn, target group arn)."""
    lb = elbv2.create_load_balancer(Name=name, Subnets=subnets, Type="application")["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name=f"{name}-tg", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")
    tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    if targets:
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": t} for t in targets])
    return lb["LoadBalancerArn"], tg_arn


def asg(
    autoscaling: Any,
    ec2: Any,
    name: str,
    subnets: list[str],
    size: int = 1,
    min_size: int | None = None,
    target_groups: list[str] | None = None,
    health: str = "EC2",
    **tag_kv: str,
) -> None:
    lt = f"{name}-lt"
    ec2.create_launch_template(LaunchTemplateName=lt, LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": lt},
        MinSize=size if min_size is None else min_size,
        MaxSize=max(size, 4),
        DesiredCapacity=size,
        VPCZoneIdentifier=",".join(subnets),
        TargetGroupARNs=target_groups or [],
        HealthCheckType=health,
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in tag_kv.items()],
    )


def stub(sessions: AwsSessions, service: str, responses: Callable[[str], list[tuple[str, Any]]]) -> None:
    """Answer ``service`` from a botocore Stubber (for APIs simulated AWS lacks): ``responses(region)``
    lists (operation, response or error code) in call order for the client of that region."""
    stubbers: list[Stubber] = []

    def hook(raw: Any) -> None:
        if raw.meta.service_model.service_name != service:
            return
        stubber = Stubber(raw)
        for op, body in responses(raw.meta.region_name):
            if isinstance(body, str):  # an AWS error code
                stubber.add_client_error(op, service_error_code=body, http_status_code=404)
            else:
                stubber.add_response(op, body)
        stubber.activate()
        stubbers.append(stubber)

    sessions.add_client_hook(hook)
