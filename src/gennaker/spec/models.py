"""Pipeline documents: the common fields every stage accepts, and the pipeline around them.

Stage types add their own fields by subclassing ``StageConfig`` (in ``gennaker.stages``); the loader
is handed the registry of types, so this layer knows no stage type by name.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gennaker.spec.durations import Duration
from gennaker.spec.triggers import Trigger

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


class Retries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=0, ge=0, le=100)
    backoff: Duration = 5.0


class StageConfig(BaseModel):
    """Fields common to every stage type."""

    model_config = ConfigDict(extra="forbid")

    id: str
    type: str
    name: str | None = None
    requires: list[str] = Field(default_factory=list)
    when: str | None = None
    timeout: Duration | None = None
    retries: Retries = Field(default_factory=Retries)
    continue_on_failure: bool = False

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError(f"'{v}' is not a valid stage id (letters, digits, '-', '_'; max 100)")
        return v

    @property
    def display_name(self) -> str:
        return self.name or self.id


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    default: Any = None
    required: bool = False
    description: str | None = None
    options: list[Any] | None = None
    secret: bool = False  # masked in every view, log and output (gennaker.engine.secrets)

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError(f"'{v}' is not a valid parameter name")
        return v

    @model_validator(mode="after")
    def _default_is_an_option(self) -> Parameter:
        if self.options is not None and self.default is not None and self.default not in self.options:
            raise ValueError(f"default {self.default!r} of parameter '{self.name}' is not one of its options")
        # The document is shown to every viewer (and kept in the repository): a value in it is not secret.
        if self.secret and (self.default is not None or self.options is not None):
            raise ValueError(
                f"secret parameter '{self.name}' cannot have a default or options (they are "
                "in the document for anyone to read); pass its value when starting"
            )
        return self


class Concurrency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(default=None, ge=1)


NOTIFICATION_EVENTS = (
    "pipeline.starting",
    "pipeline.complete",
    "pipeline.failed",
    "stage.starting",
    "stage.complete",
    "stage.failed",
    "judgment.awaiting",
    "judgment.continued",
    "judgment.stopped",
)


def event_matches(pattern: str, event: str) -> bool:
    """``stage.*`` matches every stage event; anything else matches itself."""
    return pattern == event or (pattern.endswith(".*") and event.startswith(pattern[:-1]))


class Subscription(BaseModel):
    """Send the pipeline's events ``when`` to a channel declared in gennaker.yml; while a judgment
    waits, say so again every ``remind_every``."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=100)
    when: list[str] = Field(min_length=1, max_length=len(NOTIFICATION_EVENTS))
    remind_every: Duration | None = Field(default=None, ge=1)

    @field_validator("when")
    @classmethod
    def _known_events(cls, v: list[str]) -> list[str]:
        groups = {e.split(".")[0] + ".*" for e in NOTIFICATION_EVENTS}
        unknown = [e for e in v if e not in NOTIFICATION_EVENTS and e not in groups]
        if unknown:
            raise ValueError(
                f"unknown event(s) {unknown} (known: {', '.join([*NOTIFICATION_EVENTS, *sorted(groups)])})"
            )
        return v

    def wants(self, event: str) -> bool:
        return any(event_matches(p, event) for p in self.when)


class PipelineHeader(BaseModel):
    """Everything in a pipeline but its stages (which are validated one by one, per type)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    application: str
    description: str | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    notifications: list[Subscription] = Field(default_factory=list, max_length=50)
    triggers: list[Trigger] = Field(default_factory=list, max_length=50)
    stages: list[Any] = Field(min_length=1)

    @field_validator("name", "application")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError(f"'{v}' is not a valid name (letters, digits, '-', '_')")
        return v

    @field_validator("parameters")
    @classmethod
    def _distinct_parameters(cls, v: list[Parameter]) -> list[Parameter]:
        names = [p.name for p in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"parameter(s) declared twice: {', '.join(dupes)}")
        return v


class Pipeline(BaseModel):
    """A validated pipeline: header fields plus typed stage configs."""

    name: str
    application: str
    description: str | None = None
    parameters: list[Parameter]
    concurrency: Concurrency
    stages: list[StageConfig]
    notifications: list[Subscription] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)
    source: str | None = None  # file it came from
    text: str | None = None  # its YAML, kept with each execution

    def stage(self, stage_id: str) -> StageConfig:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)
