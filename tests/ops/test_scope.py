"""Collection scope: two accounts of an organization via assume role; access denied on one service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.audit import run_audit
from gennaker.ops.settings import OpsSettings
from tests.ops.conftest import ACCOUNT_ID, statuses

Aws = Callable[..., Any]


def test_organization_member_discovered_and_audited_by_assume_role(
    moto_endpoint: str, sessions: AwsSessions, aws: Aws
) -> None:
    org = aws("organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name="staging")["OrganizationalUnit"]["Id"]
    status = org.create_account(Email="member@example.com", AccountName="member")["CreateAccountStatus"]
    member = status["AccountId"]
    org.move_account(AccountId=member, SourceParentId=root, DestinationParentId=ou)

    creds = aws("sts").assume_role(
        RoleArn=f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole", RoleSessionName="setup"
    )["Credentials"]
    member_ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    idle = member_ec2.allocate_address(Domain="vpc")["AllocationId"]
    aws("ec2").allocate_address(Domain="vpc")  # the management account's own, also idle

    settings = OpsSettings.model_validate({"organization": {"management_account": "main"}})
    result = run_audit(sessions, settings, checks=["ha.eip.unassociated", "golive.account.organization"])

    assert sorted(result.snapshot.accounts) == ["main", f"org-{member}"]
    assert result.snapshot.accounts[f"org-{member}"].account_id == member
    eips = {(f.account, f.status) for f in result.findings if f.check_id == "ha.eip.unassociated"}
    assert eips == {("main", "FAIL"), (f"org-{member}", "FAIL")}
    assert f"arn:aws:ec2:us-east-1:{member}:elastic-ip/{idle}" in statuses(result, "ha.eip.unassociated")
    orgs = {
        f.resource_id: (f.status, f.message) for f in result.findings if f.check_id == "golive.account.organization"
    }
    assert orgs[ACCOUNT_ID][0] == "PASS" and orgs[member][0] == "PASS"
    assert "environment staging" in orgs[member][1]  # from the OU the member sits in


def test_access_denied_on_one_service_gives_unknown_with_reason(sessions: AwsSessions, aws: Aws) -> None:
    aws("s3").create_bucket(Bucket="data-bucket")
    aws("ec2").allocate_address(Domain="vpc")

    def deny(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "not authorized to list buckets"}}, "ListBuckets"
        )

    sessions.add_client_hook(lambda raw: raw.meta.events.register("before-call.s3.ListBuckets", deny))
    result = run_audit(sessions, OpsSettings(), checks=["dr.s3.versioning", "ha.eip.unassociated"])

    s3 = [f for f in result.findings if f.check_id == "dr.s3.versioning"]
    assert [(f.status, f.region) for f in s3] == [("UNKNOWN", "global")]
    assert "AccessDenied" in s3[0].message and "not authorized to list buckets" in s3[0].message
    assert [f.status for f in result.findings if f.check_id == "ha.eip.unassociated"] == ["FAIL"]
    failure = result.snapshot.failures[0]
    assert (failure.type, failure.code) == ("s3.bucket", "AccessDenied")
