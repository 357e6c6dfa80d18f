"""The ``incidents:`` section of gennaker.yml: priority rules, escalation policies, SNS intake, polling.

Example::

    incidents:
      default_priority: P3
      quiet_period: 5m               # every alarm back to OK this long before the incident resolves
      channels: [ops-webhook]        # notified when an incident opens or resolves (unless a rule says)
      business_hours: {timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}
      rules:                         # the first rule that matches decides; unset fields keep the defaults
        - name: prod-critical
          match: {tags: {environment: prod}, criticality: [high]}
          priority: P1
          escalation: oncall
        - name: night-low
          match: {criticality: [low], business_hours: false}
          priority: P5
          dedup_key: "app:{application}"   # merge every alarm of an application into one incident
      escalation_policies:
        oncall:
          levels:
            - {targets: {users: [alice], channels: [pager]}, delay: 10m}
            - {targets: {roles: [shop:operator], channels: [pager, ops-email]}, delay: 15m}
          loops: 1                   # after the last level, start over this many more times
          priorities: [P1, P2, P3]   # lower priorities notify level 1 only and never escalate
      contacts: {alice: [alice-email]}   # the channels that reach a user or role named as a target
      sns: {accept_unsigned: false}
      poll: {accounts: [prod], every: 60s}
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gennaker.errors import ConfigError
from gennaker.spec.durations import Duration

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4", "P5")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BusinessHours(_Model):
    timezone: str = "UTC"
    days: list[Day] = Field(default_factory=lambda: list(WEEKDAYS))
    start: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="18:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v

    def contains(self, at: float) -> bool:
        """Whether the instant ``at`` (epoch seconds) falls in business hours, in their time zone."""
        local = datetime.fromtimestamp(at, ZoneInfo(self.timezone))
        if DAYS[local.weekday()] not in self.days:
            return False
        start = time.fromisoformat(self.start)
        now = local.time()
        return now >= start if self.end == "24:00" else start <= now < time.fromisoformat(self.end)


class RuleMatch(_Model):
    """Every criterion given must hold; an empty match matches every alarm."""

    alarm: str | None = Field(default=None, max_length=255)  # a glob on the alarm's name: "shop-*"
    tags: dict[str, str] = Field(default_factory=dict)  # alarm tags; values are globs ("*": present)
    criticality: list[str] | None = None  # the criticality tag's value is one of these
    business_hours: bool | None = None  # true: only in business hours; false: only outside them
    sources: list[Literal["sns", "poll", "condition"]] | None = None
    accounts: list[str] | None = None  # account names or ids
    applications: list[str] | None = None


class Rule(_Model):
    name: str = Field(pattern=f"^{_NAME}$")
    match: RuleMatch = Field(default_factory=RuleMatch)
    priority: Priority | None = None
    # A template: {alarm}, {account}, {region}, {application}, {tag:KEY}. Default: the alarm itself.
    dedup_key: str | None = Field(default=None, max_length=255)
    escalation: str | None = None  # an escalation policy's name
    channels: list[str] | None = None  # notified when the incident opens and resolves


class Targets(_Model):
    users: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)

    def names(self) -> list[str]:
        return [*self.users, *self.roles]


class EscalationLevel(_Model):
    targets: Targets
    delay: Duration = Field(default=600.0, ge=0)  # before the next level is notified, if nobody acks


class EscalationPolicy(_Model):
    levels: list[EscalationLevel] = Field(min_length=1, max_length=20)
    loops: int = Field(default=0, ge=0, le=9)  # PagerDuty's num_loops: repeats after the first pass
    priorities: list[Priority] | None = None  # which priorities escalate past level 1 (None: all)

    def escalates(self, priority: str) -> bool:
        return self.priorities is None or priority in self.priorities


class SnsSettings(_Model):
    """The ``POST /hooks/sns`` endpoint. Real SNS messages are signed; the signing certificate is
    fetched over https from a host matching ``cert_hosts``, and only from there."""

    accept_unsigned: bool = False  # the simulator's unsigned messages, from loopback clients only
    cert_hosts: list[str] = Field(default_factory=lambda: [r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"])
    subscribe_hosts: list[str] = Field(default_factory=lambda: [r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"])
    sandbox: bool = False  # SubscribeURL may be any http(s) URL (the simulator's), from loopback only
    ca_file: str | None = None  # a private CA for the certificate's https host (tests)
    topics: list[str] | None = None  # accepted TopicArns (None: any)
    max_body: int = Field(default=262_144, ge=1024, le=2_000_000)  # SNS messages are at most 256 KiB
    timeout: Duration = Field(default=5.0, gt=0, le=60)

    @field_validator("cert_hosts", "subscribe_hosts")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {pattern!r}: {exc}") from None
        return v


class PollSettings(_Model):
    accounts: list[str] = Field(default_factory=list)  # AWS accounts whose alarms are read
    every: Duration = Field(default=60.0, ge=0.05)


class IncidentSettings(_Model):
    default_priority: Priority = "P3"
    quiet_period: Duration = Field(default=300.0, ge=0)
    channels: list[str] = Field(default_factory=list)
    escalation: str | None = None  # the policy of incidents no rule gives one
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    criticality_tag: str = "criticality"
    application_tag: str = "application"
    rules: list[Rule] = Field(default_factory=list, max_length=500)
    escalation_policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    contacts: dict[str, list[str]] = Field(default_factory=dict)
    sns: SnsSettings = Field(default_factory=SnsSettings)
    poll: PollSettings = Field(default_factory=PollSettings)
    link_base: str | None = Field(default=None, pattern=r"^https?://")  # the console's address, for links

    @model_validator(mode="after")
    def _policies_exist(self) -> IncidentSettings:
        names = [("incidents.escalation", self.escalation)] + [(f"rule {r.name}", r.escalation) for r in self.rules]
        for where, policy in names:
            if policy is not None and policy not in self.escalation_policies:
                known = ", ".join(sorted(self.escalation_policies)) or "none declared"
                raise ValueError(f"{where}: unknown escalation policy '{policy}' (known: {known})")
        return self


def incident_settings(section: dict[str, Any] | IncidentSettings | None) -> IncidentSettings:
    """The validated section (a ConfigError naming the first problem otherwise)."""
    if isinstance(section, IncidentSettings):
        return section
    try:
        return IncidentSettings.model_validate(section or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"gennaker.yml incidents{'.' + where if where else ''}: {err['msg']}") from None
