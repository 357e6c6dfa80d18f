"""What a deploy stage says only to the local provider: the command its instances run, their
environment, and the account's load balancers they join.

Chosen by ``gennaker.cloud.registry`` when the stage's account is of kind ``local``, so an AWS
field (``instance_type``) on a local account is named as unknown with its position.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LocalDeployOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1)  # run in the unpacked artifact; each instance gets $PORT
    env: dict[str, str] = Field(default_factory=dict)
    load_balancers: list[str] = Field(default_factory=list)  # names declared in the account


class LocalBakeOptions(BaseModel):
    """A bake on this machine: a directory packaged into a content-addressed artifact."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)  # a directory, relative to the pipeline file
