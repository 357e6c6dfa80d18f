"""Go-live checks: organization, budgets, tags, change tracking, root MFA, passwords, ports, S3, EBS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from tests.ops.conftest import ACCOUNT_ID, statuses
from tests.ops.scene import run, stub

Audit = Callable[..., Any]
Aws = Callable[..., Any]
ROOT = f"arn:aws:iam::{ACCOUNT_ID}:root"


def test_account_organization(aws: Aws, audit: Audit) -> None:
    check = "golive.account.organization"
    assert statuses(audit(check), check) == {ACCOUNT_ID: "FAIL"}  # standalone
    aws("organizations").create_organization(FeatureSet="ALL")
    found = audit(check).findings
    assert [(f.resource_id, f.status) for f in found] == [(ACCOUNT_ID, "PASS")]
    assert "environment prod" in found[0].message


def test_account_organization_needs_environment(config: Any, aws: Aws, audit: Audit) -> None:
    config.accounts["main"].environment = None  # no config, no OU, no tag
    aws("organizations").create_organization(FeatureSet="ALL")
    found = audit("golive.account.organization").findings
    assert [f.status for f in found] == ["FAIL"] and "not separated by environment" in found[0].message


def test_cost_budgets(aws: Aws, audit: Audit) -> None:
    check = "golive.cost.budgets"
    assert statuses(audit(check), check) == {ACCOUNT_ID: "FAIL"}
    aws("budgets").create_budget(
        AccountId=ACCOUNT_ID,
        Budget={
            "BudgetName": "monthly",
            "BudgetLimit": {"Amount": "100", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
        },
        NotificationsWithSubscribers=[
            {
                "Notification": {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 80},
                "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "ops@example.com"}],
            }
        ],
    )
    assert statuses(audit(check), check) == {ACCOUNT_ID: "PASS"}


def test_required_tags(aws: Aws, audit: Audit) -> None:
    ec2 = aws("ec2")
    good = run(ec2, Owner="ops", Environment="prod", Application="shop")[0]
    partial = run(ec2, Owner="ops")[0]
    found = {f.resource_id: f for f in audit("golive.assets.required_tags").findings if "instance/" in f.resource_id}
    arn = f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:instance/"
    assert {k: f.status for k, f in found.items()} == {arn + good: "PASS", arn + partial: "FAIL"}
    assert found[arn + partial].message == "missing tag(s): Environment, Application"


def test_change_tracking(aws: Aws, audit: Audit) -> None:
    check = "golive.assets.change_tracking"
    assert statuses(audit(check), check) == {ACCOUNT_ID: "FAIL"}
    aws("s3").create_bucket(Bucket="trail-logs")
    for region in ("us-east-1", "us-west-2"):
        cfg = aws("config", region)
        cfg.put_configuration_recorder(
            ConfigurationRecorder={
                "name": "default",
                "roleARN": f"arn:aws:iam::{ACCOUNT_ID}:role/config",
                "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": region == "us-east-1"},
            }
        )
        cfg.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": "trail-logs"})
        cfg.start_configuration_recorder(ConfigurationRecorderName="default")
    found = audit(check).findings
    assert [f.status for f in found] == ["FAIL"] and found[0].message == "no logging multi-region CloudTrail trail"
    ct = aws("cloudtrail")
    ct.create_trail(Name="org", S3BucketName="trail-logs", IsMultiRegionTrail=True)
    ct.start_logging(Name="org")
    assert statuses(audit(check), check) == {ACCOUNT_ID: "PASS"}


def test_root_mfa_off_in_simulated_aws(audit: Audit) -> None:
    assert statuses(audit("golive.security.root_mfa"), "golive.security.root_mfa") == {ROOT: "FAIL"}


def test_root_mfa_on_stubbed(sessions: AwsSessions, audit: Audit) -> None:
    """The root user's MFA cannot be enabled through the API; IAM answers are stubbed."""
    stub(
        sessions,
        "iam",
        lambda region: [
            ("get_account_summary", {"SummaryMap": {"AccountMFAEnabled": 1}}),
            ("get_account_password_policy", "NoSuchEntity"),
        ],
    )
    result = audit("golive.security.root_mfa", "golive.security.password_policy")
    assert statuses(result, "golive.security.root_mfa") == {ROOT: "PASS"}
    assert statuses(result, "golive.security.password_policy") == {ROOT: "FAIL"}


