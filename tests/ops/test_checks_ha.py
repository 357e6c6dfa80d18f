"""High-availability checks: a passing and a failing case each, in simulated AWS (Stubber where it lacks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.audit import evaluate
from gennaker.ops.checks import BY_ID
from gennaker.ops.model import AccountInfo, Resource, Snapshot
from gennaker.ops.settings import OpsSettings
from tests.ops.conftest import ACCOUNT_ID, statuses
from tests.ops.scene import alb, asg, network, run, stub

Audit = Callable[..., Any]
Aws = Callable[..., Any]
EC2_ARN = f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:"


def inst(iid: str) -> str:
    return f"{EC2_ARN}instance/{iid}"


def test_ec2_multi_az_groups_by_tag(aws: Aws, audit: Audit) -> None:
    ec2 = aws("ec2")
    _, a, b = network(ec2)
    run(ec2, a, Application="web"), run(ec2, b, Application="web")
    run(ec2, a, n=2, Application="api")
    assert statuses(audit("ha.ec2.multi_az"), "ha.ec2.multi_az") == {
        "Application=web": "PASS",
        "Application=api": "FAIL",
    }


def test_ec2_singleton_needs_recover_alarm(aws: Aws, audit: Audit) -> None:
    ec2, cw = aws("ec2"), aws("cloudwatch")
    guarded, bare = run(ec2)[0], run(ec2)[0]
    cw.put_metric_alarm(
        AlarmName="recover",
        Namespace="AWS/EC2",
        MetricName="StatusCheckFailed_System",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=2,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        Dimensions=[{"Name": "InstanceId", "Value": guarded}],
        AlarmActions=["arn:aws:automate:us-east-1:ec2:recover"],
    )
    assert statuses(audit("ha.ec2.singleton"), "ha.ec2.singleton") == {
        inst(guarded): "PASS",
        inst(bare): "FAIL",
    }


def test_elb_multi_az_healthy_targets_and_cross_zone(aws: Aws, audit: Audit) -> None:
    ec2, elbv2, elb = aws("ec2"), aws("elbv2"), aws("elb")
    vpc, a, b = network(ec2)
    spread = run(ec2, a) + run(ec2, b)
    packed = run(ec2, a, n=2)
    good, _ = alb(elbv2, "good", [a, b], vpc, spread)
    packed_lb, _ = alb(elbv2, "packed", [a, b], vpc, packed)
    elb.create_load_balancer(
        LoadBalancerName="classic",
        AvailabilityZones=["us-east-1a"],
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
    )
    classic = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT_ID}:loadbalancer/classic"
    result = audit("ha.elb.*")
    assert statuses(result, "ha.elb.multi_az") == {good: "PASS", packed_lb: "PASS", classic: "FAIL"}
    assert statuses(result, "ha.elb.healthy_targets_multi_az") == {
        good: "PASS",
        packed_lb: "FAIL",
        classic: "FAIL",
    }
    assert statuses(result, "ha.elb.cross_zone") == {good: "PASS", packed_lb: "PASS", classic: "FAIL"}
    elb.modify_load_balancer_attributes(
        LoadBalancerName="classic", LoadBalancerAttributes={"CrossZoneLoadBalancing": {"Enabled": True}}
    )
    assert statuses(audit("ha.elb.cross_zone"), "ha.elb.cross_zone")[classic] == "PASS"


def test_asg_checks(aws: Aws, audit: Audit) -> None:
    ec2, elbv2, autoscaling = aws("ec2"), aws("elbv2"), aws("autoscaling")
    vpc, a, b = network(ec2)
    managed_lb, tg = alb(elbv2, "managed", [a, b], vpc)
    manual_lb, _ = alb(elbv2, "manual", [a, b], vpc, run(ec2, a))
    asg(autoscaling, ec2, "web", [a, b], size=2, target_groups=[tg], health="ELB")
    asg(autoscaling, ec2, "api", [a], size=1, target_groups=[tg], health="EC2")
    asg(autoscaling, ec2, "batch", [a], size=1, Environment="dev")
    result = audit("ha.asg.*")
    arns = {
        g["AutoScalingGroupName"]: g["AutoScalingGroupARN"]
        for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    }
    web, api, batch = arns["web"], arns["api"], arns["batch"]
    assert statuses(result, "ha.asg.in_use") == {managed_lb: "PASS", manual_lb: "FAIL"}
    assert statuses(result, "ha.asg.multi_az") == {web: "PASS", api: "FAIL", batch: "FAIL"}
    assert statuses(result, "ha.asg.elb_health_check") == {web: "PASS", api: "FAIL", batch: "NOT_APPLICABLE"}
    assert statuses(result, "ha.asg.min_capacity") == {web: "PASS", api: "FAIL", batch: "NOT_APPLICABLE"}


def test_eips(aws: Aws, audit: Audit) -> None:
    ec2 = aws("ec2")
    with_eip, ephemeral = run(ec2)[0], run(ec2)[0]
    used = ec2.allocate_address(Domain="vpc")["AllocationId"]
    idle = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=used, InstanceId=with_eip)
    result = audit("ha.eip.*")
    assert statuses(result, "ha.eip.unassociated") == {
        f"{EC2_ARN}elastic-ip/{used}": "PASS",
        f"{EC2_ARN}elastic-ip/{idle}": "FAIL",
    }
    assert statuses(result, "ha.eip.static_endpoint") == {inst(with_eip): "PASS", inst(ephemeral): "FAIL"}


def test_ebs_recent_snapshot(aws: Aws, audit: Audit) -> None:
    ec2 = aws("ec2")
    snapped = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    bare = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    ec2.create_snapshot(VolumeId=snapped)
    assert statuses(audit("ha.ebs.recent_snapshot"), "ha.ebs.recent_snapshot") == {
        f"{EC2_ARN}volume/{snapped}": "PASS",
        f"{EC2_ARN}volume/{bare}": "FAIL",
    }


def test_ebs_snapshot_age_thresholds_without_rpo() -> None:
    """Trusted Advisor's rule when no RPO is set: > 7 days warns (low FAIL), > 30 days fails."""
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    res = []
    for vol, days in (("vol-new", 2), ("vol-warn", 10), ("vol-old", 40)):
        res.append(Resource("ec2.volume", "main", "us-east-1", vol))
        res.append(
            Resource(
                "ec2.snapshot",
                "main",
                "us-east-1",
                f"snap-{vol}",
                attrs={
                    "VolumeId": vol,
                    "State": "completed",
                    "StartTime": (now - dt.timedelta(days=days)).isoformat(),
                },
            )
        )
    snap = Snapshot(
        "s",
        now,
        {"main": AccountInfo("main", ACCOUNT_ID, ("us-east-1",))},
        res,
        [],
        ["ec2.volume", "ec2.snapshot"],
    )
    found = evaluate(snap, OpsSettings(rpo_hours=None), [BY_ID["ha.ebs.recent_snapshot"]])
    assert {(f.resource_id, f.status, f.severity) for f in found} == {
        ("vol-new", "PASS", "high"),
        ("vol-warn", "FAIL", "low"),
        ("vol-old", "FAIL", "high"),
    }


