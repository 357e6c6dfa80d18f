"""The configuration file ``gennaker.yml``: accounts, and one section per subsystem.

Each subsystem validates its own section with its own model (``ops``, ``auth``, ...), so this module
stays the one place that knows the file's outer shape and nothing of what is inside the sections.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gennaker.errors import ConfigError, ValidationFailed
from gennaker.spec.durations import Duration
from gennaker.spec.limits import Limits
from gennaker.spec.validation import pydantic_problems
from gennaker.spec.yamlload import Located, load_yaml, load_yaml_file


class LocalHealthCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "/up"
    interval: Duration = 1.0
    timeout: Duration = 5.0


class LocalLoadBalancer(BaseModel):
    """A load balancer of a ``local`` account: where it listens, how it checks its servers."""

    model_config = ConfigDict(extra="forbid")

    listen: str  # "127.0.0.1:8088"
    health: LocalHealthCheck = Field(default_factory=LocalHealthCheck)


class Account(BaseModel):
    """One account Gennaker may act in: AWS (``kind: aws``, the default; credentials from the
    standard AWS chain) or this machine (``kind: local``: processes behind HAProxy)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["aws", "local"] = "aws"  # picks the provider (gennaker.cloud.registry)
    regions: list[str] = Field(default_factory=lambda: ["us-east-1"], min_length=1)
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    endpoint_url: str | None = None
    account_id: str | None = None
    dr_region: str | None = None
    environment: str | None = None
    # Static keys are for simulated AWS (the sandbox) only; real accounts use the credential chain.
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)  # botocore retries (default 8, adaptive)
    # kind: local only
    load_balancers: dict[str, LocalLoadBalancer] = Field(default_factory=dict)
    state_dir: str | None = None  # default: .gennaker/local/<account> beside the configuration file

    @model_validator(mode="after")
    def _local_region(self) -> Account:
        if self.kind == "local" and "regions" not in self.model_fields_set:
            self.regions = ["local"]  # one machine, one region
        return self


class _Channel(BaseModel):
    """Fields every notification channel has. Secrets are never in the file: a channel names the
    environment variable that holds one (``secret_env``, ``password_env``, ``url_env``)."""

    model_config = ConfigDict(extra="forbid")

    timeout: Duration = Field(default=10.0, gt=0, le=120)  # every network call of a delivery


class WebhookChannel(_Channel):
    """JSON POSTed to ``url``; with ``secret_env``, signed: ``X-Gennaker-Signature: sha256=<hex HMAC>``."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", max_length=2000)
    secret_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class SlackChannel(_Channel):
    """A Slack incoming webhook. Its URL is a credential: give it inline only for a local receiver."""

    type: Literal["slack"]
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    url_env: str | None = None

    @model_validator(mode="after")
    def _one_url(self) -> SlackChannel:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a slack channel needs exactly one of url or url_env")
        return self


class EmailChannel(_Channel):
    """SMTP: STARTTLS when the server offers it (``starttls: auto``), always (``required``: refuse to
    send otherwise) or never (``off``, loopback relays only)."""

    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1, max_length=100)
    starttls: Literal["auto", "required", "off"] = "auto"
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    ca_file: str | None = None  # a private CA for the server's certificate (else the system's)


class SnsChannel(_Channel):
    """Publish to an SNS topic (which fans out to email, SMS, …) with a configured account's credentials."""

    type: Literal["sns"]
    topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:")
    account: str
    region: str | None = None  # default: the topic ARN's region


NotificationChannel = Annotated[WebhookChannel | SlackChannel | EmailChannel | SnsChannel, Field(discriminator="type")]


