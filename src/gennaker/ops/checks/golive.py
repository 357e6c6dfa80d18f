"""Go-live checklist: accounts and billing, cost control, asset tracking, baseline security."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gennaker.ops.checks.base import Inventory, Result, fail, ok, unknown
from gennaker.ops.checks.common import errored
from gennaker.ops.model import GLOBAL
from gennaker.ops.settings import OpsSettings

TAGGED_TYPES = (
    "ec2.instance",
    "ec2.volume",
    "s3.bucket",
    "elb.load_balancer",
    "elbv2.load_balancer",
    "autoscaling.group",
    "rds.instance",
    "rds.cluster",
    "dynamodb.table",
)
PAB_FIELDS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def _environment(inv: Inventory, account: str) -> str | None:
    """From config, else from the organization's listing: the account's Environment tag or its OU."""
    info = inv.account(account)
    if info.environment:
        return info.environment
    for org in inv.of("organizations.organization"):
        for member in org.attrs.get("Accounts", []):
            if member["Id"] == info.account_id:
                return member.get("Tags", {}).get("Environment") or (
                    member.get("OuPath", "/Root").rsplit("/", 1)[-1]
                    if member.get("OuPath", "/Root") != "/Root"
                    else None
                )
    return None


def account_organization(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    orgs = {o.account: o for o in inv.of("organizations.organization")}
    for info in inv.accounts:
        org, subject = orgs.get(info.name), inv.account_subject(info)
        env = _environment(inv, info.name)
        if org is None or not org.attrs.get("InOrganization"):
            yield fail(subject, "standalone account: not in an organization, no consolidated billing")
        elif not env:
            yield fail(subject, "in organization but not separated by environment (no OU, tag or config)")
        else:
            yield ok(
                subject,
                f"member of {org.attrs.get('Id')} (payer {org.attrs.get('MasterAccountId')}), environment {env}",
            )


def cost_budgets(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for info in inv.accounts:
        budgets = [b for b in inv.of("budgets.budget") if b.account == info.name]
        notified = [b.id for b in budgets if b.attrs.get("Notifications")]
        subject = inv.account_subject(info)
        if notified:
            yield ok(subject, f"budget(s) with notifications: {', '.join(sorted(notified))}")
        else:
            yield fail(subject, "budgets without notifications" if budgets else "no budgets")


def required_tags(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for r in (r for t in TAGGED_TYPES for r in inv.of(t)):
        if errored(r, "tagging"):
            yield unknown(r, f"tags unreadable: {errored(r, 'tagging')}")
            continue
        missing = [t for t in s.tags_required_for(r.type) if not r.tags.get(t)]
        yield fail(r, f"missing tag(s): {', '.join(missing)}") if missing else ok(r, "required tags present")


def change_tracking(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for info in inv.accounts:
        regions = [r for r in info.regions if not inv.failure("config.recorder", info.name, r)]
        recording = {r.region for r in inv.of("config.recorder") if r.account == info.name and r.attrs.get("recording")}
        trails = [
            t.id
            for t in inv.of("cloudtrail.trail")
            if t.account == info.name and t.attrs.get("IsMultiRegionTrail") and t.attrs.get("IsLogging")
        ]
        gaps = [f"no Config recorder recording in {r}" for r in regions if r not in recording]
        if not trails and not inv.gaps(info.name, "cloudtrail.trail"):
            gaps.append("no logging multi-region CloudTrail trail")
        unread = inv.gaps(info.name)
        subject = inv.account_subject(info)
        if gaps:  # a gap found is a FAIL whatever the unread regions hold
            yield fail(subject, "; ".join(gaps + [f"also unknown: {u}" for u in unread]))
        elif unread:
            yield unknown(subject, "; ".join(unread))
        else:
            yield ok(subject, f"Config recording, trail {trails[0]}")


def root_mfa(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for acct in inv.of("iam.account"):
        on = acct.attrs.get("SummaryMap", {}).get("AccountMFAEnabled") == 1
        yield ok(acct, "root user has MFA") if on else fail(acct, "root user has no MFA device")


def password_policy(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for acct in inv.of("iam.account"):
        p = acct.attrs.get("PasswordPolicy")
        if not p:
            yield fail(acct, "no account password policy")
            continue
        gaps = (
            [f"minimum length {p.get('MinimumPasswordLength', 0)} < {s.password_min_length}"]
            if int(p.get("MinimumPasswordLength", 0)) < s.password_min_length
            else []
        )
        gaps += [
            f"{f} is off"
            for f in (
                "RequireSymbols",
                "RequireNumbers",
                "RequireUppercaseCharacters",
                "RequireLowercaseCharacters",
            )
            if not p.get(f)
        ]
        yield fail(acct, "; ".join(gaps)) if gaps else ok(acct, "password policy meets the baseline")


def _open_to_world(perm: dict[str, Any], port: int) -> bool:
    any_port = perm.get("IpProtocol") == "-1"
    in_range = perm.get("IpProtocol") in {"tcp", "6"} and perm.get("FromPort", 0) <= port <= perm.get("ToPort", -1)
    world = any(r.get("CidrIp") == "0.0.0.0/0" for r in perm.get("IpRanges", [])) or any(
        r.get("CidrIpv6") == "::/0" for r in perm.get("Ipv6Ranges", [])
    )
    return world and (any_port or in_range)


def admin_ports_open(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for sg in inv.of("ec2.security_group"):
        open_ports = sorted(
            {p for perm in sg.attrs.get("IpPermissions", []) for p in s.admin_ports if _open_to_world(perm, p)}
        )
        if open_ports:
            yield fail(sg, f"port(s) {', '.join(map(str, open_ports))} open to the internet")
        else:
            yield ok(sg, "no administration port open to the internet")


def s3_public_access_block(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    # The account-level block is used when known; a bucket fully blocked on its own passes regardless.
    account_on = {
        a.account: all((a.attrs.get("PublicAccessBlock") or {}).get(f) for f in PAB_FIELDS)
        for a in inv.of("s3.account_public_access_block")
    }
    for b in inv.of("s3.bucket"):
        conf = b.attrs.get("PublicAccessBlock") or {}
        off = [f for f in PAB_FIELDS if not conf.get(f)]
        account_unknown = inv.failure("s3.account_public_access_block", b.account, GLOBAL)
        if account_on.get(b.account):
            yield ok(b, "blocked by the account-level public access block")
        elif errored(b, "public_access_block"):
            yield unknown(b, f"public access block unreadable: {errored(b, 'public_access_block')}")
        elif not off:
            yield ok(b, "bucket public access block fully on")
        elif account_unknown:
            yield unknown(b, f"bucket block off ({', '.join(off)}) and {account_unknown}")
        else:
            yield fail(b, f"public access block off: {', '.join(off)}")


def ebs_default_encryption(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for r in inv.of("ec2.ebs_encryption"):
        on = r.attrs.get("EbsEncryptionByDefault")
        yield ok(r, "new volumes encrypted by default") if on else fail(r, "EBS encryption by default is off")
