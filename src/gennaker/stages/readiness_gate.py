"""``readiness_gate``: audit what a deploy targets and fail the stage on failing findings.

Scope: the listed accounts/regions (default: all configured), optionally narrowed to resources tagged
with the pipeline's application. Narrowing keeps what is about the whole account or a scope
(organization, budgets, root MFA, collection failures, ...): those hold for the application too.
When no resource carries the application's tag the stage fails: it evaluated nothing about the
application, which is a misconfigured tag far more often than an application with no resources.

The stage fails when a finding at or above ``fail_on`` fails (UNKNOWN too with ``strict``, and with
``strict`` a score of n/a, i.e. nothing passed or failed); it outputs the score (None when n/a), the
counts and the audit id (stored, so the report can be opened later).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field

from gennaker.ops.audit import AuditResult, score
from gennaker.ops.fanout import finish_run, run_state, start_run
from gennaker.ops.findings import Finding, at_least, score_text
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
    max_age: Duration | None = None  # reuse a snapshot this young (not with organization)
    organization: bool = Field(
        default=False,
        description="Collect as durable jobs per account x region, shared by every worker (ops/fanout.py)",
    )


# Findings not about one resource of the application but about its account or a whole scope.
ACCOUNT_LEVEL = frozenset(
    {"account", "scope", "snapshot", "iam.account", "ec2.ebs_encryption", "s3.account_public_access_block"}
)


def application_findings(result: AuditResult, application: str, tag: str = "Application") -> tuple[list[Finding], int]:
    """Findings about resources (or workloads) tagged ``tag=application`` plus the account-level ones,
    and how many resources carry the tag."""
    refs = {(r.account, r.ref) for r in result.snapshot.resources if r.tags.get(tag) == application}
    workload = f"{tag}={application}"
    found = [
        f
        for f in result.findings
        if (f.account, f.resource_id) in refs
        or f.resource_id == workload
        or f.resource_id.endswith(f"/{workload}")  # workloads may be named account/Tag=value
        or f.resource_type in ACCOUNT_LEVEL
    ]
    return found, len(refs)


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
        source = f"pipeline:{ctx.execution_id}/{ctx.stage_id}"
        if cfg.organization:
            # The run's parts are jobs any worker runs; this task polls until they are all stored.
            # The run id is the attempt's, so a poll after this worker died finds the same run.
            run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"gennaker:{source}/{ctx.attempt}"))
            settings = ops_settings(svc.config.ops)
            start_run(
                svc.db,
                svc.aws,
                settings,
                checks=cfg.checks,
                accounts=cfg.accounts,
                regions=cfg.regions,
                source=source,
                run_id=run_id,
            )
            state = run_state(svc.db, run_id)
            if state.failed:
                return TaskResult.failed(f"audit run {run_id}: part(s) not collected: {'; '.join(state.failed)}")
            if not state.complete:
                return TaskResult.running(after=2.0, message=f"audit run {run_id}: {state.done}/{state.total} parts")
            result = finish_run(svc.db, settings, run_id)
        else:
            # Each attempt audits afresh (a retry after a fix must see the fix); the audit is stored.
            result = audit_and_store(
                svc.db,
                svc.aws,
                ops_settings(svc.config.ops),
                checks=cfg.checks,
                accounts=cfg.accounts,
                regions=cfg.regions,
                max_age_s=cfg.max_age,
                source=source,
            )
        tagged = None
        if cfg.application_scoped:
            scoped, tagged = application_findings(result, ctx.application, cfg.application_tag)
        else:
            scoped = result.findings
        findings = [f.to_dict() for f in scoped]
        ctx.log(f"audit {result.id}: {len(findings)} findings in scope")
        counts = {
            s: sum(1 for f in findings if f["status"] == s and not f.get("suppressed"))
            for s in ("PASS", "FAIL", "UNKNOWN", "NOT_APPLICABLE")
        }
        outputs: dict[str, Any] = {
            "audit_id": result.id,
            "score": score(scoped),
            "counts": counts,
        }
        if tagged == 0:
            outputs["blocking"] = 0
            where = ", ".join(sorted(result.snapshot.accounts)) + " / " + ", ".join(result.snapshot.regions)
            return TaskResult.failed(
                f"no resource in {where} is tagged {cfg.application_tag}={ctx.application}: nothing about "
                "the application to evaluate (tag its resources, or set application_tag)",
                outputs=outputs,
            )
        blocking = _blocking(findings, cfg.fail_on, cfg.strict)
        outputs["blocking"] = len(blocking)
        if blocking:
            worst = ", ".join(sorted({f["check_id"] for f in blocking})[:5])
            return TaskResult.failed(
                f"{len(blocking)} finding(s) at or above {cfg.fail_on} fail ({worst})", outputs=outputs
            )
        if outputs["score"] is None and cfg.strict:
            return TaskResult.failed("readiness score n/a: no check passed or failed (strict)", outputs=outputs)
        return TaskResult.succeeded(
            outputs=outputs,
            message=(
                f"readiness score {score_text(outputs['score'])} ({counts['PASS']} pass, {counts['FAIL']} fail, "
                f"{counts['UNKNOWN']} unknown), nothing failing at or above {cfg.fail_on}"
            ),
        )
