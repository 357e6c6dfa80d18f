"""The ``alarms:`` section of gennaker.yml, validated here (the config module keeps it as a mapping,
as it does ``ops:``).

Example::

    alarms:
      topic: "arn:aws:sns:{region}:{account_id}:gennaker-alarms"   # or --topic
      tier_tag: criticality            # a resource's business tier: criticality=high|medium|low
      default_tier: medium             # for resources without the tag (or with an unknown value)
      tiers:
        high: {alb_target_5xx_rate_pct: 0.5}
        low: {rds_replica_lag_s: null}  # null: no such alarm for this tier
      conditions:                      # kind: local accounts: conditions Gennaker evaluates itself
        - {name: shop-5xx, account: local, application: shop, source: haproxy,
           query: http_5xx_rate, op: ">", threshold: 0.02, for: 30s}
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gennaker.errors import ConfigError
from gennaker.metrics.conditions import Condition
from gennaker.ops.alarms.recommendations import DEFAULT_TIERS, THRESHOLDS
from gennaker.spec.durations import Duration

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A topic ARN, possibly a template over {region} and {account_id} (one topic per account and region:
# CloudWatch notifies topics of the alarm's own region only).
TOPIC = re.compile(r"arn:aws(-cn|-us-gov)?:sns:([a-z0-9-]+|\{region\}):([0-9]{12}|\{account_id\}):[A-Za-z0-9_-]{1,256}")


class ConditionSettings(Condition):
    """One alarm condition of a ``kind: local`` account: a metric condition (``metrics.conditions``,
    validated there: source, query, op, threshold, ``for``, step) over the application's server
    groups in rotation, which Gennaker evaluates itself and feeds to the incidents as an alarm."""

    name: str = Field(pattern=NAME.pattern)  # the alarm's name: required, unlike a watch's condition
    account: str = Field(min_length=1, max_length=100)
    application: str = Field(min_length=1, max_length=100)
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)  # for the incident rules


class AlarmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str | None = Field(default=None, max_length=400)
    tier_tag: str = Field(default="criticality", min_length=1, max_length=128)
    default_tier: str = "medium"
    tiers: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    evaluate_every: Duration = Field(default=10.0, gt=0)  # local conditions; at most their step
    conditions: list[ConditionSettings] = Field(default_factory=list, max_length=1000)

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        if v is not None and not TOPIC.fullmatch(v):
            raise ValueError(f"{v!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME; {{region}} allowed)")
        return v

    @field_validator("tiers")
    @classmethod
    def _known_thresholds(cls, v: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
        for tier, values in v.items():
            if not NAME.fullmatch(tier):
                raise ValueError(f"tier name {tier!r} is not a name (letters, digits, '-', '_', '.')")
            unknown = sorted(set(values) - set(THRESHOLDS))
            if unknown:
                raise ValueError(
                    f"tier {tier}: unknown threshold(s) {unknown} (known: {', '.join(sorted(THRESHOLDS))})"
                )
        return v

    @model_validator(mode="after")
    def _default_tier_exists(self) -> AlarmSettings:
        if self.default_tier not in self.tier_names:
            raise ValueError(f"default_tier {self.default_tier!r} is not a tier ({', '.join(self.tier_names)})")
        names = [c.name for c in self.conditions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"condition name(s) used twice: {', '.join(dupes)}")
        return self

    @property
    def tier_names(self) -> list[str]:
        return sorted(set(DEFAULT_TIERS) | set(self.tiers))

    def thresholds(self, tier: str) -> dict[str, float | None]:
        """A tier's thresholds: the configured ones over the built-in tier of that name (a new tier
        starts from the default tier)."""
        base = DEFAULT_TIERS.get(tier) or DEFAULT_TIERS.get(self.default_tier) or DEFAULT_TIERS["medium"]
        return {**base, **self.tiers.get(tier, {})}

    def tier_of(self, tags: dict[str, str]) -> tuple[str, str | None]:
        """(tier, note): the tier the resource's tag names, or the default tier and why."""
        value = tags.get(self.tier_tag)
        if value is None:
            return self.default_tier, f"no {self.tier_tag} tag: {self.default_tier}"
        tier = value.strip().lower()
        if tier in self.tier_names:
            return tier, None
        return self.default_tier, f"{self.tier_tag}={value} is not a tier: {self.default_tier}"


def alarm_settings(section: dict[str, Any] | None) -> AlarmSettings:
    try:
        return AlarmSettings.model_validate(section or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"alarms.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".replace("alarms.: ", "alarms: ")
            for e in exc.errors()
        )
        raise ConfigError(f"invalid alarms settings: {problems}") from None
