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
