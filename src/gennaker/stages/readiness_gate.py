"""``readiness_gate``: audit what a deploy targets and fail the stage on failing findings.

Scope: the listed accounts/regions (default: all configured), optionally narrowed to resources tagged
with the pipeline's application. The stage fails when a finding at or above ``fail_on`` fails
(UNKNOWN too with ``strict``); it outputs the score, the counts and the audit id (stored, so the
report can be opened later).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gennaker.ops.audit import AuditResult, score
from gennaker.ops.findings import Finding, at_least
from gennaker.ops.service import audit_and_store
from gennaker.ops.settings import ops_settings
from gennaker.spec.durations import Duration
from gennaker.spec.models import StageConfig
from gennaker.stages.base import StageType, Task, TaskContext, TaskResult


class ReadinessGateConfig(StageConfig):
    accounts: list[str] | None = None
    regions: list[str] | None = None
    checks: list[str] | None = None  # id globs; default: every check
    application_scoped: bool = Field(default=False, description="Only resources tagged with the application")
    application_tag: str = "Application"
    fail_on: Literal["critical", "high", "medium", "low", "info"] = "high"
    strict: bool = False
    max_age: Duration | None = None  # reuse a snapshot this young


def application_findings(result: AuditResult, application: str, tag: str = "Application") -> list[Finding]:
    """Findings about resources (or workloads) tagged ``tag=application``; account-wide ones excluded."""
    refs = {r.ref for r in result.snapshot.resources if r.tags.get(tag) == application}
    workload = f"{tag}={application}"
    return [f for f in result.findings if f.resource_id in refs or f.resource_id == workload]


def _blocking(findings: list[dict[str, Any]], fail_on: str, strict: bool) -> list[dict[str, Any]]:
    bad = {"FAIL", "UNKNOWN"} if strict else {"FAIL"}
    return [f for f in findings if f["status"] in bad and not f.get("suppressed") and at_least(f["severity"], fail_on)]


class ReadinessGate(StageType):
    type = "readiness_gate"
    Config = ReadinessGateConfig
    description = "Audit operations readiness of the deploy's accounts/regions; fail on findings."

    def tasks(self, config: Any) -> list[Task]:
        return [Task("audit", self.audit)]

    def audit(self, ctx: TaskContext) -> TaskResult:
        cfg: ReadinessGateConfig = ctx.config
        svc = ctx.services
        # Each attempt audits afresh (a retry after a fix must see the fix); the audit is stored.
        result = audit_and_store(
            svc.db,
            svc.aws,
            ops_settings(svc.config.ops),
            checks=cfg.checks,
            accounts=cfg.accounts,
            regions=cfg.regions,
            max_age_s=cfg.max_age,
            source=f"pipeline:{ctx.execution_id}/{ctx.stage_id}",
        )
        scoped = (
            application_findings(result, ctx.application, cfg.application_tag)
            if cfg.application_scoped
            else result.findings
        )
        findings = [f.to_dict() for f in scoped]
        ctx.log(f"audit {result.id}: {len(findings)} findings in scope")
        counts = {
            s: sum(1 for f in findings if f["status"] == s and not f.get("suppressed"))
            for s in ("PASS", "FAIL", "UNKNOWN", "NOT_APPLICABLE")
        }
        outputs: dict[str, Any] = {
            "audit_id": result.id,
            "score": score([Finding(**f) for f in findings]),
            "counts": counts,
        }
        blocking = _blocking(findings, cfg.fail_on, cfg.strict)
        outputs["blocking"] = len(blocking)
        if blocking:
            worst = ", ".join(sorted({f["check_id"] for f in blocking})[:5])
            return TaskResult.failed(
                f"{len(blocking)} finding(s) at or above {cfg.fail_on} fail ({worst})", outputs=outputs
            )
        return TaskResult.succeeded(
            outputs=outputs,
            message=f"readiness score {outputs['score']:g}, nothing at or above {cfg.fail_on}",
        )
