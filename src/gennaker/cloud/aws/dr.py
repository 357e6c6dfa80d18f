"""What a DR drill needs from AWS in one region: find an application's cross-region copies (images,
EBS snapshots, RDS snapshots and read replicas, replicated buckets) and its Route 53 failover set,
restore from them, and tear down everything tagged ``gennaker:drill=<id>``.

An application's resources are those tagged ``gennaker:application`` or ``Application`` with its
name, or named for it (``shop``, ``shop-…``). Every call goes through the shared ``AwsSessions``
(CloudError on failure). Nothing here deletes or changes what the drill did not create, except a
Route 53 health check the failover scenario inverts: its original setting is tagged on it first,
so the tear-down (by tag) can restore it even after a lost worker.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gennaker.cloud import naming
from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.cloud.provider import TAG_APPLICATION
from gennaker.errors import CloudError

TAG_DRILL = "gennaker:drill"
TAG_INVERTED_FROM = "gennaker:drill-inverted-from"  # on a health check: its Inverted before the drill
APP_TAG_KEYS = (TAG_APPLICATION, "Application")


def _tags(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or []}


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def drill_tags(drill_id: str) -> list[dict[str, str]]:
    return [{"Key": TAG_DRILL, "Value": drill_id}]


def belongs(application: str, tags: dict[str, str], name: str | None = None) -> bool:
    if any(tags.get(k) == application for k in APP_TAG_KEYS):
        return True
    try:
        return bool(name) and naming.parse(str(name)).application == application
    except ValueError:
        return False


@dataclass
class DataCopy:
    """The newest restorable copy of one data store in a region."""

    store: str  # the source's name: volume id, DB instance id, bucket
    kind: str  # ebs, rds, rds_replica, s3
    copy_id: str
    created_at: float | None  # None: the age cannot be told (a replica, a replicated bucket)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "kind": self.kind,
            "copy_id": self.copy_id,
            "created_at": self.created_at,
            "detail": self.detail,
        }


class AwsDrSite:
    """One account and region, as a DR drill reads and uses it."""

    def __init__(self, sessions: AwsSessions, account: str, region: str):
        self.sessions = sessions
        self.account = account
        self.region = region

    def _c(self, service: str) -> AwsClient:
        return self.sessions.client(self.account, self.region, service)

    @property
    def simulated(self) -> bool:
        """The account talks to a custom endpoint (a simulator or a proxy): endpoints of restored
        databases are names nothing answers behind."""
        return bool(self.sessions.account(self.account).endpoint_url)

    # --- images ----------------------------------------------------------------------------------
    def images(self, application: str) -> list[dict[str, Any]]:
        """The application's images owned by this account here, newest first."""
        raws = self._c("ec2").describe_images(Owners=["self"])["Images"]
        mine = [i for i in raws if belongs(application, _tags(i.get("Tags")), i.get("Name"))]
        return sorted(mine, key=lambda i: str(i.get("CreationDate", "")), reverse=True)

    def describe_image(self, image_id: str) -> dict[str, Any] | None:
        try:
            raws = self._c("ec2").describe_images(ImageIds=[image_id])["Images"]
        except CloudError as exc:
            if "NotFound" in exc.code or "Malformed" in exc.code:
                return None
            raise
        return raws[0] if raws else None

    def serving_image(self, application: str) -> dict[str, Any] | None:
        """The image of the application's newest server group here (read only: the primary's)."""
        groups = [
            g
            for g in self._c("autoscaling").paginate("describe_auto_scaling_groups", "AutoScalingGroups")
            if belongs(application, _tags(g.get("Tags")), g.get("AutoScalingGroupName"))
            and TAG_DRILL not in _tags(g.get("Tags"))
        ]
        for g in sorted(groups, key=lambda g: _epoch(g.get("CreatedTime")) or 0.0, reverse=True):
            image_id = _tags(g.get("Tags")).get("gennaker:image")
            lt = g.get("LaunchTemplate") or {}
            if not image_id and lt.get("LaunchTemplateName"):
                versions = self._c("ec2").describe_launch_template_versions(
                    LaunchTemplateName=lt["LaunchTemplateName"], Versions=["$Latest"]
                )["LaunchTemplateVersions"]
                image_id = versions[0]["LaunchTemplateData"].get("ImageId") if versions else None
            if image_id:
                found = self.describe_image(image_id)
                return found or {"ImageId": image_id, "Name": None}
        return None

    # --- data stores -----------------------------------------------------------------------------
    def data_copies(self, application: str) -> list[DataCopy]:
        """The newest restorable copy of each of the application's data stores found here."""
        return self._snapshots(application) + self._db_snapshots(application) + self._buckets(application)

    def _snapshots(self, application: str) -> list[DataCopy]:
        ec2 = self._c("ec2")
        seen: set[str] = set()
        newest: dict[str, DataCopy] = {}
        owner = self.sessions.account(self.account).account_id
        for key in APP_TAG_KEYS:
            for s in ec2.paginate(
                "describe_snapshots",
                "Snapshots",
                OwnerIds=["self"],
                Filters=[{"Name": f"tag:{key}", "Values": [application]}],
            ):
                if s["SnapshotId"] in seen or (owner and s.get("OwnerId") not in (owner, None)):
                    continue  # moto ignores OwnerIds
                seen.add(s["SnapshotId"])
                if s.get("State") != "completed" or TAG_DRILL in _tags(s.get("Tags")):
                    continue
                source = _tags(s.get("Tags")).get("gennaker:source-volume") or s.get("VolumeId") or s["SnapshotId"]
                if source not in newest or (_epoch(s.get("StartTime")) or 0) > (newest[source].created_at or 0):
                    newest[source] = DataCopy(source, "ebs", s["SnapshotId"], _epoch(s.get("StartTime")))
        return list(newest.values())

    def _db_snapshots(self, application: str) -> list[DataCopy]:
        rds = self._c("rds")
        newest: dict[str, DataCopy] = {}
        for s in rds.paginate("describe_db_snapshots", "DBSnapshots"):
            source = s.get("DBInstanceIdentifier") or s["DBSnapshotIdentifier"]
            if s.get("Status") != "available" or not belongs(application, _tags(s.get("TagList")), source):
                continue
            if TAG_DRILL in _tags(s.get("TagList")):
                continue
            at = _epoch(s.get("SnapshotCreateTime"))
            if source not in newest or (at or 0) > (newest[source].created_at or 0):
                newest[source] = DataCopy(source, "rds", s["DBSnapshotIdentifier"], at)
        for db in rds.paginate("describe_db_instances", "DBInstances"):
            src = db.get("ReadReplicaSourceDBInstanceIdentifier")
            if src and belongs(application, _tags(db.get("TagList")), db["DBInstanceIdentifier"]):
                name = src.split(":")[-1]
                newest.setdefault(
                    name,
                    DataCopy(
                        name,
                        "rds_replica",
                        db["DBInstanceIdentifier"],
                        None,
                        f"read replica {db['DBInstanceIdentifier']} ({db.get('DBInstanceStatus')})",
                    ),
                )
        return list(newest.values())

    def _buckets(self, application: str) -> list[DataCopy]:
        s3 = self._c("s3")
        out = []
        for b in s3.list_buckets().get("Buckets", []):
            name = b["Name"]
            try:
                tags = _tags(s3.get_bucket_tagging(Bucket=name).get("TagSet"))
            except CloudError:
                tags = {}  # no tags (NoSuchTagSet): the name decides
            if not belongs(application, tags, name):
                continue
            where = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
            if where != self.region or TAG_DRILL in tags:
                continue
            out.append(DataCopy(name, "s3", name, None, "bucket here (replication lag is not measurable)"))
        return out

    def primary_stores(self, application: str) -> list[dict[str, str]]:
        """The application's data stores here (read only): what should have copies elsewhere."""
        ec2, rds = self._c("ec2"), self._c("rds")
        found = []
        for key in APP_TAG_KEYS:
            for v in ec2.paginate(
                "describe_volumes", "Volumes", Filters=[{"Name": f"tag:{key}", "Values": [application]}]
            ):
                if TAG_DRILL not in _tags(v.get("Tags")):
                    found.append({"store": v["VolumeId"], "kind": "ebs"})
        for db in rds.paginate("describe_db_instances", "DBInstances"):
            if db.get("ReadReplicaSourceDBInstanceIdentifier") or TAG_DRILL in _tags(db.get("TagList")):
                continue
            if belongs(application, _tags(db.get("TagList")), db["DBInstanceIdentifier"]):
                found.append({"store": db["DBInstanceIdentifier"], "kind": "rds"})
        unique = {(f["store"], f["kind"]): f for f in found}
        return list(unique.values())

    # --- restoring -------------------------------------------------------------------------------
    def first_zone(self) -> str:
        return str(self._c("ec2").describe_availability_zones()["AvailabilityZones"][0]["ZoneName"])

    def restore_volume(self, drill_id: str, snapshot_id: str, zone: str) -> dict[str, Any]:
        """A volume from the snapshot, tagged with the drill; the one an earlier attempt made if any."""
        ec2 = self._c("ec2")
        for v in ec2.describe_volumes(
            Filters=[
                {"Name": f"tag:{TAG_DRILL}", "Values": [drill_id]},
                {"Name": "snapshot-id", "Values": [snapshot_id]},
            ]
        )["Volumes"]:
            if v.get("State") not in ("deleting", "deleted"):
                return dict(v)
        return dict(
            ec2.create_volume(
                SnapshotId=snapshot_id,
                AvailabilityZone=zone,
                TagSpecifications=[{"ResourceType": "volume", "Tags": drill_tags(drill_id)}],
            )
        )

    def volume_state(self, volume_id: str) -> dict[str, Any]:
        return dict(self._c("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"][0])

    def attach_volume(self, volume_id: str, instance_id: str, device: str) -> str:
        v = self.volume_state(volume_id)
        for a in v.get("Attachments", []):
            if a.get("InstanceId") == instance_id:
                return str(a.get("State"))
        return str(self._c("ec2").attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)["State"])

    def run_probe_instance(self, drill_id: str, image_id: str, zone: str) -> str:
        """One instance to attach restored volumes to (restore_data has no server group)."""
        ec2 = self._c("ec2")
        for r in ec2.describe_instances(Filters=[{"Name": f"tag:{TAG_DRILL}", "Values": [drill_id]}])["Reservations"]:
            for i in r["Instances"]:
                if i["State"]["Name"] in ("pending", "running"):
                    return str(i["InstanceId"])
        run = ec2.run_instances(
            ImageId=image_id,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            Placement={"AvailabilityZone": zone},
            TagSpecifications=[{"ResourceType": "instance", "Tags": drill_tags(drill_id)}],
        )
        return str(run["Instances"][0]["InstanceId"])

    def restore_db(self, drill_id: str, application: str, snapshot_id: str, index: int) -> dict[str, Any]:
        """Restore a DB instance named for the drill (the same name on every attempt: found again)."""
        rds = self._c("rds")
        ident = f"{application[:30]}-drill-{drill_id[-8:]}-{index}"
        existing = self.db_instance(ident)
        if existing is not None:
            return existing
        return dict(
            rds.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=ident, DBSnapshotIdentifier=snapshot_id, Tags=drill_tags(drill_id)
            )["DBInstance"]
        )

    def db_instance(self, ident: str) -> dict[str, Any] | None:
        try:
            return dict(self._c("rds").describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0])
        except CloudError as exc:
            if exc.code == "DBInstanceNotFound":
                return None
            raise

    def db_answers(self, endpoint: dict[str, Any], timeout: float = 3.0) -> tuple[bool, str]:
        """Whether something accepts connections at the restored database's endpoint."""
        address, port = endpoint.get("Address"), int(endpoint.get("Port") or 0)
        if not address or not port:
            return False, "the restored database has no endpoint"
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return True, f"{address}:{port} accepts connections"
        except OSError as exc:
            return False, f"{address}:{port} does not answer ({exc})"

    # --- load balancing --------------------------------------------------------------------------
    def standby_target_group(self, application: str) -> dict[str, Any] | None:
        """The application's target group here that is not the drill's own (a standing DR stack)."""
        elb = self._c("elbv2")
        groups = list(elb.paginate("describe_target_groups", "TargetGroups"))
        if not groups:
            return None
        arns = [g["TargetGroupArn"] for g in groups]
        tags: dict[str, dict[str, str]] = {}
        for i in range(0, len(arns), 20):
            for d in elb.describe_tags(ResourceArns=arns[i : i + 20])["TagDescriptions"]:
                tags[d["ResourceArn"]] = _tags(d.get("Tags"))
        for g in groups:
            t = tags.get(g["TargetGroupArn"], {})
            if TAG_DRILL not in t and belongs(application, t, g["TargetGroupName"]) and g.get("LoadBalancerArns"):
                return dict(g)
        return None

    def load_balancer(self, arn: str) -> dict[str, Any] | None:
        try:
            return dict(self._c("elbv2").describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0])
        except CloudError as exc:
            if exc.code == "LoadBalancerNotFound":
                return None
            raise

    def load_balancers_by_dns(self) -> dict[str, dict[str, Any]]:
        return {
            str(lb.get("DNSName", "")).lower().rstrip("."): dict(lb)
            for lb in self._c("elbv2").paginate("describe_load_balancers", "LoadBalancers")
        }

    def healthy_targets(self, target_group_arn: str) -> int:
        health = self._c("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
        return sum(1 for d in health["TargetHealthDescriptions"] if d["TargetHealth"]["State"] == "healthy")

    def subnets_for(self, application: str) -> list[dict[str, Any]]:
        """Subnets here for the application: its VPC's (tagged Name=<app> or with its tags), else the
        default VPC's."""
        ec2 = self._c("ec2")
        vpcs = ec2.describe_vpcs()["Vpcs"]
        mine = [v for v in vpcs if belongs(application, _tags(v.get("Tags")), _tags(v.get("Tags")).get("Name"))]
        chosen = mine or [v for v in vpcs if v.get("IsDefault")]
        if not chosen:
            return []
        return list(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [chosen[0]["VpcId"]]}])["Subnets"])

    def security_groups_for(self, application: str, vpc_id: str) -> list[str]:
        raws = self._c("ec2").describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        return [
            g["GroupId"] for g in raws["SecurityGroups"] if g.get("GroupName") in (f"{application}-web", application)
        ]

    def drill_load_balancer(self, drill_id: str, application: str, subnets: list[str], vpc_id: str) -> dict[str, str]:
        """An ALB, a target group and a listener of the drill's own (where no standing one exists)."""
        elb = self._c("elbv2")
        name = f"{application[:12]}-drill-{drill_id[-8:]}"
        try:
            lb = elb.describe_load_balancers(Names=[name])["LoadBalancers"][0]
        except CloudError as exc:
            if exc.code != "LoadBalancerNotFound":
                raise
            lb = elb.create_load_balancer(
                Name=name, Subnets=subnets, Scheme="internet-facing", Type="application", Tags=drill_tags(drill_id)
            )["LoadBalancers"][0]
        try:
            tg = elb.describe_target_groups(Names=[name])["TargetGroups"][0]
        except CloudError as exc:
            if exc.code != "TargetGroupNotFound":
                raise
            tg = elb.create_target_group(
                Name=name,
                Protocol="HTTP",
                Port=8080,
                VpcId=vpc_id,
                HealthCheckPath="/health",
                Tags=drill_tags(drill_id),
            )["TargetGroups"][0]
        if not elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            elb.create_listener(
                LoadBalancerArn=lb["LoadBalancerArn"],
                Protocol="HTTP",
                Port=80,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
            )
        return {
            "load_balancer_arn": lb["LoadBalancerArn"],
            "dns": str(lb.get("DNSName", "")),
            "target_group_arn": tg["TargetGroupArn"],
        }

    # --- Route 53 ---------------------------------------------------------------------------------
    def failover_sets(self, application: str) -> list[dict[str, Any]]:
        """Failover record sets for the application (the record's first label, or its set
        identifier, names it): [{zone_id, name, type, primary: rec, secondary: rec}]."""
        r53 = self._c("route53")
        out: dict[tuple[str, str, str], dict[str, Any]] = {}
        for zone in r53.paginate("list_hosted_zones", "HostedZones"):
            zid = zone["Id"].split("/")[-1]
            for rec in r53.paginate("list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zid):
                role = rec.get("Failover")
                label = rec["Name"].split(".")[0]
                if not role or not (label == application or str(rec.get("SetIdentifier", "")).startswith(application)):
                    continue
                entry = out.setdefault(
                    (zid, rec["Name"], rec["Type"]), {"zone_id": zid, "name": rec["Name"], "type": rec["Type"]}
                )
                entry[role.lower()] = rec
        return list(out.values())

    def health_check(self, check_id: str) -> dict[str, Any] | None:
        try:
            return dict(self._c("route53").get_health_check(HealthCheckId=check_id)["HealthCheck"])
        except CloudError as exc:
            if exc.code == "NoSuchHealthCheck":
                return None
            raise

    def health_check_status(self, check_id: str) -> list[str]:
        obs = self._c("route53").get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
        return [str(o.get("StatusReport", {}).get("Status", "")) for o in obs]

    def invert_health_check(self, drill_id: str, check_id: str, original: bool) -> None:
        """Tag the original setting first (what the tear-down restores), then invert."""
        r53 = self._c("route53")
        r53.change_tags_for_resource(
            ResourceType="healthcheck",
            ResourceId=check_id,
            AddTags=[{"Key": TAG_DRILL, "Value": drill_id}, {"Key": TAG_INVERTED_FROM, "Value": str(original).lower()}],
        )
        r53.update_health_check(HealthCheckId=check_id, Inverted=not original)

    def test_dns_answer(self, zone_id: str, name: str, rtype: str) -> list[str]:
        answer = self._c("route53").test_dns_answer(HostedZoneId=zone_id, RecordName=name, RecordType=rtype)
        return [str(x) for x in answer.get("RecordData", [])]

    # --- tear-down (by tag; every step safe to repeat) ----------------------------------------------
    def drill_resources(self, drill_id: str) -> list[str]:
        """What still exists here tagged with the drill (terminated instances excepted)."""
        ec2, found = self._c("ec2"), []
        flt = [{"Name": f"tag:{TAG_DRILL}", "Values": [drill_id]}]
        for r in ec2.describe_instances(Filters=flt)["Reservations"]:
            found += [
                f"instance {i['InstanceId']}"
                for i in r["Instances"]
                if i["State"]["Name"] not in ("terminated", "shutting-down")
            ]
        found += [
            f"volume {v['VolumeId']}"
            for v in ec2.describe_volumes(Filters=flt)["Volumes"]
            if v.get("State") != "deleted"
        ]
        found += [
            f"launch template {t['LaunchTemplateName']}"
            for t in ec2.describe_launch_templates(Filters=flt)["LaunchTemplates"]
        ]
        for g in self._c("autoscaling").paginate("describe_auto_scaling_groups", "AutoScalingGroups"):
            if _tags(g.get("Tags")).get(TAG_DRILL) == drill_id:
                found.append(f"auto scaling group {g['AutoScalingGroupName']}")
        found += [f"{kind} {arn}" for kind, arn in self._elb_tagged(drill_id)]
        for db in self._c("rds").paginate("describe_db_instances", "DBInstances"):
            if _tags(db.get("TagList")).get(TAG_DRILL) == drill_id and db.get("DBInstanceStatus") != "deleting":
                found.append(f"db instance {db['DBInstanceIdentifier']}")
        return found

    def _elb_tagged(self, drill_id: str) -> list[tuple[str, str]]:
        elb = self._c("elbv2")
        arns = [
            ("load balancer", lb["LoadBalancerArn"]) for lb in elb.paginate("describe_load_balancers", "LoadBalancers")
        ]
        arns += [("target group", g["TargetGroupArn"]) for g in elb.paginate("describe_target_groups", "TargetGroups")]
        out = []
        for i in range(0, len(arns), 20):
            chunk = dict((arn, kind) for kind, arn in arns[i : i + 20])
            for d in elb.describe_tags(ResourceArns=list(chunk))["TagDescriptions"]:
                if _tags(d.get("Tags")).get(TAG_DRILL) == drill_id:
                    out.append((chunk[d["ResourceArn"]], d["ResourceArn"]))
        return out

    def drill_groups(self, drill_id: str) -> list[str]:
        return [
            g["AutoScalingGroupName"]
            for g in self._c("autoscaling").paginate("describe_auto_scaling_groups", "AutoScalingGroups")
            if _tags(g.get("Tags")).get(TAG_DRILL) == drill_id
        ]

    def tear_down(self, drill_id: str, destroy_group: Any) -> list[str]:
        """Delete what the drill made here; ``destroy_group(name)`` is the deploy machinery's own
        destroy (ASG, launch template). Returns what was done, one line each."""
        done: list[str] = []
        for name in self.drill_groups(drill_id):
            destroy_group(name)
            done.append(f"destroyed server group {name}")
        ec2 = self._c("ec2")
        flt = [{"Name": f"tag:{TAG_DRILL}", "Values": [drill_id]}]
        for t in ec2.describe_launch_templates(Filters=flt)["LaunchTemplates"]:
            ec2.delete_launch_template(LaunchTemplateId=t["LaunchTemplateId"])
            done.append(f"deleted launch template {t['LaunchTemplateName']}")
        elb = self._c("elbv2")
        tagged = self._elb_tagged(drill_id)
        for kind, arn in tagged:
            if kind == "load balancer":
                elb.delete_load_balancer(LoadBalancerArn=arn)
                done.append(f"deleted load balancer {arn.split('/')[-2]}")
        for kind, arn in tagged:
            if kind == "target group":
                try:
                    elb.delete_target_group(TargetGroupArn=arn)
                except CloudError as exc:
                    if exc.code != "TargetGroupNotFound":
                        raise
                done.append(f"deleted target group {arn.split('/')[-2]}")
        for v in ec2.describe_volumes(Filters=flt)["Volumes"]:
            for a in v.get("Attachments", []):
                ec2.detach_volume(VolumeId=v["VolumeId"], InstanceId=a["InstanceId"], Force=True)
            ec2.delete_volume(VolumeId=v["VolumeId"])
            done.append(f"deleted volume {v['VolumeId']}")
        ids = [
            i["InstanceId"]
            for r in ec2.describe_instances(Filters=flt)["Reservations"]
            for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")
        ]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            done.append(f"terminated {', '.join(ids)}")
        rds = self._c("rds")
        for db in rds.paginate("describe_db_instances", "DBInstances"):
            if _tags(db.get("TagList")).get(TAG_DRILL) == drill_id and db.get("DBInstanceStatus") != "deleting":
                rds.delete_db_instance(DBInstanceIdentifier=db["DBInstanceIdentifier"], SkipFinalSnapshot=True)
                done.append(f"deleted db instance {db['DBInstanceIdentifier']}")
        return done

    def restore_health_checks(self, drill_id: str) -> list[str]:
        """Put back every health check this drill inverted (global: Route 53)."""
        r53, done = self._c("route53"), []
        for hc in r53.paginate("list_health_checks", "HealthChecks"):
            tags = _tags(
                r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=hc["Id"])["ResourceTagSet"].get(
                    "Tags"
                )
            )
            if tags.get(TAG_DRILL) != drill_id:
                continue
            original = tags.get(TAG_INVERTED_FROM, "false") == "true"
            r53.update_health_check(HealthCheckId=hc["Id"], Inverted=original)
            r53.change_tags_for_resource(
                ResourceType="healthcheck", ResourceId=hc["Id"], RemoveTagKeys=[TAG_DRILL, TAG_INVERTED_FROM]
            )
            done.append(f"health check {hc['Id']} inverted: {str(original).lower()} again")
        return done
