"""Server groups on AWS: one Auto Scaling group plus its own launch template per server group.

One launch template per server group (never a new version of a shared one) keeps every release
immutable, and sidesteps moto's failure on launch-template versions with user data.
API economy: reading a group is one DescribeAutoScalingGroups plus one DescribeTargetHealth per
target group, whatever the number of instances.
"""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gennaker.cloud import naming
from gennaker.cloud.aws.images import Bakery
from gennaker.cloud.aws.options import AwsDeployOptions, AwsFindImageOptions
from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.cloud.provider import (
    TAG_APPLICATION,
    TAG_CLUSTER,
    TAG_EXECUTION,
    TAG_SERVER_GROUP,
    TAG_STAGE,
    AlarmState,
    Capacity,
    Image,
    Instance,
    LoadBalancer,
    NotSupported,
    SecurityGroup,
    ServerGroup,
    ServerGroupSpec,
)
from gennaker.errors import Conflict, NotFound

TAG_IMAGE = "gennaker:image"
# Processes suspended by "disable" (Spinnaker's choice): no new instances, no replacements, and
# nothing joins the load balancers behind our back. A group with AddToLoadBalancer suspended is disabled.
DISABLE_PROCESSES = ("Launch", "Terminate", "AddToLoadBalancer")
# The ASG's lifecycle states in the interface's words (anything else is still starting).
LIFECYCLE = {
    "InService": "running",
    "Terminating": "stopping",
    "Terminating:Wait": "stopping",
    "Terminating:Proceed": "stopping",
    "Terminated": "stopped",
    "Detaching": "stopping",
    "Detached": "stopped",
    "Standby": "stopped",
}
# Target health in the interface's words ("unused": not registered).
TARGET_HEALTH = {"initial": "starting", "unused": "out", "unavailable": "unhealthy"}


@dataclass
class TargetGroup:
    arn: str
    name: str
    port: int | None
    protocol: str | None
    vpc_id: str | None
    load_balancers: list[str]  # load balancer ARNs


def _suspended(group: ServerGroup) -> set[str]:
    return set(group.details.get("suspended", []))


def _options(spec: ServerGroupSpec) -> AwsDeployOptions:
    if not isinstance(spec.provider_options, AwsDeployOptions):
        raise ValueError(f"server group {spec.name}: an AWS deploy needs AWS options (instance_type, subnets, ...)")
    return spec.provider_options


def _named_for(name: str, application: str) -> bool:
    """``shop``, ``shop-web``, ``shop-web-lb`` are named for ``shop``; ``shopping-lb`` is not (another
    application's, which a viewer of ``shop`` must not see)."""
    return naming.parse(name).application == application


def _tags(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or []}


