"""What starts a pipeline besides a person: the ``triggers:`` of a pipeline document (Echo's triggers).

Each type is a small model, checked when the document is loaded; what a trigger means at run time
(verifying a push, firing a schedule) lives in ``gennaker.triggers``. Values a trigger hands to the
execution are read as ``${trigger.*}`` (``trigger.commit``, ``trigger.branch``, ``trigger.parent.outputs.x``).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gennaker.spec.durations import Duration

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
EndStatus = Literal["SUCCEEDED", "FAILED", "CANCELED", "TERMINAL"]


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


def _env(v: str) -> str:
    if not ENV_NAME.match(v):
        raise ValueError(f"'{v}' is not an environment variable name")
    return v


class GitTrigger(_Trigger):
    """A push to ``repository`` on one of ``branches`` (globs) touching one of ``paths`` (globs; all if
    none), delivered to ``POST /hooks/git/{provider}`` and signed with the secret in ``secret_env``."""

    type: Literal["git"]
    provider: Literal["github", "gitlab", "generic"] = "github"
    repository: str = Field(max_length=200)
    branches: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=50)
    paths: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(default_factory=list, max_length=50)
    secret_env: str

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not REPOSITORY.match(v):
            raise ValueError(f"'{v}' is not a repository path like owner/name")
        return v

    @field_validator("secret_env")
    @classmethod
    def _secret(cls, v: str) -> str:
        return _env(v)

    def wants_branch(self, branch: str) -> bool:
        return not self.branches or any(fnmatch.fnmatchcase(branch, b) for b in self.branches)

    def wants_paths(self, paths: list[str]) -> bool:
        return not self.paths or any(fnmatch.fnmatchcase(p, g) for p in paths for g in self.paths)


class CronTrigger(_Trigger):
    """Every time the 5-field ``schedule`` names, in ``timezone``; after downtime, the missed times
    start one execution (``run_once``) or none (``skip``)."""

    type: Literal["cron"]
    schedule: str = Field(max_length=200)
    timezone: str = "UTC"
    missed: Literal["run_once", "skip"] = "run_once"
    params: dict[str, Any] = Field(default_factory=dict, max_length=100)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        from croniter import croniter

        if len(v.split()) != 5 or not croniter.is_valid(v):
            raise ValueError(f"'{v}' is not a 5-field cron expression (minute hour day month weekday)")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{v}' is not a known time zone (e.g. Europe/Berlin)") from None
        return v


class PipelineTrigger(_Trigger):
    """When an execution of ``pipeline`` ends with one of ``status``; its outputs are
    ``${trigger.parent.outputs.<stage>.<name>}``."""

    type: Literal["pipeline"]
    pipeline: str = Field(min_length=1, max_length=100)
    status: list[EndStatus] = Field(default_factory=lambda: list[EndStatus](["SUCCEEDED"]), min_length=1)


class ImageTrigger(_Trigger):
    """A new image in ``account``/``region`` whose name matches ``image_name`` (a glob) and carries
    ``tags``, looked for every ``poll_interval``; the image is ``${trigger.image_id}``."""

    type: Literal["image"]
    account: str = Field(min_length=1, max_length=100)
    region: str = Field(min_length=1, max_length=50)
    image_name: str = Field(min_length=1, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict, max_length=20)
    poll_interval: Duration = Field(default=60.0, ge=5)


class WebhookTrigger(_Trigger):
    """A JSON payload from ``source`` at ``POST /hooks/webhook/{source}``, signed with HMAC-SHA256
    (``X-Gennaker-Signature: sha256=<hex>``); ``params`` maps parameter names to dotted paths in it."""

    type: Literal["webhook"]
    source: str
    secret_env: str
    params: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=dict, max_length=100)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not SOURCE.match(v):
            raise ValueError(f"'{v}' is not a valid source name (letters, digits, '-', '_')")
        return v

    @field_validator("secret_env")
    @classmethod
    def _secret(cls, v: str) -> str:
        return _env(v)


Trigger = Annotated[
    GitTrigger | CronTrigger | PipelineTrigger | ImageTrigger | WebhookTrigger, Field(discriminator="type")
]
