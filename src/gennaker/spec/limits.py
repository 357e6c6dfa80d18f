"""Bounds on what Gennaker will read: every document is measured against these before it is parsed.

A ``limits:`` section in ``gennaker.yml`` overrides the defaults. They keep a hostile or careless
document (a 10 MB file, ``/dev/zero``, an alias bomb, nesting thousands deep) from costing more than
a bounded amount of time and memory, and turn it into one clear error instead.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    document_bytes: int = Field(default=1_000_000, ge=1_000, le=100_000_000, description="one YAML document")
    request_bytes: int = Field(
        default=2_000_000, ge=1_000, le=200_000_000, description="one API request body (a document in JSON)"
    )
    yaml_depth: int = Field(default=64, ge=4, le=1_000, description="nested mappings and lists")
    yaml_nodes: int = Field(default=100_000, ge=100, le=10_000_000, description="values, aliases expanded")
    yaml_aliases: int = Field(default=1_000, ge=0, le=1_000_000, description="alias uses (*name)")
    stages: int = Field(default=2_000, ge=1, le=100_000, description="stages in one pipeline")
    parameters: int = Field(default=500, ge=1, le=100_000, description="parameters of one pipeline")


DEFAULT_LIMITS = Limits()
