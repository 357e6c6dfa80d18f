"""Suppressions: accepted risks, each with a check pattern, a resource pattern, a reason and an expiry.

File format (YAML)::

    suppressions:
      - check: ha.eip.unassociated          # glob on check ids
        resource: "*eipalloc-0abc*"          # glob on the finding's resource id (ARN or id)
        reason: reserved for the DNS cut-over on 1 July
        expires: 2025-07-15                  # after this date the suppression stops applying
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gennaker.errors import ConfigError, ValidationFailed
from gennaker.ops.findings import Finding
from gennaker.spec.yamlload import load_yaml_file


class Suppression(BaseModel):
    model_config = ConfigDict(extra="forbid")

    check: str
    resource: str = "*"
    reason: str = Field(min_length=1)
    expires: dt.date

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def matches(self, f: Finding) -> bool:
        return fnmatch.fnmatchcase(f.check_id, self.check) and fnmatch.fnmatchcase(f.resource_id, self.resource)


class SuppressionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suppressions: list[Suppression] = Field(default_factory=list)


def load_suppressions(path: str) -> list[Suppression]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"suppressions file not found: {path}")
    if not p.is_file():
        raise ConfigError(f"suppressions file {path} is not a file")
    try:
        # Bounded like a pipeline document: size read at most to the limit, aliases counted expanded.
        data = load_yaml_file(path).value or {}
        return SuppressionFile.model_validate(data).suppressions
    except ValidationFailed as exc:
        raise ConfigError(str(exc.problems[0])) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def apply_suppressions(findings: list[Finding], suppressions: list[Suppression], today: dt.date) -> list[Suppression]:
    """Mark FAIL/UNKNOWN findings that an active suppression covers; return the expired ones."""
    active = [s for s in suppressions if not s.expired(today)]
    for f in findings:
        if f.status in {"FAIL", "UNKNOWN"}:
            hit = next((s for s in active if s.matches(f)), None)
            if hit:
                f.suppressed = {"reason": hit.reason, "expires": hit.expires.isoformat()}
    return [s for s in suppressions if s.expired(today)]