class PrometheusSettings(BaseModel):
    """``metrics: prometheus:``: the Prometheus HTTP API a canary's ``prometheus`` metrics query."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)  # http(s)://host:port[/prefix], e.g. http://127.0.0.1:9090
    timeout: Duration = 10.0  # per request

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:9090, not {v[:100]!r}")
        try:
            parts.port  # noqa: B018 (a port out of range raises here)
        except ValueError:
            raise ValueError(f"has no valid port: {v[:100]!r}") from None
        return v.strip().rstrip("/")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not 0 < v <= 300:
            raise ValueError("must be more than 0 and at most 5m")
        return v


class MetricsSettings(BaseModel):
    """The ``metrics:`` section: metric sources that need settings (haproxy and CloudWatch come from
    the accounts)."""

    model_config = ConfigDict(extra="forbid")

    prometheus: PrometheusSettings | None = None


class NotificationSettings(BaseModel):
    """The ``notifications:`` section: channels by name, and how deliveries are retried."""

    model_config = ConfigDict(extra="forbid")

    channels: dict[str, NotificationChannel] = Field(default_factory=dict)
    max_attempts: int = Field(default=8, ge=1, le=50)
    backoff: Duration = Field(default=2.0, gt=0)  # after the first failure; doubled each time
    backoff_max: Duration = Field(default=300.0, gt=0)

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [n for n in v if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", n)]
        if bad:
            raise ValueError(f"channel name(s) {bad} are not names (letters, digits, '-', '_', '.'; max 100)")
        return v


class CostTags(BaseModel):
    """The cost-allocation tag keys that name an application and an environment."""

    model_config = ConfigDict(extra="forbid")

    application: str = Field(default="gennaker:application", min_length=1, max_length=128)
    environment: str = Field(default="gennaker:environment", min_length=1, max_length=128)


class CostBudgets(BaseModel):
    """Monthly budgets ``gennaker budgets apply`` keeps (USD limits by account name and by application)
    and where their notifications go (an SNS topic and/or an email; alerts at ``alert_percent`` of
    actual spend and at 100 % of the forecast)."""

    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    applications: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    alert_percent: float = Field(default=80.0, gt=0, le=1000)


class CostSettings(BaseModel):
    """The ``costs:`` section: where costs are read (Cost Explorer, or FOCUS 1.0 parquet files under an
    S3 prefix read through ``account``), the tag keys, the per-instance-type hourly rates that price a
    deploy's extra group, and the untagged share the audit tolerates."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["cost_explorer", "focus"] = "cost_explorer"
    uri: str | None = Field(default=None, max_length=2000)  # focus: s3://bucket/prefix/ (or a local dir)
    account: str | None = None  # whose credentials call Cost Explorer / read the bucket (default: the first)
    tags: CostTags = Field(default_factory=CostTags)
    rates: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)  # instance type -> USD per hour
    untagged_threshold: float = Field(default=0.1, ge=0, le=1)
    budgets: CostBudgets = Field(default_factory=CostBudgets)

    @model_validator(mode="after")
    def _focus_uri(self) -> CostSettings:
        if self.source == "focus" and not self.uri:
            raise ValueError("costs: source focus needs uri (s3://bucket/prefix/)")
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, Account] = Field(default_factory=dict)
    ops: dict[str, Any] = Field(default_factory=dict)
    alarms: dict[str, Any] = Field(default_factory=dict)  # validated by gennaker.ops.alarms.settings
    incidents: dict[str, Any] = Field(default_factory=dict)  # validated by gennaker.ops.incidents.settings
    auth: dict[str, Any] = Field(default_factory=dict)
    server: dict[str, Any] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)  # sizes of documents and requests; see spec/limits.py
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)  # metric sources' settings
    costs: CostSettings = Field(default_factory=CostSettings)  # see gennaker.ops.costs
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _sns_accounts_exist(self) -> Config:
        for name, ch in self.notifications.channels.items():
            if isinstance(ch, SnsChannel) and ch.account not in self.accounts:
                known = ", ".join(sorted(self.accounts)) or "none configured"
                raise ValueError(
                    f"notification channel '{name}' publishes with unknown account '{ch.account}' (known: {known})"
                )
        return self

    def account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(sorted(self.accounts)) or "none configured"
            raise ConfigError(f"unknown account '{name}' (known: {known})") from None


def parse_config(located: Located) -> Config:
    if located.value is None:
        return Config(source=located.file)
    if not isinstance(located.value, dict):
        raise ValidationFailed([located.problem((), "the configuration must be a mapping")])
    try:
        cfg = Config.model_validate(located.value)
    except ValidationError as exc:
        raise ValidationFailed(pydantic_problems(exc, located)) from None
    cfg.source = located.file
    return cfg


def load_config(path: str | None = None) -> Config:
    """Load the config named by ``path``, ``$GENNAKER_CONFIG`` or ``./gennaker.yml``; empty if none."""
    explicit = path or os.environ.get("GENNAKER_CONFIG")
    candidate = explicit or "gennaker.yml"
    if not Path(candidate).exists():
        if explicit:
            raise ConfigError(f"configuration file not found: {explicit}")
        return Config()
    return parse_config(load_yaml_file(candidate))


def config_from_text(text: str, file: str = "<config>") -> Config:
    return parse_config(load_yaml(text, file))
