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
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gennaker.cloud import naming
from gennaker.cloud.aws.images import Bakery
from gennaker.cloud.aws.options import AwsDeployOptions, AwsFindImageOptions
from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.cloud.provider import (
    DEFAULT_TRAFFIC_WEIGHT,
    MAX_TRAFFIC_WEIGHT,
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
from gennaker.errors import CloudError, Conflict, InvalidInput, NotFound

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

# Traffic shares (set_traffic_weight). An ALB splits a listener's traffic between target groups by
# weight (a weighted forward, 0..999), not between instances: a group whose share is set apart
# (ServerGroupSpec.separate_traffic, a canary's pair) gets a target group of its own, named after
# it, beside the shared one in every listener that forwards to the shared one.
TAG_TRAFFIC_WEIGHT = "gennaker:traffic-weight"  # on an ASG: each instance's weight (default 1)
TAG_SHARES_WITH = "gennaker:shares-with"  # on a group's own target group: the shared one it stands beside
TAG_LOAD_BALANCER = "gennaker:load-balancer"  # on an ASG with a target group of its own: the ALB's ARN
ALB_MAX_WEIGHT = 999
TARGET_GROUP_NAME_MAX = 32


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


def own_target_group_name(server_group: str) -> str:
    """The name of the target group a server group has to itself: its own name where ELB allows it
    (32 characters, letters, digits and hyphens), else a shortened one with a hash of it."""
    clean = re.sub(r"[^A-Za-z0-9-]", "-", server_group).strip("-")
    if clean == server_group and len(clean) <= TARGET_GROUP_NAME_MAX:
        return clean
    digest = hashlib.sha256(server_group.encode()).hexdigest()[:8]
    return f"{clean[: TARGET_GROUP_NAME_MAX - 9].strip('-')}-{digest}"


def _arn_resource(arn: str, kind: str) -> str:
    """CloudWatch's dimension value of an ELB ARN: ``targetgroup/name/id``, ``app/name/id``."""
    resource = arn.split(":", 5)[-1]
    return resource.removeprefix("loadbalancer/") if kind == "loadbalancer" else resource


def _forward_weights(action: dict[str, Any]) -> dict[str, int] | None:
    """Target group ARN -> weight of a forward action (a plain one weighs its one group 1)."""
    if action.get("Type") != "forward":
        return None
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
    if groups:
        return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
    return {action["TargetGroupArn"]: 1} if action.get("TargetGroupArn") else None


def _forward_action(action: dict[str, Any], weights: dict[str, int]) -> dict[str, Any]:
    """``action`` forwarding by ``weights``; down to one target group it is a plain forward again."""
    kept = {k: v for k, v in action.items() if k not in ("TargetGroupArn", "ForwardConfig")}
    if len(weights) == 1:
        return {**kept, "TargetGroupArn": next(iter(weights))}
    config: dict[str, Any] = {"TargetGroups": [{"TargetGroupArn": a, "Weight": w} for a, w in weights.items()]}
    stickiness = (action.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig")
    if stickiness:
        config["TargetGroupStickinessConfig"] = stickiness
    return {**kept, "ForwardConfig": config}


def alb_weights(shares: dict[str, float]) -> dict[str, int]:
    """Relative shares as ALB weights (integers 0..999, proportions kept; a share above 0 stays above 0)."""
    top = max(shares.values(), default=0.0)
    factor = min(1.0, ALB_MAX_WEIGHT / top) if top > 0 else 0.0
    return {arn: max(1, round(share * factor)) if share > 0 else 0 for arn, share in shares.items()}


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
        own = own_target_group_name(raw["AutoScalingGroupName"])
        own_tg = next((tg for tg in tgs if _arn_resource(tg, "targetgroup").split("/")[1:2] == [own]), None)
        metric_scope = {}
        if own_tg and tags.get(TAG_LOAD_BALANCER):
            metric_scope = {
                "target_group": _arn_resource(own_tg, "targetgroup"),
                "load_balancer": _arn_resource(tags[TAG_LOAD_BALANCER], "loadbalancer"),
            }
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
                "traffic_weight": int(tags.get(TAG_TRAFFIC_WEIGHT, DEFAULT_TRAFFIC_WEIGHT)),
            },
            metric_scope=metric_scope,
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
            if spec.separate_traffic and spec.load_balancers:
                # After the launch template (which holds the name if we crash here), before the ASG.
                own_arn, load_balancer = self._join_with_own_target_group(spec)
                spec = dataclasses.replace(spec, load_balancers=[own_arn])
                tags[TAG_LOAD_BALANCER] = load_balancer
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
        """The ASG, its launch template and its own target group (out of the listeners first, so
        the others take its traffic at once); each step idempotent, so safe to repeat after a crash."""
        own = self._own_target_group(name)
        if own is not None:
            self._leave_listeners(own)
        group = self.get_server_group(name)
        if group is not None:
            # Deregister first: connections drain, and moto leaves targets of deleted groups registered.
            self._deregister(group, [i.id for i in group.instances])
            self.asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
        if own is not None:
            try:
                self.elb.delete_target_group(TargetGroupArn=own)
            except CloudError as exc:
                if exc.code != "TargetGroupNotFound":
                    raise
        # The launch template last: while it exists the name is taken and its owner known.
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

    # --- traffic shares: ALB weighted target groups -------------------------------------------
    def set_traffic_weight(self, name: str, weight: int) -> None:
        """Each instance of the group weighs ``weight``; every weighted forward of the listeners its
        target groups are behind is rewritten so that a target group's weight is the sum of its
        healthy instances' weights (scaled into ALB's 0..999). Kept in a tag: later rewrites (another
        group's weight) use it. A forward to one target group has nothing to split and stays as is."""
        if not 0 <= weight <= MAX_TRAFFIC_WEIGHT:
            raise InvalidInput(f"a traffic weight is 0..{MAX_TRAFFIC_WEIGHT}, got {weight}")
        group = self._require(name)
        self.set_server_group_tag(name, TAG_TRAFFIC_WEIGHT, str(weight))
        if group.load_balancers:
            self._reweigh(list(group.load_balancers))

    def _find_target_group(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.elb.describe_target_groups(Names=[name])["TargetGroups"]
        except CloudError as exc:
            if exc.code == "TargetGroupNotFound":
                return None
            raise
        return found[0] if found else None

    def _target_group_tags(self, arns: list[str]) -> dict[str, dict[str, str]]:
        tags: dict[str, dict[str, str]] = {}
        for i in range(0, len(arns), 20):  # DescribeTags takes 20 ARNs a call
            for d in self.elb.describe_tags(ResourceArns=arns[i : i + 20])["TagDescriptions"]:
                tags[d["ResourceArn"]] = _tags(d.get("Tags"))
        return tags

    def _own_target_group(self, name: str) -> str | None:
        """The ARN of the target group ``name`` has to itself (one we created for it), or None."""
        found = self._find_target_group(own_target_group_name(name))
        if found is None:
            return None
        arn = str(found["TargetGroupArn"])
        return arn if self._target_group_tags([arn]).get(arn, {}).get(TAG_SERVER_GROUP) == name else None

    def _listeners_for(self, target_groups: list[str]) -> list[dict[str, Any]]:
        """Listeners with a default forward to any of ``target_groups``, found through the load
        balancers of those target groups and of the shared ones that own target groups stand beside
        (moto does not list a load balancer on a target group a listener change added)."""
        shared = [t.get(TAG_SHARES_WITH) for t in self._target_group_tags(target_groups).values()]
        arns = sorted(set(target_groups) | {s for s in shared if s})
        load_balancers: set[str] = set()
        for i in range(0, len(arns), 20):
            try:
                found = self.elb.describe_target_groups(TargetGroupArns=arns[i : i + 20])["TargetGroups"]
            except CloudError as exc:  # one of them is gone (a destroy cut short): ask one by one
                if exc.code != "TargetGroupNotFound":
                    raise
                found = [tg for arn in arns[i : i + 20] for tg in self._target_groups_if_any(arn)]
            load_balancers |= {lb for tg in found for lb in tg.get("LoadBalancerArns", [])}
        wanted = set(target_groups)
        listeners = []
        for lb in sorted(load_balancers):
            for listener in self.elb.paginate("describe_listeners", "Listeners", LoadBalancerArn=lb):
                forwards = [_forward_weights(a) or {} for a in listener.get("DefaultActions", [])]
                if any(wanted & set(f) for f in forwards):
                    listeners.append(listener)
        return listeners

    def _target_groups_if_any(self, arn: str) -> list[dict[str, Any]]:
        try:
            return list(self.elb.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"])
        except CloudError as exc:
            if exc.code == "TargetGroupNotFound":
                return []
            raise

    def _rewrite_forwards(
        self,
        listener: dict[str, Any],
        change: Any,  # (weights of one forward) -> new weights
    ) -> None:
        actions = listener.get("DefaultActions", [])
        rewritten = []
        for action in actions:
            weights = _forward_weights(action)
            changed = change(weights) if weights is not None else None
            rewritten.append(action if changed is None or changed == weights else _forward_action(action, changed))
        if rewritten != actions:
            self.elb.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=rewritten)

    def _join_with_own_target_group(self, spec: ServerGroupSpec) -> tuple[str, str]:
        """Create (or adopt, after a crash) the target group ``spec``'s group has to itself, a copy
        of the shared one's settings, and add it at weight 0 beside the shared one in each listener
        forwarding to it. Returns its ARN and the first listener's load balancer ARN."""
        if len(spec.load_balancers) != 1:
            raise NotSupported(
                f"server group {spec.name}: a share of the traffic is taken through one target group, "
                f"not {len(spec.load_balancers)}"
            )
        shared_arn = spec.load_balancers[0]
        listeners = self._listeners_for([shared_arn])
        if not listeners:
            raise NotSupported(
                f"server group {spec.name}: target group {shared_arn} is in no listener's default forward, "
                "so there is no traffic to take a share of"
            )
        name = own_target_group_name(spec.name)
        found = self._find_target_group(name)
        tags = {**spec.gennaker_tags(), TAG_SHARES_WITH: shared_arn}
        if found is not None:
            arn = str(found["TargetGroupArn"])
            self._check_owner("target group", self._target_group_tags([arn]).get(arn, {}), spec)
        else:
            shared = self.elb.describe_target_groups(TargetGroupArns=[shared_arn])["TargetGroups"][0]
            copied = (
                "Protocol", "Port", "VpcId", "TargetType", "ProtocolVersion", "HealthCheckProtocol",
                "HealthCheckPort", "HealthCheckEnabled", "HealthCheckPath", "HealthCheckIntervalSeconds",
                "HealthCheckTimeoutSeconds", "HealthyThresholdCount", "UnhealthyThresholdCount", "Matcher",
            )  # fmt: skip
            settings = {k: shared[k] for k in copied if shared.get(k) is not None}
            arn = str(
                self.elb.create_target_group(
                    Name=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()], **settings
                )["TargetGroups"][0]["TargetGroupArn"]
            )
        for listener in listeners:
            self._rewrite_forwards(listener, lambda w: w if shared_arn not in w or arn in w else {**w, arn: 0})
        return arn, str(listeners[0]["LoadBalancerArn"])

    def _leave_listeners(self, own_arn: str) -> None:
        """Take a group's own target group out of every forward; the others keep their weights."""
        for listener in self._listeners_for([own_arn]):
            self._rewrite_forwards(
                listener, lambda w: {a: x for a, x in w.items() if a != own_arn} if len(w) > 1 else w
            )

    def _reweigh(self, target_groups: list[str]) -> None:
        """Every split forward that involves ``target_groups``, weighed from the groups' weights."""
        listeners = self._listeners_for(target_groups)
        if not listeners:
            return
        split = {a for listener in listeners for act in listener.get("DefaultActions", [])
                 for a in (_forward_weights(act) or {}) if len(_forward_weights(act) or {}) > 1}  # fmt: skip
        if not split:
            return
        raws = list(self.asg.paginate("describe_auto_scaling_groups", "AutoScalingGroups"))
        health = self._target_health(split)
        shares: dict[str, float] = {}
        by_capacity: dict[str, float] = {}
        for tg in split:
            shares[tg] = by_capacity[tg] = 0.0
            for raw in raws:
                if tg not in raw.get("TargetGroupARNs", []):
                    continue
                weight = float(_tags(raw.get("Tags")).get(TAG_TRAFFIC_WEIGHT, DEFAULT_TRAFFIC_WEIGHT))
                healthy = [i for i in raw.get("Instances", []) if health[tg].get(i["InstanceId"]) == "healthy"]
                shares[tg] += weight * len(healthy)
                by_capacity[tg] += weight * raw.get("DesiredCapacity", 0)
        if not any(shares.values()):  # nothing healthy yet anywhere: weigh by capacity rather than drop all
            shares = by_capacity
        weights = alb_weights(shares)
        if not any(weights.values()):  # every group weighed 0: ALB needs somewhere to send requests
            weights = {tg: 1 for tg in weights}
        for listener in listeners:
            self._rewrite_forwards(
                listener, lambda w: {a: weights.get(a, x) for a, x in w.items()} if len(w) > 1 else w
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