def test_password_policy(aws: Aws, audit: Audit) -> None:
    check = "golive.security.password_policy"
    iam = aws("iam")
    iam.update_account_password_policy(MinimumPasswordLength=8, RequireSymbols=True)
    found = audit(check).findings
    assert [f.status for f in found] == ["FAIL"] and "minimum length 8 < 14" in found[0].message
    iam.update_account_password_policy(
        MinimumPasswordLength=16,
        RequireSymbols=True,
        RequireNumbers=True,
        RequireUppercaseCharacters=True,
        RequireLowercaseCharacters=True,
    )
    assert statuses(audit(check), check) == {ROOT: "PASS"}


def test_admin_ports_open(aws: Aws, audit: Audit) -> None:
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    ssh = ec2.create_security_group(GroupName="ssh", Description="x", VpcId=vpc)["GroupId"]
    rdp6 = ec2.create_security_group(GroupName="rdp6", Description="x", VpcId=vpc)["GroupId"]
    web = ec2.create_security_group(GroupName="web", Description="x", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=ssh,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 1024, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    ec2.authorize_security_group_ingress(
        GroupId=rdp6,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
    )
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        ],
    )
    got = statuses(audit("golive.security.admin_ports_open"), "golive.security.admin_ports_open")
    arn = f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:security-group/"
    assert {k: v for k, v in got.items() if k.removeprefix(arn) in {ssh, rdp6, web}} == {
        arn + ssh: "FAIL",
        arn + rdp6: "FAIL",
        arn + web: "PASS",
    }


def _buckets(s3: Any) -> None:
    s3.create_bucket(Bucket="locked")
    s3.create_bucket(Bucket="open")
    s3.put_public_access_block(
        Bucket="locked",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


CHECK_PAB = "golive.security.s3_public_access_block"


def test_s3_public_access_block_account_level(sessions: AwsSessions, aws: Aws, audit: Audit) -> None:
    """Read from simulated AWS over HTTP (s3control's account host prefix is sent to the endpoint):
    no account-level block, so the bucket blocked on its own passes and the open one fails; once the
    account blocks everything, both pass."""
    _buckets(aws("s3"))
    got = statuses(audit(CHECK_PAB), CHECK_PAB)
    assert got == {"arn:aws:s3:::locked": "PASS", "arn:aws:s3:::open": "FAIL"}
    block = {k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")}
    s3control = sessions.client("main", "us-east-1", "s3control")  # a plain boto3 client cannot reach it
    s3control.put_public_access_block(AccountId=ACCOUNT_ID, PublicAccessBlockConfiguration=block)
    got = statuses(audit(CHECK_PAB), CHECK_PAB)
    assert got == {"arn:aws:s3:::locked": "PASS", "arn:aws:s3:::open": "PASS"}


def test_s3_public_access_block_stubbed_account_level(sessions: AwsSessions, aws: Aws, audit: Audit) -> None:
    _buckets(aws("s3"))
    stub(sessions, "s3control", lambda region: [("get_public_access_block", "NoSuchPublicAccessBlockConfiguration")])
    assert statuses(audit(CHECK_PAB), CHECK_PAB) == {"arn:aws:s3:::locked": "PASS", "arn:aws:s3:::open": "FAIL"}


def test_ebs_default_encryption(aws: Aws, audit: Audit) -> None:
    aws("ec2").enable_ebs_encryption_by_default()
    check = "golive.security.ebs_default_encryption"
    # named account/region: unique across accounts
    assert statuses(audit(check), check) == {f"{ACCOUNT_ID}/us-east-1": "PASS", f"{ACCOUNT_ID}/us-west-2": "FAIL"}
