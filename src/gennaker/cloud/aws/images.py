"""Baking AMIs: builder instance from a base image + user data → image → copies to other regions.

Every step looks for what it makes by the execution and stage tags first, so a bake re-run after a
crash reuses the builder, the image and the copies it already made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gennaker.cloud.aws.session import AwsClient, AwsSessions
from gennaker.cloud.provider import TAG_APPLICATION, TAG_BASE_IMAGE, TAG_EXECUTION, TAG_STAGE, TAG_VERSION
from gennaker.errors import NotFound

TAG_ROLE = "gennaker:role"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


@dataclass(frozen=True)
class BakeRequest:
    application: str
    version: str
    execution_id: str
    stage_id: str
    base_image: str | None = None  # an AMI id
    base_image_name: str | None = None  # or a name pattern, with owners
    base_image_owners: list[str] = field(default_factory=lambda: ["self"])
    instance_type: str = "t3.small"
    user_data: str = ""
    subnet: str | None = None
    security_groups: list[str] = field(default_factory=list)
    instance_profile: str | None = None
    image_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        # Deterministic, so a re-run can find the image by name as well as by tags.
        return self.image_name or f"{self.application}-{self.version}-{self.execution_id[:12]}"

    def ownership(self) -> dict[str, str]:
        return {TAG_EXECUTION: self.execution_id, TAG_STAGE: self.stage_id}

    def image_tags(self, base: str) -> dict[str, str]:
        return {
            **self.tags,
            TAG_APPLICATION: self.application,
            TAG_VERSION: self.version,
            TAG_BASE_IMAGE: base,
            **self.ownership(),
        }


def _filters(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class Bakery:
    def __init__(self, sessions: AwsSessions, account: str, region: str):
        self.sessions = sessions
        self.account = account
        self.region = region

    def ec2(self, region: str | None = None) -> AwsClient:
        return self.sessions.client(self.account, region or self.region, "ec2")

    def resolve_base(self, req: BakeRequest) -> str:
        if req.base_image:
            return req.base_image
        if not req.base_image_name:
            raise ValueError("bake needs base_image (an AMI id) or base_image_name (+ base_image_owners)")
        images = self.ec2().describe_images(
            Owners=req.base_image_owners, Filters=[{"Name": "name", "Values": [req.base_image_name]}]
        )["Images"]
        if not images:
            raise NotFound(
                f"no base image named {req.base_image_name!r} owned by {', '.join(req.base_image_owners)} "
                f"in {self.account}/{self.region}"
            )
        return str(max(images, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))["ImageId"])

    def find_image(self, req: BakeRequest, region: str | None = None) -> dict[str, Any] | None:
        images = self.ec2(region).describe_images(Owners=["self"], Filters=_filters(req.ownership()))["Images"]
        return images[0] if images else None

    def find_builder(self, req: BakeRequest) -> str | None:
        filters = [
            *_filters({**req.ownership(), TAG_ROLE: "builder"}),
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ]
        for reservation in self.ec2().describe_instances(Filters=filters)["Reservations"]:
            for instance in reservation["Instances"]:
                return str(instance["InstanceId"])
        return None

    def launch_builder(self, req: BakeRequest, base: str) -> str:
        found = self.find_builder(req)
        if found:
            return found
        kwargs: dict[str, Any] = {
            "ImageId": base,
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": req.instance_type,
            "UserData": req.user_data,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": _tag_list(
                        {
                            **req.ownership(),
                            TAG_ROLE: "builder",
                            TAG_APPLICATION: req.application,
                            "Name": f"bake {req.name}",
                        }
                    ),
                }
            ],
        }
        if req.subnet:
            kwargs["SubnetId"] = req.subnet
        if req.security_groups:
            kwargs["SecurityGroupIds"] = req.security_groups
        if req.instance_profile:
            kwargs["IamInstanceProfile"] = {"Name": req.instance_profile}
        return str(self.ec2().run_instances(**kwargs)["Instances"][0]["InstanceId"])

    def instance_state(self, instance_id: str) -> str:
        reservations = self.ec2().describe_instances(InstanceIds=[instance_id])["Reservations"]
        return str(reservations[0]["Instances"][0]["State"]["Name"])

    def create_image(self, req: BakeRequest, builder: str, base: str) -> str:
        found = self.find_image(req)
        if found:
            return str(found["ImageId"])
        image = self.ec2().create_image(
            InstanceId=builder,
            Name=req.name,
            TagSpecifications=[{"ResourceType": "image", "Tags": _tag_list(req.image_tags(base))}],
        )
        return str(image["ImageId"])

    def image_state(self, image_id: str, region: str | None = None) -> str:
        images = self.ec2(region).describe_images(ImageIds=[image_id])["Images"]
        return str(images[0].get("State", "pending")) if images else "missing"

    def terminate_builder(self, req: BakeRequest) -> str | None:
        found = self.find_builder(req)
        if found:
            self.ec2().terminate_instances(InstanceIds=[found])
        return found

    def copy_to(self, req: BakeRequest, image_id: str, region: str, base: str) -> str:
        found = self.find_image(req, region)
        if found:
            return str(found["ImageId"])
        copy = self.ec2(region).copy_image(SourceImageId=image_id, SourceRegion=self.region, Name=req.name)
        copy_id = str(copy["ImageId"])
        # Tag right away: the tags are what a re-run finds the copy by.
        self.ec2(region).create_tags(Resources=[copy_id], Tags=_tag_list(req.image_tags(base)))
        return copy_id
