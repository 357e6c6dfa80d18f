"""Collectors for resource types that one list call cannot serve, and per-type enrichments.

Per-resource calls appear only where AWS offers no batch form (S3 bucket configuration, target
health, DynamoDB backups); tags are fetched in batches wherever the API accepts several ARNs.
A per-resource call that fails is recorded on that resource (``attrs["_errors"]``) so checks can say
UNKNOWN for it alone; a failed list call fails the whole (account, region, type).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gennaker.errors import CloudError
from gennaker.ops.costs.collectors import COST_COLLECTORS
from gennaker.ops.model import GLOBAL, Resource, tag_dict
from gennaker.ops.scope import Scope, chunks, list_items, optional

Collector = Callable[[Scope], list[Resource]]
Detail = Callable[[Scope, list[Resource]], None]

S3_WORKERS = 8  # per-bucket configuration calls are the one unavoidable N+1; keep them concurrent


def _record_error(attrs: dict[str, Any], what: str, exc: CloudError) -> None:
    attrs.setdefault("_errors", {})[what] = f"{exc.code}: {exc}"


def ebs_encryption(s: Scope) -> list[Resource]:
    enabled = s.client("ec2").get_ebs_encryption_by_default()["EbsEncryptionByDefault"]
    # a per-account, per-region setting: named account/region so findings stay unique across accounts
    rid = f"{s.account_id}/{s.region}"
    return [s.resource("ec2.ebs_encryption", rid, attrs={"EbsEncryptionByDefault": bool(enabled)})]


def _tags_by(s: Scope, service: str, field: str, ids: list[str], key: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for batch in chunks(ids, 20):  # describe_tags takes at most 20 load balancers / target groups
        for d in s.client(service).describe_tags(**{field: batch})["TagDescriptions"]:
            out[d[key]] = tag_dict(d.get("Tags"))
    return out


def classic_elbs(s: Scope) -> list[Resource]:
    c = s.client("elb")
    lbs = list(c.paginate("describe_load_balancers", "LoadBalancerDescriptions"))
    tags = _tags_by(s, "elb", "LoadBalancerNames", [lb["LoadBalancerName"] for lb in lbs], "LoadBalancerName")
    out = []
    for lb in lbs:
        name = lb["LoadBalancerName"]
        attrs = dict(lb)
        attrs["Attributes"] = c.describe_load_balancer_attributes(LoadBalancerName=name)["LoadBalancerAttributes"]
        attrs["InstanceStates"] = c.describe_instance_health(LoadBalancerName=name)["InstanceStates"]
        arn = s.arn("arn:{partition}:elasticloadbalancing:{region}:{account_id}:loadbalancer/{id}", name)
        out.append(s.resource("elb.load_balancer", name, arn=arn, name=name, tags=tags.get(name), attrs=attrs))
    return out


def elbv2_load_balancers(s: Scope) -> list[Resource]:
    c = s.client("elbv2")
    lbs = list(c.paginate("describe_load_balancers", "LoadBalancers"))
    tags = _tags_by(s, "elbv2", "ResourceArns", [lb["LoadBalancerArn"] for lb in lbs], "ResourceArn")
    out = []
    for lb in lbs:
        attrs = dict(lb)
        # Application load balancers always balance across zones; only NLB/GWLB need the attribute call.
        if lb.get("Type", "application") != "application":
            raw = c.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
            attrs["Attributes"] = {a["Key"]: a["Value"] for a in raw}
        out.append(
            s.resource(
                "elbv2.load_balancer",
                lb["LoadBalancerName"],
                arn=lb["LoadBalancerArn"],
                name=lb["LoadBalancerName"],
                tags=tags.get(lb["LoadBalancerArn"]),
                attrs=attrs,
            )
        )
    return out


def elbv2_target_groups(s: Scope) -> list[Resource]:
    c = s.client("elbv2")
    tgs = list(c.paginate("describe_target_groups", "TargetGroups"))
    tags = _tags_by(s, "elbv2", "ResourceArns", [t["TargetGroupArn"] for t in tgs], "ResourceArn")
    out = []
    for tg in tgs:
        attrs = dict(tg)
        attrs["TargetHealth"] = c.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])[
            "TargetHealthDescriptions"
        ]
        out.append(
            s.resource(
                "elbv2.target_group",
                tg["TargetGroupName"],
                arn=tg["TargetGroupArn"],
                name=tg["TargetGroupName"],
                tags=tags.get(tg["TargetGroupArn"]),
                attrs=attrs,
            )
        )
    return out


def dynamodb_tables(s: Scope) -> list[Resource]:
    c = s.client("dynamodb")
    out = []
    for name in list(c.paginate("list_tables", "TableNames")):
        table = c.describe_table(TableName=name)["Table"]
        attrs = dict(table)
        backups = c.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        attrs["PointInTimeRecoveryStatus"] = backups.get("PointInTimeRecoveryDescription", {}).get(
            "PointInTimeRecoveryStatus", "DISABLED"
        )
        tags = c.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags")
        out.append(s.resource("dynamodb.table", name, arn=table["TableArn"], name=name, tags=tags, attrs=attrs))
    return out


def _bucket(s: Scope, bucket: dict[str, Any]) -> Resource:
    c = s.client("s3")
    name = bucket["Name"]
    attrs: dict[str, Any] = {"CreationDate": bucket.get("CreationDate")}
    tags: Any = None

    def get(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except CloudError as exc:
            _record_error(attrs, what, exc)
            return None

    loc = get("location", lambda: c.get_bucket_location(Bucket=name))
    region = (loc or {}).get("LocationConstraint") or "us-east-1"
    if loc is not None:
        region = {"EU": "eu-west-1"}.get(region, region)
    ver = get("versioning", lambda: c.get_bucket_versioning(Bucket=name))
    attrs["Versioning"] = (ver or {}).get("Status", "Disabled") if ver is not None else None
    lc = get(
        "lifecycle",
        lambda: optional(c.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration", Bucket=name),
    )
    attrs["LifecycleRules"] = (lc or {}).get("Rules", []) if "lifecycle" not in attrs.get("_errors", {}) else None
    pab = get(
        "public_access_block",
        lambda: optional(c.get_public_access_block, "NoSuchPublicAccessBlockConfiguration", Bucket=name),
    )
    attrs["PublicAccessBlock"] = (pab or {}).get("PublicAccessBlockConfiguration")
    enc = get(
        "encryption",
        lambda: optional(c.get_bucket_encryption, "ServerSideEncryptionConfigurationNotFoundError", Bucket=name),
    )
    attrs["Encryption"] = (enc or {}).get("ServerSideEncryptionConfiguration")
    web = get("website", lambda: optional(c.get_bucket_website, "NoSuchWebsiteConfiguration", Bucket=name))
    attrs["Website"] = bool(web)
    tagging = get("tagging", lambda: optional(c.get_bucket_tagging, "NoSuchTagSet", Bucket=name))
    tags = (tagging or {}).get("TagSet")
    return s.resource("s3.bucket", name, arn=f"arn:aws:s3:::{name}", name=name, tags=tags, attrs=attrs, region=region)


def s3_buckets(s: Scope) -> list[Resource]:
    buckets = list(s.client("s3").paginate("list_buckets", "Buckets"))
    if not buckets:
        return []
    with ThreadPoolExecutor(max_workers=min(S3_WORKERS, len(buckets)), thread_name_prefix="s3") as pool:
        return list(pool.map(lambda b: _bucket(s, b), buckets))


def s3_account_pab(s: Scope) -> list[Resource]:
    got = optional(
        s.client("s3control").get_public_access_block,
        "NoSuchPublicAccessBlockConfiguration",
        AccountId=s.account_id,
    )
    conf = (got or {}).get("PublicAccessBlockConfiguration")
    return [s.resource("s3.account_public_access_block", s.account_id, attrs={"PublicAccessBlock": conf})]


def cloudfront(s: Scope) -> list[Resource]:
    c = s.client("cloudfront")
    out, marker = [], ""
    while True:  # the items sit one level down (DistributionList.Items), so page by hand
        page = c.list_distributions(**({"Marker": marker} if marker else {}))["DistributionList"]
        for d in page.get("Items", []):
            if "Origins" not in d:  # real summaries carry origins; simulated AWS needs the full config
                d = dict(d, Origins=c.get_distribution(Id=d["Id"])["Distribution"]["DistributionConfig"]["Origins"])
            out.append(
                s.resource("cloudfront.distribution", d["Id"], arn=d.get("ARN"), name=d.get("DomainName"), attrs=d)
            )
        marker = page.get("NextMarker") or ""
        if not page.get("IsTruncated") or not marker:
            return out


def route53_records(s: Scope) -> list[Resource]:
    c = s.client("route53")
    out = []
    for zone in list(c.paginate("list_hosted_zones", "HostedZones")):
        zid = zone["Id"].split("/")[-1]
        for rec in c.paginate("list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone["Id"]):
            rid = f"{zid}/{rec['Name']}/{rec['Type']}/{rec.get('SetIdentifier', '')}"
            attrs = dict(
                rec,
                HostedZoneId=zid,
                ZoneName=zone["Name"],
                PrivateZone=zone.get("Config", {}).get("PrivateZone", False),
            )
            out.append(s.resource("route53.record", rid, name=rec["Name"], attrs=attrs))
    return out


def _plans(s: Scope) -> list[dict[str, Any]]:
    return list(s.client("backup").paginate("list_backup_plans", "BackupPlansList"))


def backup_plans(s: Scope) -> list[Resource]:
    c = s.client("backup")
    out = []
    for p in _plans(s):
        plan = c.get_backup_plan(BackupPlanId=p["BackupPlanId"])["BackupPlan"]
        out.append(
            s.resource(
                "backup.plan",
                p["BackupPlanId"],
                arn=p.get("BackupPlanArn"),
                name=p.get("BackupPlanName"),
                attrs=dict(p, **plan),
            )
        )
    return out


def backup_selections(s: Scope) -> list[Resource]:
    c = s.client("backup")
    out = []
    for p in _plans(s):
        for sel in list(c.paginate("list_backup_selections", "BackupSelectionsList", BackupPlanId=p["BackupPlanId"])):
            full = c.get_backup_selection(BackupPlanId=p["BackupPlanId"], SelectionId=sel["SelectionId"])
            attrs = dict(full["BackupSelection"], BackupPlanId=p["BackupPlanId"])
            out.append(s.resource("backup.selection", sel["SelectionId"], name=sel.get("SelectionName"), attrs=attrs))
    return out


def config_recorders(s: Scope) -> list[Resource]:
    c = s.client("config")
    status = {st["name"]: st for st in c.describe_configuration_recorder_status()["ConfigurationRecordersStatus"]}
    out = []
    for rec in c.describe_configuration_recorders()["ConfigurationRecorders"]:
        attrs = dict(rec, recording=bool(status.get(rec["name"], {}).get("recording")))
        out.append(s.resource("config.recorder", rec["name"], name=rec["name"], attrs=attrs))
    return out


def cloudtrail_trails(s: Scope) -> list[Resource]:
    c = s.client("cloudtrail")
    out = []
    # Home-region trails only: a multi-region trail would otherwise appear once per region.
    for trail in c.describe_trails(includeShadowTrails=False)["trailList"]:
        st = c.get_trail_status(Name=trail["TrailARN"])
        attrs = dict(trail, IsLogging=bool(st.get("IsLogging")))
        out.append(
            s.resource("cloudtrail.trail", trail["Name"], arn=trail["TrailARN"], name=trail["Name"], attrs=attrs)
        )
    return out


def iam_account(s: Scope) -> list[Resource]:
    c = s.client("iam")
    summary = c.get_account_summary()["SummaryMap"]
    policy = optional(c.get_account_password_policy, "NoSuchEntity")
    attrs = {"SummaryMap": summary, "PasswordPolicy": (policy or {}).get("PasswordPolicy")}
    return [s.resource("iam.account", s.account_id, arn=f"arn:aws:iam::{s.account_id}:root", attrs=attrs)]


def _org_tree(s: Scope, root_id: str) -> dict[str, str]:
    """Account id -> OU path ("/Root/Prod"): one call per OU, never one per account."""
    c = s.client("organizations")
    paths: dict[str, str] = {}
    todo = [(root_id, "/Root")]
    while todo:
        parent, path = todo.pop()
        for acct in c.paginate("list_accounts_for_parent", "Accounts", ParentId=parent):
            paths[acct["Id"]] = path
        for ou in c.paginate("list_organizational_units_for_parent", "OrganizationalUnits", ParentId=parent):
            todo.append((ou["Id"], f"{path}/{ou['Name']}"))
    return paths


def organization(s: Scope) -> list[Resource]:
    c = s.client("organizations")
    org = optional(c.describe_organization, "AWSOrganizationsNotInUseException")
    if org is None:
        return [s.resource("organizations.organization", s.account_id, attrs={"InOrganization": False})]
    attrs: dict[str, Any] = dict(org["Organization"], InOrganization=True)
    if attrs.get("MasterAccountId") == s.account_id:  # only the management account can list members
        roots = list(c.paginate("list_roots", "Roots"))
        paths = _org_tree(s, roots[0]["Id"]) if roots else {}
        members = []
        for acct in c.paginate("list_accounts", "Accounts"):
            tags = tag_dict(list(c.paginate("list_tags_for_resource", "Tags", ResourceId=acct["Id"])))
            members.append(
                {
                    "Id": acct["Id"],
                    "Name": acct.get("Name"),
                    "Status": acct.get("Status"),
                    "OuPath": paths.get(acct["Id"], "/Root"),
                    "Tags": tags,
                }
            )
        attrs["Accounts"] = members
    return [s.resource("organizations.organization", s.account_id, arn=attrs.get("Arn"), attrs=attrs)]


def budgets(s: Scope) -> list[Resource]:
    c = s.client("budgets")
    out = []
    for b in list(c.paginate("describe_budgets", "Budgets", AccountId=s.account_id)):
        notes = c.describe_notifications_for_budget(AccountId=s.account_id, BudgetName=b["BudgetName"])
        attrs = dict(b, Notifications=notes.get("Notifications", []))
        out.append(s.resource("budgets.budget", b["BudgetName"], name=b["BudgetName"], attrs=attrs))
    return out


def service_quotas(s: Scope) -> list[Resource]:
    c = s.client("service-quotas")
    out = []
    for key, (service, code) in s.settings.quotas.items():
        q = c.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]
        out.append(
            s.resource(
                "servicequotas.quota",
                f"{service}/{code}",
                arn=q.get("QuotaArn"),
                name=key,
                attrs=dict(q, Key=key),
            )
        )
    return out


def instance_types(s: Scope, instances: list[Resource]) -> None:
    """vCPUs per instance (quota headroom counts vCPUs): one call per 100 distinct types."""
    wanted = sorted({r.attrs.get("InstanceType", "") for r in instances} - {""})
    vcpus: dict[str, int] = {}
    try:
        for batch in chunks(wanted, 100):
            for it in s.client("ec2").paginate("describe_instance_types", "InstanceTypes", InstanceTypes=batch):
                vcpus[it["InstanceType"]] = int(it.get("VCpuInfo", {}).get("DefaultVCpus", 0))
    except CloudError as exc:
        for r in instances:
            _record_error(r.attrs, "VCpus", exc)
        return
    for r in instances:
        r.attrs["VCpus"] = vcpus.get(r.attrs.get("InstanceType", ""))


COLLECTORS: dict[str, Collector] = {
    "ebs_encryption": ebs_encryption,
    "classic_elbs": classic_elbs,
    "elbv2_load_balancers": elbv2_load_balancers,
    "elbv2_target_groups": elbv2_target_groups,
    "dynamodb_tables": dynamodb_tables,
    "s3_buckets": s3_buckets,
    "s3_account_pab": s3_account_pab,
    "cloudfront": cloudfront,
    "route53_records": route53_records,
    "backup_plans": backup_plans,
    "backup_selections": backup_selections,
    "config_recorders": config_recorders,
    "cloudtrail_trails": cloudtrail_trails,
    "iam_account": iam_account,
    "organization": organization,
    "budgets": budgets,
    "service_quotas": service_quotas,
}

COLLECTORS.update(COST_COLLECTORS)  # ce.cost_allocation_tag, ce.untagged_spend (gennaker.ops.costs)

DETAILS: dict[str, Detail] = {"instance_types": instance_types}

__all__ = ["COLLECTORS", "DETAILS", "GLOBAL", "list_items"]