def _created(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


class AwsProvider:
    """The CloudProvider for one AWS account and region."""

    def __init__(self, sessions: AwsSessions, account: str, region: str):
        self.sessions = sessions
        self.account = account
        self.region = region

    def bakery(self) -> Bakery:
        """What the bake stage builds AMIs with, in this account and region."""
        return Bakery(self.sessions, self.account, self.region)

    # --- clients -------------------------------------------------------------------------------
    @property
    def asg(self) -> AwsClient:
        return self.sessions.client(self.account, self.region, "autoscaling")

    @property
    def ec2(self) -> AwsClient:
        return self.sessions.client(self.account, self.region, "ec2")

    @property
    def elb(self) -> AwsClient:
        return self.sessions.client(self.account, self.region, "elbv2")

    # --- reading server groups -----------------------------------------------------------------
    def _target_health(self, target_groups: set[str]) -> dict[str, dict[str, str]]:
        """tg ARN -> {instance id -> state}: one call per target group, never one per instance."""
        health: dict[str, dict[str, str]] = {}
        for arn in sorted(target_groups):
            descriptions = self.elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            health[arn] = {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in descriptions}
        return health

    def _to_server_group(self, raw: dict[str, Any], health: dict[str, dict[str, str]]) -> ServerGroup:
        tags = _tags(raw.get("Tags"))
        tgs = list(raw.get("TargetGroupARNs", []))
        instances = []
        for i in raw.get("Instances", []):
            states = {tg: health.get(tg, {}).get(i["InstanceId"], "unused") for tg in tgs}
            lifecycle = i.get("LifecycleState", "")
            instances.append(
                Instance(
                    i["InstanceId"],
                    i.get("AvailabilityZone", ""),
                    LIFECYCLE.get(lifecycle, "starting"),
                    "healthy" if i.get("HealthStatus") == "Healthy" else "unhealthy",
                    {tg: TARGET_HEALTH.get(s, s) for tg, s in states.items()},
                    {"lifecycle": lifecycle, "target_health": states},
                )
            )
        lt = raw.get("LaunchTemplate") or {}
        instance_type = next((i.get("InstanceType") for i in raw.get("Instances", []) if i.get("InstanceType")), None)
        suspended = {p["ProcessName"] for p in raw.get("SuspendedProcesses", [])}
        return ServerGroup(
            name=raw["AutoScalingGroupName"],
            account=self.account,
            region=self.region,
            capacity=Capacity(raw["MinSize"], raw["MaxSize"], raw["DesiredCapacity"]),
            image=tags.get(TAG_IMAGE),
            instances=sorted(instances, key=lambda x: x.id),
            load_balancers=tgs,
            enabled="AddToLoadBalancer" not in suspended,  # Spinnaker's rule
            tags=tags,
            created=_created(raw.get("CreatedTime")),
            details={
                "instance_type": instance_type,
                "launch_template": lt.get("LaunchTemplateName"),
                "suspended": sorted(suspended),
                "target_groups": tgs,
                "subnets": [s for s in raw.get("VPCZoneIdentifier", "").split(",") if s],
            },
        )

    def _convert(self, raws: list[dict[str, Any]], with_health: bool) -> list[ServerGroup]:
        # A group being deleted on real AWS lingers with this status; it is gone for our purposes.
        raws = [r for r in raws if r.get("Status") != "Delete in progress"]
        health: dict[str, dict[str, str]] = {}
        if with_health:
            health = self._target_health({tg for r in raws for tg in r.get("TargetGroupARNs", [])})
        return [self._to_server_group(r, health) for r in raws]

    def list_server_groups(
        self, cluster: str | None = None, application: str | None = None, with_health: bool = True
    ) -> list[ServerGroup]:
        raws = []
        for raw in self.asg.paginate("describe_auto_scaling_groups", "AutoScalingGroups"):
            name = raw["AutoScalingGroupName"]
            if cluster is not None and not naming.in_cluster(name, cluster):
                continue
            if application is not None and naming.parse(name).application != application:
                continue
            raws.append(raw)
        return self._convert(raws, with_health)

    def get_server_group(self, name: str) -> ServerGroup | None:
        raws = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        groups = self._convert(raws, with_health=True)
        return groups[0] if groups else None

    def _require(self, name: str) -> ServerGroup:
        group = self.get_server_group(name)
        if group is None:
            raise NotFound(f"server group {name} not found in account {self.account}, region {self.region}")
        return group

    def _launch_templates(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self.ec2.paginate("describe_launch_templates", "LaunchTemplates", Filters=filters))

    def names_in_use(self, cluster: str) -> list[str]:
        """The cluster's launch templates: every group has its own, and one left by a create that
        crashed half-way (a launch template without its ASG) holds its name too."""
        found = self._launch_templates([{"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]}])
        return [t["LaunchTemplateName"] for t in found]

    def find_created_by(self, cluster: str, execution_id: str, stage_id: str) -> str | None:
        """The server group (or orphan launch template) an earlier attempt of this stage created.

        A disabled group is skipped: that attempt failed and was rolled back, so a retry of the
        stage makes a new group rather than adopting the one taken out of service.
        """
        groups = self.list_server_groups(cluster=cluster, with_health=False)
        for group in groups:
            ours = group.tags.get(TAG_EXECUTION) == execution_id and group.tags.get(TAG_STAGE) == stage_id
            if ours and group.enabled:
                return group.name
        names = {g.name for g in groups}
        templates = self._launch_templates(
            [
                {"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]},
                {"Name": f"tag:{TAG_EXECUTION}", "Values": [execution_id]},
                {"Name": f"tag:{TAG_STAGE}", "Values": [stage_id]},
            ]
        )
        orphans = [t["LaunchTemplateName"] for t in templates if t["LaunchTemplateName"] not in names]
        return orphans[0] if orphans else None

    def server_group_owner(self, name: str) -> tuple[str, str] | None:
        """(execution, stage) from the tags of the ASG named ``name``, or of its launch template when
        there is no ASG (a create cut short); None when neither exists."""
        raws = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        found = [_tags(r.get("Tags")) for r in raws]
        if not found:
            templates = self._launch_templates([{"Name": "launch-template-name", "Values": [name]}])
            found = [_tags(t.get("Tags")) for t in templates]
        if not found:
            return None
        return found[0].get(TAG_EXECUTION, ""), found[0].get(TAG_STAGE, "")

    # --- changing server groups ----------------------------------------------------------------
    @staticmethod
    def _check_owner(what: str, tags: dict[str, str], spec: ServerGroupSpec) -> None:
        owner = (tags.get(TAG_EXECUTION), tags.get(TAG_STAGE))
        if owner != (spec.execution_id, spec.stage_id):
            raise Conflict(
                f"{what} {spec.name} already exists and was created by execution "
                f"{owner[0] or '?'} stage {owner[1] or '?'}; refusing to reuse it"
            )

    def prepare_server_group(self, spec: ServerGroupSpec) -> ServerGroupSpec:
        """Subnets (or a VPC and a subnet tag), security groups and target groups by name become ids;
        the health check type defaults to ELB behind target groups."""
        opts = _options(spec)
        target_groups = self.resolve_target_groups(opts.target_group_refs())
        resolved = opts.model_copy(
            update={
                "subnets": self.resolve_subnets(opts.subnets, opts.vpc, opts.subnet_tag),
                "security_groups": self.resolve_security_groups(opts.security_groups, opts.vpc),
                "target_groups": target_groups,
                "health_check_type": opts.health_check_type or ("ELB" if target_groups else "EC2"),
            }
        )
        return dataclasses.replace(spec, provider_options=resolved, load_balancers=target_groups)

    def create_server_group(self, spec: ServerGroupSpec) -> ServerGroup:
        """Create the launch template and ASG, or adopt the ones an earlier attempt of this stage made.
        ``spec`` comes from ``prepare_server_group``: its subnets and target groups are ids."""
        opts = _options(spec)
        if not opts.subnets:
            raise ValueError(f"server group {spec.name} needs at least one subnet")
        tags = {**spec.gennaker_tags(), TAG_IMAGE: spec.image}
        existing_lt = self._launch_templates([{"Name": "launch-template-name", "Values": [spec.name]}])
        if existing_lt:
            self._check_owner("launch template", _tags(existing_lt[0].get("Tags")), spec)
        else:
            data: dict[str, Any] = {"ImageId": spec.image, "InstanceType": opts.instance_type}
            if opts.security_groups:
                data["SecurityGroupIds"] = list(opts.security_groups)
            if opts.user_data:
                data["UserData"] = base64.b64encode(opts.user_data.encode()).decode()
            if opts.key_name:
                data["KeyName"] = opts.key_name
            if opts.instance_profile:
                data["IamInstanceProfile"] = {"Name": opts.instance_profile}
            self.ec2.create_launch_template(
                LaunchTemplateName=spec.name,
                LaunchTemplateData=data,
                TagSpecifications=[
                    {
                        "ResourceType": "launch-template",
                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                    }
                ],
            )
        # Check before creating: CreateAutoScalingGroup on an existing name must not be relied upon
        # to fail (moto silently replaces the group).
        raws = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[spec.name])["AutoScalingGroups"]
        if raws:
            self._check_owner("auto scaling group", _tags(raws[0].get("Tags")), spec)
        else:
            kwargs: dict[str, Any] = {
                "AutoScalingGroupName": spec.name,
                "LaunchTemplate": {"LaunchTemplateName": spec.name, "Version": "$Latest"},
                "MinSize": spec.capacity.min,
                "MaxSize": spec.capacity.max,
                "DesiredCapacity": spec.capacity.desired,
                "VPCZoneIdentifier": ",".join(opts.subnets),
                "HealthCheckType": opts.health_check_type or ("ELB" if spec.load_balancers else "EC2"),
                "HealthCheckGracePeriod": int(opts.health_check_grace_period),
                "Tags": [
                    {
                        "Key": k,
                        "Value": v,
                        "PropagateAtLaunch": True,
                        "ResourceId": spec.name,
                        "ResourceType": "auto-scaling-group",
                    }
                    for k, v in tags.items()
                ],
            }
            if spec.load_balancers:
                kwargs["TargetGroupARNs"] = list(spec.load_balancers)
            self.asg.create_auto_scaling_group(**kwargs)
        return self._require(spec.name)

    def _deregister(self, group: ServerGroup, instance_ids: list[str]) -> None:
        wanted = set(instance_ids)
        for tg in group.load_balancers:
            targets = [{"Id": i.id} for i in group.instances if i.id in wanted and i.registered(tg)]
            if targets:
                self.elb.deregister_targets(TargetGroupArn=tg, Targets=targets)

    def enable_server_group(self, name: str) -> None:
        group = self._require(name)
        if _suspended(group) & set(DISABLE_PROCESSES):
            self.asg.resume_processes(AutoScalingGroupName=name, ScalingProcesses=list(DISABLE_PROCESSES))
        live = [i for i in group.instances if i.state == "running"]
        for tg in group.load_balancers:
            targets = [{"Id": i.id} for i in live if not i.registered(tg)]
            if targets:
                self.elb.register_targets(TargetGroupArn=tg, Targets=targets)

    def disable_server_group(self, name: str, missing_ok: bool = False) -> None:
        """Take the group out of rotation; ``missing_ok``: a group that is gone counts as disabled."""
        group = self.get_server_group(name) if missing_ok else self._require(name)
        if group is None:
            return
        # Suspend first so that nothing re-registers the instances we are about to remove.
        if not set(DISABLE_PROCESSES) <= _suspended(group):
            self.asg.suspend_processes(AutoScalingGroupName=name, ScalingProcesses=list(DISABLE_PROCESSES))
        self._deregister(group, [i.id for i in group.instances])

    def deregister_instances(self, name: str, instance_ids: list[str]) -> None:
        """Take some of a group's instances out of its target groups (rolling red/black's partial disable)."""
        self._deregister(self._require(name), instance_ids)

    def resize_server_group(self, name: str, capacity: Capacity) -> None:
        group = self._require(name)
        if group.capacity == capacity:
            return
        if group.disabled and capacity.desired < len(group.instances) and "Terminate" in _suspended(group):
            # A suspended Terminate stops scale-in; the group stays disabled through Launch and
            # AddToLoadBalancer, which remain suspended.
            self.asg.resume_processes(AutoScalingGroupName=name, ScalingProcesses=["Terminate"])
        self.asg.update_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=capacity.min,
            MaxSize=capacity.max,
            DesiredCapacity=capacity.desired,
        )
        if group.disabled:
            # moto re-registers every instance of a resized group (AWS does not, with
            # AddToLoadBalancer suspended); make sure a disabled group stays out of rotation.
            after = self._require(name)
            self._deregister(after, [i.id for i in after.instances])

    def destroy_server_group(self, name: str) -> None:
        group = self.get_server_group(name)
        if group is not None:
            # Deregister first: connections drain, and moto leaves targets of deleted groups registered.
            self._deregister(group, [i.id for i in group.instances])
            self.asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
        for lt in self._launch_templates([{"Name": f"tag:{TAG_SERVER_GROUP}", "Values": [name]}]):
            self.ec2.delete_launch_template(LaunchTemplateId=lt["LaunchTemplateId"])

    def health_report(self, name: str) -> str:
        return ""  # the instance states in the wait's own message are what AWS tells

    def _tag(self, name: str, key: str, value: str | None) -> dict[str, Any]:
        tag: dict[str, Any] = {"Key": key, "ResourceId": name, "ResourceType": "auto-scaling-group"}
        if value is not None:
            tag |= {"Value": value, "PropagateAtLaunch": False}
        return tag

    def set_server_group_tag(self, name: str, key: str, value: str) -> None:
        self.asg.create_or_update_tags(Tags=[self._tag(name, key, value)])

    def delete_server_group_tag(self, name: str, key: str) -> None:
        """Remove a tag from the ASG; a group that is gone has no tag left to remove."""
        if self.get_server_group(name) is not None:
            self.asg.delete_tags(Tags=[self._tag(name, key, None)])

    def set_traffic_weight(self, name: str, weight: int) -> None:
        # An ALB splits by target group (weighted forward actions), not by instance: a group would
        # need a target group of its own and the listener rule rewritten. Not built yet.
        raise NotSupported(
            f"server group {name}: traffic weights on AWS need ALB weighted target groups, which "
            "Gennaker does not manage yet; a canary on AWS cannot take a share of the traffic"
        )

    # --- network and load balancing ------------------------------------------------------------
    def resolve_target_groups(self, refs: list[str | dict[str, str]]) -> list[str]:
        """ARNs pass through; names, or {load_balancer, target_group} pairs, are looked up."""
        arns: list[str] = []
        for ref in refs:
            if isinstance(ref, str) and ref.startswith("arn:"):
                arns.append(ref)
            elif isinstance(ref, str):
                found = self.elb.describe_target_groups(Names=[ref])["TargetGroups"]
                arns.append(found[0]["TargetGroupArn"])
            else:
                lb_name, tg_name = ref.get("load_balancer"), ref["target_group"]
                lbs = self.elb.describe_load_balancers(Names=[lb_name])["LoadBalancers"]
                tgs = self.elb.describe_target_groups(LoadBalancerArn=lbs[0]["LoadBalancerArn"])["TargetGroups"]
                match = [t["TargetGroupArn"] for t in tgs if t["TargetGroupName"] == tg_name]
                if not match:
                    raise NotFound(f"load balancer {lb_name} has no target group {tg_name}")
                arns.append(match[0])
        return arns

    def _vpc_id(self, vpc: str) -> str:
        if vpc.startswith("vpc-"):
            return vpc
        found = self.ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [vpc]}])["Vpcs"]
        if not found:
            raise NotFound(f"no VPC named {vpc} in account {self.account}, region {self.region}")
        return str(found[0]["VpcId"])

    def resolve_subnets(self, subnets: list[str], vpc: str | None, subnet_tag: str | None) -> list[str]:
        """Explicit subnet ids, or the subnets of ``vpc`` tagged ``subnet_tag`` (``key`` or ``key=value``)."""
        if subnets:
            return list(subnets)
        if not vpc:
            raise ValueError("give either subnets or vpc (with an optional subnet_tag)")
        filters = [{"Name": "vpc-id", "Values": [self._vpc_id(vpc)]}]
        if subnet_tag:
            key, _, value = subnet_tag.partition("=")
            filters.append({"Name": f"tag:{key}", "Values": [value]} if value else {"Name": "tag-key", "Values": [key]})
        found = sorted(s["SubnetId"] for s in self.ec2.paginate("describe_subnets", "Subnets", Filters=filters))
        if not found:
            raise NotFound(f"no subnets in VPC {vpc} match tag {subnet_tag!r}")
        return found

    def resolve_security_groups(self, groups: list[str], vpc: str | None) -> list[str]:
        ids = [g for g in groups if g.startswith("sg-")]
        names = [g for g in groups if not g.startswith("sg-")]
        if names:
            filters = [{"Name": "group-name", "Values": names}]
            if vpc:
                filters.append({"Name": "vpc-id", "Values": [self._vpc_id(vpc)]})
            found = {
                g["GroupName"]: g["GroupId"]
                for g in self.ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
            }
            missing = [n for n in names if n not in found]
            if missing:
                raise NotFound(f"security groups not found: {', '.join(missing)}")
            ids += [found[n] for n in names]
        return ids

    def list_target_groups(self) -> list[TargetGroup]:
        return [
            TargetGroup(
                t["TargetGroupArn"],
                t["TargetGroupName"],
                t.get("Port"),
                t.get("Protocol"),
                t.get("VpcId"),
                list(t.get("LoadBalancerArns", [])),
            )
            for t in self.elb.paginate("describe_target_groups", "TargetGroups")
        ]

    def list_load_balancers(self) -> list[LoadBalancer]:
        """Load balancers; their targets are the ARNs of their target groups (what server groups join)."""
        tgs = self.list_target_groups()
        result = []
        for lb in self.elb.paginate("describe_load_balancers", "LoadBalancers"):
            arn = lb["LoadBalancerArn"]
            targets = [t.arn for t in tgs if arn in t.load_balancers]
            details = {
                "arn": arn,
                "scheme": lb.get("Scheme", ""),
                "target_groups": targets,
                "security_groups": list(lb.get("SecurityGroups", [])),
            }
            result.append(
                LoadBalancer(lb["LoadBalancerName"], lb.get("DNSName", ""), lb.get("Type", ""), targets, details)
            )
        return result

    def security_groups(self, application: str) -> list[SecurityGroup]:
        """Security groups used by the application's instances and load balancers, or named after it."""
        users: dict[str, set[str]] = {}
        filters = [
            {"Name": f"tag:{TAG_APPLICATION}", "Values": [application]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        for reservation in self.ec2.paginate("describe_instances", "Reservations", Filters=filters):
            for inst in reservation["Instances"]:
                tags = _tags(inst.get("Tags"))
                owner = tags.get("aws:autoscaling:groupName") or tags.get(TAG_SERVER_GROUP) or inst["InstanceId"]
                for sg in inst.get("SecurityGroups", []):
                    users.setdefault(sg["GroupId"], set()).add(owner)
        for lb in self.list_load_balancers():
            for sg in lb.details["security_groups"]:
                if _named_for(lb.name, application):
                    users.setdefault(sg, set()).add(f"load balancer {lb.name}")
        return [
            SecurityGroup(g["GroupId"], g["GroupName"], g.get("VpcId"), g.get("Description", ""),
                          sorted(users.get(g["GroupId"], set())))
            for g in self.ec2.paginate("describe_security_groups", "SecurityGroups")
            if g["GroupId"] in users or _named_for(g["GroupName"], application)
        ]  # fmt: skip

    # --- images --------------------------------------------------------------------------------
    def find_images(self, name_pattern: str | None, tags: dict[str, str], provider_options: Any = None) -> list[Image]:
        """Images matching a glob on the name and every tag, newest first, among those of the
        options' owners (our own by default)."""
        owners = provider_options.owners if isinstance(provider_options, AwsFindImageOptions) else ["self"]
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        if name_pattern:
            filters.append({"Name": "name", "Values": [name_pattern]})
        raws = self.ec2.describe_images(Owners=owners or ["self"], Filters=filters)["Images"]
        images = [
            Image(
                r["ImageId"],
                r.get("Name", ""),
                self.region,
                r.get("State", ""),
                r.get("CreationDate", ""),
                _tags(r.get("Tags")),
            )
            for r in raws
            if not name_pattern or fnmatch.fnmatch(r.get("Name", ""), name_pattern)
        ]
        return sorted(images, key=lambda i: (i.created, i.id), reverse=True)

    def resolve_image(self, image: str) -> str:
        """An AMI id as is, or the newest of our own images with that name (glob allowed)."""
        if image.startswith("ami-"):
            return image
        found = self.find_images(image, {})
        if not found:
            raise NotFound(f"no image named {image!r} in account {self.account}, region {self.region}")
        return found[0].id

    # --- alarms --------------------------------------------------------------------------------
    def alarm_states(self, names: list[str] | None = None) -> list[AlarmState]:
        """CloudWatch's states of the named alarms (metric and composite), 100 names a call (the
        API's limit), every page; a name CloudWatch does not know comes back MISSING."""
        cloudwatch = self.sessions.client(self.account, self.region, "cloudwatch")
        # Without AlarmTypes DescribeAlarms answers metric alarms only.
        query: dict[str, Any] = {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
        wanted = list(dict.fromkeys(names)) if names is not None else None
        batches = [wanted[i : i + 100] for i in range(0, len(wanted), 100)] if wanted is not None else [None]
        raws: list[dict[str, Any]] = []
        for batch in batches:
            token: str | None = None
            while True:  # pages by hand: one page holds both lists, which paginate() reads one at a time
                page = cloudwatch.describe_alarms(
                    **query, **({"AlarmNames": batch} if batch else {}), **({"NextToken": token} if token else {})
                )
                raws += page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])
                token = page.get("NextToken")
                if not token:
                    break
        found = {raw["AlarmName"]: _alarm_state(raw) for raw in raws}
        if names is None:
            return [found[n] for n in sorted(found)]
        where = f"account {self.account}, region {self.region}"
        return [found.get(n) or AlarmState(n, "MISSING", f"no CloudWatch alarm named {n!r} in {where}") for n in names]


def _alarm_state(raw: dict[str, Any]) -> AlarmState:
    return AlarmState(
        name=raw["AlarmName"],
        state=raw.get("StateValue", "INSUFFICIENT_DATA"),
        reason=raw.get("StateReason", ""),
        updated_at=_created(raw["StateUpdatedTimestamp"]) if raw.get("StateUpdatedTimestamp") else None,
        namespace=raw.get("Namespace"),
        metric=raw.get("MetricName"),
        dimensions={d["Name"]: d["Value"] for d in raw.get("Dimensions", [])},
    )
