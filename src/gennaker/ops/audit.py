"""The audit: collect (or reuse) a snapshot, run the selected checks, apply suppressions, score."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import gennaker
from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.checks import BY_ID, needed_types, select
from gennaker.ops.checks.base import Check, Inventory, Result
from gennaker.ops.collect import Progress, collect
from gennaker.ops.findings import PILLARS, STATUSES, Finding, at_least
from gennaker.ops.model import GLOBAL, Failure, Snapshot
from gennaker.ops.organization import discover_accounts
from gennaker.ops.settings import OpsSettings
from gennaker.ops.suppressions import Suppression, apply_suppressions

WEIGHTS = {"critical": 10, "high": 5, "medium": 3, "low": 1, "info": 0}


def _finding(check: Check, r: Result) -> Finding:
    return Finding(
        check.id,
        r.status,
        r.severity or check.severity,
        check.pillar,
        r.subject.account,
        r.subject.region,
        r.subject.type,
        r.subject.ref,
        r.message,
        {"text": check.remediation, "cli": check.cli},
    )


def _unknowns(check: Check, failures: list[Failure], snapshot: Snapshot) -> list[Finding]:
    by_scope: dict[tuple[str, str], list[Failure]] = defaultdict(list)
    for f in failures:
        by_scope[(f.account, f.region)].append(f)
    out = []
    for (account, region), fs in sorted(by_scope.items()):
        info = snapshot.accounts.get(account)
        out.append(
            Finding(
                check.id,
                "UNKNOWN",
                check.severity,
                check.pillar,
                account,
                region,
                "scope",
                f"{(info.account_id if info else None) or account}/{region}",
                "; ".join(f.reason() for f in fs),
                {"text": check.remediation, "cli": check.cli},
            )
        )
    return out


def evaluate(
    snapshot: Snapshot,
    settings: OpsSettings,
    checks: list[Check],
    drills: dict[str, list[dict[str, Any]]] | None = None,
) -> list[Finding]:
    by_type = snapshot.by_type()
    findings: list[Finding] = []
    for check in checks:
        failed = [f for f in snapshot.failures if f.type in check.needs]
        missing = [t for t in check.needs if t not in snapshot.types]
        inv = Inventory(by_type, snapshot.accounts, snapshot.failures, snapshot.created_at, check.needs, drills)
        results = [_finding(check, r) for r in check.fn(inv, settings)] if not missing else []
        results += _unknowns(check, failed, snapshot)
        if missing:
            results += [
                Finding(
                    check.id,
                    "UNKNOWN",
                    check.severity,
                    check.pillar,
                    "*",
                    "*",
                    "snapshot",
                    snapshot.id,
                    f"snapshot did not collect {', '.join(missing)}",
                    {"text": check.remediation, "cli": check.cli},
                )
            ]
        if not results:
            results = [
                Finding(
                    check.id,
                    "NOT_APPLICABLE",
                    check.severity,
                    check.pillar,
                    a.name,
                    GLOBAL,
                    "account",
                    a.account_id or a.name,
                    "nothing to evaluate in scope",
                    {"text": check.remediation, "cli": check.cli},
                )
                for a in inv.accounts
            ]
        findings.extend(results)
    return findings


def score(findings: list[Finding]) -> float | None:
    """Severity-weighted share of PASS among PASS and FAIL (suppressed findings left out), 0-100;
    None when nothing passed or failed: an audit that could evaluate nothing has no score, not 100."""
    counted = [f for f in findings if f.status in {"PASS", "FAIL"} and not f.suppressed]
    if not counted:
        return None
    total = sum(WEIGHTS[f.severity] for f in counted)
    passed = sum(WEIGHTS[f.severity] for f in counted if f.status == "PASS")
    # only info-severity findings (weight 0) counted: all of them passing is 100, any failing is 0
    if not total:
        return 100.0 if all(f.status == "PASS" for f in counted) else 0.0
    return round(100.0 * passed / total, 1)


@dataclass
class AuditResult:
    id: str
    generated_at: dt.datetime
    snapshot: Snapshot
    findings: list[Finding]
    checks: list[str]
    expired_suppressions: list[Suppression] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        by_pillar: dict[str, dict[str, Any]] = {}
        for pillar, title in PILLARS.items():
            fs = [f for f in self.findings if f.pillar == pillar]
            counts = Counter(f.status for f in fs if not f.suppressed)
            by_pillar[pillar] = {
                "title": title,
                "score": score(fs),
                **{s: counts.get(s, 0) for s in STATUSES},
                "SUPPRESSED": sum(1 for f in fs if f.suppressed),
            }
        counts = Counter(f.status for f in self.findings if not f.suppressed)
        by_status: dict[str, int] = {s: counts.get(s, 0) for s in STATUSES}
        by_status["SUPPRESSED"] = sum(1 for f in self.findings if f.suppressed)
        return {"score": score(self.findings), "by_status": by_status, "by_pillar": by_pillar}

    def blocking(self, fail_on: str, strict: bool = False) -> list[Finding]:
        """Findings that make the audit fail: FAIL (and UNKNOWN with strict) at or above ``fail_on``."""
        bad = {"FAIL", "UNKNOWN"} if strict else {"FAIL"}
        return [f for f in self.findings if f.status in bad and not f.suppressed and at_least(f.severity, fail_on)]

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": "gennaker",
            "version": gennaker.__version__,
            "generated_at": self.generated_at.isoformat(),
            "audit_id": self.id,
            "snapshot_id": self.snapshot.id,
            "scope": {"accounts": sorted(self.snapshot.accounts), "regions": self.snapshot.regions},
            "summary": self.summary,
            "checks": [BY_ID[c].metadata() for c in self.checks],
            "expired_suppressions": [s.model_dump(mode="json") for s in self.expired_suppressions],
            "collection_failures": [vars(f) for f in self.snapshot.failures],
            "findings": [f.to_dict() for f in self.findings],
        }


def run_audit(
    sessions: AwsSessions,
    settings: OpsSettings,
    *,
    checks: list[str] | None = None,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    suppressions: list[Suppression] | None = None,
    snapshot: Snapshot | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    drills: dict[str, list[dict[str, Any]]] | None = None,
) -> AuditResult:
    """Audit ``snapshot`` if given (reuse), else collect exactly the types the chosen checks need."""
    chosen = select(checks)
    if snapshot is None:
        if accounts is None:
            discover_accounts(sessions, settings)
        snapshot = collect(
            sessions,
            settings,
            accounts=accounts,
            regions=regions,
            types=needed_types(chosen),
            progress=progress,
        )
    findings = evaluate(snapshot, settings, chosen, drills)  # drills: ops/drill_facts.py
    when = now or dt.datetime.now(dt.UTC)
    expired = apply_suppressions(findings, suppressions or [], when.date())
    return AuditResult(str(uuid.uuid4()), when, snapshot, findings, [c.id for c in chosen], expired)
