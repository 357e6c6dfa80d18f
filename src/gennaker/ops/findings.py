"""Findings: what a check says about one resource (or account, or workload)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["PASS", "FAIL", "UNKNOWN", "NOT_APPLICABLE"]
STATUSES: tuple[Status, ...] = ("PASS", "FAIL", "UNKNOWN", "NOT_APPLICABLE")
Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # info 0 … critical 4
PILLARS = {
    "ha": "High availability",
    "mon": "Monitoring and incidents",
    "dr": "DR and backup",
    "golive": "Accounts, cost, assets, security",
}


def score_text(value: float | None) -> str:
    """A score for people: n/a when nothing passed or failed (there was nothing to score)."""
    return "n/a" if value is None else f"{value:g}"


def at_least(severity: str, threshold: str) -> bool:
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[threshold]


@dataclass
class Finding:
    check_id: str
    status: Status
    severity: Severity
    pillar: str
    account: str
    region: str
    resource_type: str
    resource_id: str
    message: str
    remediation: dict[str, str]
    suppressed: dict[str, str] | None = None  # {"reason", "expires"} when a suppression applies

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["suppressed"] is None:
            del d["suppressed"]
        return d
