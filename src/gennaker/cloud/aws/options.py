"""What a deploy stage says only to AWS: the launch template's and the Auto Scaling group's fields.

Chosen by ``gennaker.cloud.registry`` when the stage's account is of kind ``aws``, so a field of
another provider (``command``) is named as unknown with its position by ``gennaker validate``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gennaker.spec.durations import Duration


class TargetGroupRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    load_balancer: str | None = None
    target_group: str


class AwsDeployOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_type: str
    subnets: list[str] = Field(default_factory=list)
    vpc: str | None = None
    subnet_tag: str | None = None  # "key" or "key=value", with vpc
    security_groups: list[str] = Field(default_factory=list)
    target_groups: list[str | TargetGroupRef] = Field(default_factory=list)
    health_check_type: Literal["EC2", "ELB"] | None = None  # default: ELB behind target groups
    health_check_grace_period: Duration = 300.0
    user_data: str | None = None
    key_name: str | None = None
    instance_profile: str | None = None

    def target_group_refs(self) -> list[str | dict[str, str]]:
        return [r if isinstance(r, str) else r.model_dump(exclude_none=True) for r in self.target_groups]


class AwsBakeOptions(BaseModel):
    """A bake on AWS: a builder instance from a base image, provisioned by its user data, imaged."""

    model_config = ConfigDict(extra="forbid")

    base_image: str | None = None
    base_image_name: str | None = None
    base_image_owners: list[str] = Field(default_factory=lambda: ["self"])
    instance_type: str = "t3.small"
    user_data: str = ""
    subnet: str | None = None
    security_groups: list[str] = Field(default_factory=list)
    instance_profile: str | None = None
    copy_to_regions: list[str] = Field(default_factory=list)
    # "stopped": the user data shuts the builder down when provisioning is done (the usual way to
    # signal completion); "running": image the builder as soon as it runs.
    builder_ready: Literal["running", "stopped"] = "running"
    bake_timeout: Duration = 3600.0


class AwsFindImageOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owners: list[str] = Field(default_factory=lambda: ["self"])  # account ids, "self", "amazon"