def test_content_cdn(aws: Aws, audit: Audit) -> None:
    s3, cf = aws("s3"), aws("cloudfront")
    for name in ("site-cdn", "site-direct", "plain-data"):
        s3.create_bucket(Bucket=name)
    for name in ("site-cdn", "site-direct"):
        s3.put_bucket_website(Bucket=name, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    cf.create_distribution(
        DistributionConfig={
            "CallerReference": "x",
            "Comment": "",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "o",
                        "DomainName": "site-cdn.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "o",
                "ViewerProtocolPolicy": "allow-all",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        }
    )
    assert statuses(audit("ha.content.cdn"), "ha.content.cdn") == {
        "arn:aws:s3:::site-cdn": "PASS",
        "arn:aws:s3:::site-direct": "FAIL",
    }


def test_dynamodb_pitr(aws: Aws, audit: Audit) -> None:
    ddb = aws("dynamodb")
    for name in ("orders", "sessions"):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    ddb.update_continuous_backups(
        TableName="orders", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/"
    assert statuses(audit("ha.dynamodb.pitr"), "ha.dynamodb.pitr") == {
        f"{arn}orders": "PASS",
        f"{arn}sessions": "FAIL",
    }


def test_beanstalk_health_stubbed(sessions: AwsSessions, audit: Audit) -> None:
    """Simulated AWS reports every environment Grey with basic health, so both cases are stubbed."""

    def env(name: str, health: str, enhanced: bool) -> dict[str, Any]:
        e = {
            "EnvironmentName": name,
            "EnvironmentId": f"e-{name}",
            "Status": "Ready",
            "Health": health,
            "EnvironmentArn": f"arn:aws:elasticbeanstalk:us-east-1:{ACCOUNT_ID}:environment/app/{name}",
        }
        return e | ({"HealthStatus": "Ok"} if enhanced else {})

    envs = [env("green-env", "Green", True), env("red-env", "Red", True), env("basic-env", "Green", False)]
    stub(
        sessions,
        "elasticbeanstalk",
        lambda region: [("describe_environments", {"Environments": envs if region == "us-east-1" else []})],
    )
    got = statuses(audit("ha.beanstalk.health"), "ha.beanstalk.health")
    assert got == {e["EnvironmentArn"]: s for e, s in zip(envs, ["PASS", "FAIL", "FAIL"], strict=True)}


def test_rds_multi_az(aws: Aws, audit: Audit) -> None:
    rds = aws("rds")
    for name, multi in (("primary", True), ("lonely", False)):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="u",
            MasterUserPassword="password1",
            AllocatedStorage=20,
            MultiAZ=multi,
        )
    arn = f"arn:aws:rds:us-east-1:{ACCOUNT_ID}:db:"
    assert statuses(audit("ha.rds.multi_az"), "ha.rds.multi_az") == {
        f"{arn}primary": "PASS",
        f"{arn}lonely": "FAIL",
    }


def quota(code: str, service: str, value: float, region: str) -> dict[str, Any]:
    return {
        "Quota": {
            "ServiceCode": service,
            "QuotaCode": code,
            "Value": value,
            "QuotaName": code,
            "QuotaArn": f"arn:aws:servicequotas:{region}:{ACCOUNT_ID}:{service}/{code}",
        }
    }


def test_quota_headroom_and_dr_quota_stubbed(sessions: AwsSessions, aws: Aws, audit: Audit) -> None:
    """Service quotas exist in simulated AWS only for 'vpc'; quota answers are stubbed."""
    ec2 = aws("ec2")
    run(ec2, n=3)  # 3 x t3.micro = 6 vCPUs; x2 failover = 12
    ec2.allocate_address(Domain="vpc")
    limits = {"us-east-1": (10, 5, 50, 200), "us-west-2": (64, 5, 50, 200)}

    def answers(region: str) -> list[tuple[str, dict[str, Any]]]:
        v = limits[region]
        return [
            ("get_service_quota", quota("L-1216C47A", "ec2", v[0], region)),
            ("get_service_quota", quota("L-0263D0A3", "ec2", v[1], region)),
            ("get_service_quota", quota("L-53DA6B97", "elasticloadbalancing", v[2], region)),
            ("get_service_quota", quota("L-CDE20ADC", "autoscaling", v[3], region)),
        ]

    stub(sessions, "service-quotas", answers)
    result = audit("ha.quota.headroom", "dr.quota.dr_region")
    head = {
        f.resource_id.split(":")[-1] + "@" + f.region: f.status
        for f in result.findings
        if f.check_id == "ha.quota.headroom"
    }
    assert head["ec2/L-1216C47A@us-east-1"] == "FAIL"  # 12 needed, 10 allowed
    assert head["ec2/L-0263D0A3@us-east-1"] == "PASS"  # 1 EIP x 2 <= 5
    assert head["ec2/L-1216C47A@us-west-2"] == "PASS"  # nothing runs there
    dr = {f.resource_id.split(":")[-1]: f.status for f in result.findings if f.check_id == "dr.quota.dr_region"}
    assert dr == {
        "ec2/L-1216C47A": "PASS",
        "ec2/L-0263D0A3": "PASS",
        "elasticloadbalancing/L-53DA6B97": "PASS",
        "autoscaling/L-CDE20ADC": "PASS",
    }
    limits["us-west-2"] = (4, 0, 50, 200)  # DR region below primary usage (6 vCPUs, 1 EIP)
    sessions2 = AwsSessions(sessions.config, max_attempts=2)
    stub(sessions2, "service-quotas", answers)
    from gennaker.ops.audit import run_audit

    again = run_audit(sessions2, OpsSettings(), checks=["dr.quota.dr_region"])
    dr = {f.resource_id.split(":")[-1]: f.status for f in again.findings}
    assert dr["ec2/L-1216C47A"] == "FAIL" and dr["ec2/L-0263D0A3"] == "FAIL"


def test_quota_unknown_in_simulated_aws(audit: Audit) -> None:
    result = audit("ha.quota.headroom")
    assert {f.status for f in result.findings} == {"UNKNOWN"}
    assert all("NoSuchResourceException" in f.message for f in result.findings)


def test_opsworks_end_of_life(aws: Aws, audit: Audit) -> None:
    assert statuses(audit("ha.opsworks.end_of_life"), "ha.opsworks.end_of_life") == {ACCOUNT_ID: "PASS"}
    run(aws("ec2"), **{"opsworks:stack": "legacy"})
    assert statuses(audit("ha.opsworks.end_of_life"), "ha.opsworks.end_of_life") == {"legacy": "FAIL"}
