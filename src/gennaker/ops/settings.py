"""The ``ops:`` section of gennaker.yml, validated here (the config module knows nothing of it).

Example::

    ops:
      max_workers: 8
      organization: {management_account: payer, role_name: OrganizationAccountAccessRole}
      rpo_hours: 24
      required_tags: {"*": [Owner, Environment, Application], "ec2.volume": [Owner]}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gennaker.errors import ConfigError


class OrganizationSettings(BaseModel):
    """Discover member accounts through the management account and assume ``role_name`` in each."""

    model_config = ConfigDict(extra="forbid")

    management_account: str  # name of a configured account that can list the organization
    role_name: str = "OrganizationAccountAccessRole"
    regions: list[str] | None = None  # default: the management account's regions
    exclude: list[str] = Field(default_factory=list)  # account ids to skip


class OpsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_workers: int = Field(default=8, ge=1, le=64)
    organization: OrganizationSettings | None = None
    production_environments: list[str] = Field(default_factory=lambda: ["prod", "production"])
    workload_tags: list[str] = Field(default_factory=lambda: ["Application", "Name"])
    asg_min_capacity: int = Field(default=2, ge=1)
    # Recovery point objective for EBS snapshots; null means Trusted Advisor's 7 d warn / 30 d fail.
    rpo_hours: float | None = Field(default=24, gt=0)
    snapshot_warn_days: float = 7
    snapshot_fail_days: float = 30
    dr_copy_max_age_days: float = 7
    # A DR check names a successful DR drill of the item's application this recent (ops/checks/dr.py).
    dr_drill_max_age_days: float = Field(default=90, gt=0)
    failover_factor: float = Field(default=2.0, ge=1)
    required_tags: dict[str, list[str]] = Field(default_factory=lambda: {"*": ["Owner", "Environment", "Application"]})
    password_min_length: int = Field(default=14, ge=6)
    admin_ports: list[int] = Field(default_factory=lambda: [22, 3389])
    # service-quotas codes checked for headroom: name -> (service code, quota code)
    quotas: dict[str, tuple[str, str]] = Field(
        default_factory=lambda: {
            "ec2_vcpus": ("ec2", "L-1216C47A"),
            "elastic_ips": ("ec2", "L-0263D0A3"),
            "application_load_balancers": ("elasticloadbalancing", "L-53DA6B97"),
            "auto_scaling_groups": ("autoscaling", "L-CDE20ADC"),
        }
    )

    def tags_required_for(self, resource_type: str) -> list[str]:
        return self.required_tags.get(resource_type, self.required_tags.get("*", []))

    def is_production(self, environment: str | None) -> bool:
        prod = {e.lower() for e in self.production_environments}
        return environment is not None and environment.lower() in prod


def ops_settings(section: dict[str, Any]) -> OpsSettings:
    try:
        return OpsSettings.model_validate(section or {})
    except ValidationError as exc:
        problems = "; ".join(f"ops.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid ops settings: {problems}") from None
