"""Every resource type the inventory knows, declared as data (Cloud Custodian style).

A type either names one list call (``operation``/``key``, paginated when botocore can) and how to
read an item (id, ARN, name, tags), or names a ``collector`` in ``ops.collectors`` when no single
list call fits (S3 needs per-bucket config calls, Route 53 records are per zone, ...). ``detail``
names an enrichment run once over the listed items of one (account, region), batching where AWS lets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ResourceType:
    name: str
    service: str
    operation: str = ""
    key: str = ""
    id_field: str = ""
    # ARN: a template over {partition} {region} {account_id} {id}, or "@Field" to read it from the item.
    arn: str | None = None
    name_field: str | None = None
    id_prefix: str = ""  # stripped from ids (Route 53 answers "/hostedzone/Z123")
    tags_field: str | None = "Tags"
    params: dict[str, Any] = field(default_factory=dict)
    flatten: str | None = None  # each listed item holds a list of the real resources
    owner_field: str | None = None  # keep only items owned by the account (moto ignores OwnerIds)
    scope: Literal["regional", "global"] = "regional"
    detail: str | None = None
    collector: str | None = None
    per_resource_calls: str = ""  # documents unavoidable per-resource calls (bench reads this)


EC2 = "arn:{partition}:ec2:{region}:{account_id}:"

TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "ec2.instance",
        "ec2",
        "describe_instances",
        "Reservations",
        "InstanceId",
        EC2 + "instance/{id}",
        flatten="Instances",
        detail="instance_types",
    ),
    ResourceType("ec2.volume", "ec2", "describe_volumes", "Volumes", "VolumeId", EC2 + "volume/{id}"),
    ResourceType(
        "ec2.snapshot",
        "ec2",
        "describe_snapshots",
        "Snapshots",
        "SnapshotId",
        "arn:{partition}:ec2:{region}::snapshot/{id}",
        # The owner-id filter also makes simulated AWS (which ignores OwnerIds) skip ~1,300 public snapshots.
        params={"OwnerIds": ["self"], "Filters": [{"Name": "owner-id", "Values": ["{account_id}"]}]},
        owner_field="OwnerId",
    ),
    ResourceType(
        "ec2.image",
        "ec2",
        "describe_images",
        "Images",
        "ImageId",
        "arn:{partition}:ec2:{region}::image/{id}",
        name_field="Name",
        params={"Owners": ["self"]},
        owner_field="OwnerId",
    ),
    ResourceType("ec2.address", "ec2", "describe_addresses", "Addresses", "AllocationId", EC2 + "elastic-ip/{id}"),
    ResourceType(
        "ec2.security_group",
        "ec2",
        "describe_security_groups",
        "SecurityGroups",
        "GroupId",
        EC2 + "security-group/{id}",
        name_field="GroupName",
    ),
    ResourceType("ec2.vpc", "ec2", "describe_vpcs", "Vpcs", "VpcId", EC2 + "vpc/{id}"),
    ResourceType("ec2.subnet", "ec2", "describe_subnets", "Subnets", "SubnetId", "@SubnetArn"),
    ResourceType("ec2.ebs_encryption", "ec2", collector="ebs_encryption"),
    ResourceType(
        "autoscaling.group",
        "autoscaling",
        "describe_auto_scaling_groups",
        "AutoScalingGroups",
        "AutoScalingGroupName",
        "@AutoScalingGroupARN",
        name_field="AutoScalingGroupName",
    ),
    ResourceType(
        "elb.load_balancer",
        "elb",
        collector="classic_elbs",
        per_resource_calls="describe_load_balancer_attributes, describe_instance_health",
    ),
    ResourceType(
        "elbv2.load_balancer",
        "elbv2",
        collector="elbv2_load_balancers",
        per_resource_calls="describe_load_balancer_attributes (network/gateway only)",
    ),
    ResourceType(
        "elbv2.target_group",
        "elbv2",
        collector="elbv2_target_groups",
        per_resource_calls="describe_target_health",
    ),
    ResourceType(
        "rds.instance",
        "rds",
        "describe_db_instances",
        "DBInstances",
        "DBInstanceIdentifier",
        "@DBInstanceArn",
        tags_field="TagList",
    ),
    ResourceType(
        "rds.cluster",
        "rds",
        "describe_db_clusters",
        "DBClusters",
        "DBClusterIdentifier",
        "@DBClusterArn",
        tags_field="TagList",
    ),
    ResourceType(
        "rds.global_cluster",
        "rds",
        "describe_global_clusters",
        "GlobalClusters",
        "GlobalClusterIdentifier",
        "@GlobalClusterArn",
        tags_field=None,
    ),
    ResourceType(
        "dynamodb.table",
        "dynamodb",
        collector="dynamodb_tables",
        per_resource_calls="describe_table, describe_continuous_backups, list_tags_of_resource",
    ),
    ResourceType(
        "s3.bucket",
        "s3",
        collector="s3_buckets",
        scope="global",
        per_resource_calls="location, versioning, lifecycle, public access block, encryption, tagging, website",
    ),
    ResourceType("s3.account_public_access_block", "s3control", collector="s3_account_pab", scope="global"),
    ResourceType("cloudfront.distribution", "cloudfront", collector="cloudfront", scope="global"),
    ResourceType(
        "route53.hosted_zone",
        "route53",
        "list_hosted_zones",
        "HostedZones",
        "Id",
        "arn:{partition}:route53:::hostedzone/{id}",
        name_field="Name",
        id_prefix="/hostedzone/",
        tags_field=None,
        scope="global",
    ),
    ResourceType(
        "route53.record",
        "route53",
        collector="route53_records",
        scope="global",
        per_resource_calls="list_resource_record_sets per hosted zone",
    ),
    ResourceType(
        "route53.health_check",
        "route53",
        "list_health_checks",
        "HealthChecks",
        "Id",
        "arn:{partition}:route53:::healthcheck/{id}",
        tags_field=None,
        scope="global",
    ),
    ResourceType(
        "cloudwatch.alarm",
        "cloudwatch",
        "describe_alarms",
        "MetricAlarms",
        "AlarmName",
        "@AlarmArn",
        name_field="AlarmName",
        tags_field=None,
    ),
    ResourceType("sns.topic", "sns", "list_topics", "Topics", "TopicArn", "@TopicArn", tags_field=None),
    ResourceType("sns.subscription", "sns", "list_subscriptions", "Subscriptions", "SubscriptionArn", tags_field=None),
    ResourceType("backup.plan", "backup", collector="backup_plans", per_resource_calls="get_backup_plan"),
    ResourceType(
        "backup.selection",
        "backup",
        collector="backup_selections",
        per_resource_calls="list_backup_selections per plan, get_backup_selection",
    ),
    ResourceType(
        "glacier.vault",
        "glacier",
        "list_vaults",
        "VaultList",
        "VaultName",
        "@VaultARN",
        name_field="VaultName",
        tags_field=None,
    ),
    ResourceType(
        "elasticbeanstalk.environment",
        "elasticbeanstalk",
        "describe_environments",
        "Environments",
        "EnvironmentId",
        "@EnvironmentArn",
        name_field="EnvironmentName",
        tags_field=None,
    ),
    ResourceType("config.recorder", "config", collector="config_recorders"),
    ResourceType(
        "cloudtrail.trail", "cloudtrail", collector="cloudtrail_trails", per_resource_calls="get_trail_status"
    ),
    ResourceType("iam.account", "iam", collector="iam_account", scope="global"),
    ResourceType("organizations.organization", "organizations", collector="organization", scope="global"),
    ResourceType(
        "budgets.budget",
        "budgets",
        collector="budgets",
        scope="global",
        per_resource_calls="describe_notifications_for_budget",
    ),
    ResourceType("ce.cost_allocation_tag", "ce", collector="cost_allocation_tags", scope="global"),
    ResourceType(
        "ce.untagged_spend",
        "ce",
        collector="untagged_spend",
        scope="global",
        per_resource_calls="one GetCostAndUsage per account ($0.01)",
    ),
    ResourceType(
        "servicequotas.quota",
        "service-quotas",
        collector="service_quotas",
        per_resource_calls="get_service_quota per configured quota code",
    ),
    ResourceType(
        "ssm-incidents.response_plan",
        "ssm-incidents",
        "list_response_plans",
        "responsePlanSummaries",
        "name",
        "@arn",
        name_field="displayName",
        tags_field=None,
    ),
)

BY_NAME: dict[str, ResourceType] = {t.name: t for t in TYPES}


def resource_type(name: str) -> ResourceType:
    return BY_NAME[name]
