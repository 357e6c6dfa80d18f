"""Read models of stored audits for the console: the latest audit as one application sees it.

Audits cover whole accounts. A finding names its resource (ARN or id) or a workload
(``Application=shop-web``); the snapshot the audit ran on kept every resource's tags, so the
findings can be narrowed to the resources tagged with the application (Gennaker's own
``gennaker:application`` tag, or a workload tag whose value names the application the way
Spinnaker names clusters, ``app-stack-detail``). Where that is impossible (the snapshot was deleted,
or nothing in it carries the application's tags) the whole audit is shown, and the answer says so.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from gennaker.cloud import naming
from gennaker.cloud.provider import TAG_APPLICATION
from gennaker.errors import NotFound
from gennaker.ops import store
from gennaker.ops.audit import score
from gennaker.ops.findings import PILLARS, SEVERITY_RANK, STATUSES, Finding
from gennaker.ops.settings import ops_settings
from gennaker.ops.tables import ops_resources
from gennaker.store.db import Database

if TYPE_CHECKING:  # the runtime imports the stage registry, whose readiness gate imports gennaker.ops
    from gennaker.runtime import Runtime


def names_application(value: str | None, application: str) -> bool:
    """``shop``, ``shop-web``, ``shop-web-v003`` name the application ``shop``; ``shopping`` does not."""
    return bool(value) and naming.parse(str(value)).application == application


def application_refs(
    db: Database, snapshot_id: str, application: str, workload_tags: list[str]
) -> tuple[set[tuple[str, str]], int]:
    """(account, ARN or id) of every resource of the snapshot tagged with the application, and how
    many resources that is."""
    cols = [ops_resources.c.account, ops_resources.c.resource_id, ops_resources.c.arn, ops_resources.c.tags]
    refs: set[tuple[str, str]] = set()
    count = 0
    with db.read() as conn:
        rows = conn.execute(select(*cols).where(ops_resources.c.snapshot_id == snapshot_id))
        for r in rows:
            tags: dict[str, str] = r.tags or {}
            mine = tags.get(TAG_APPLICATION) == application or any(
                names_application(tags.get(t), application) for t in workload_tags
            )
            if mine:
                count += 1
                refs.add((r.account, r.resource_id))
                if r.arn:
                    refs.add((r.account, r.arn))
    return refs, count


def _workload_of(finding: Finding, application: str, workload_tags: list[str]) -> bool:
    """Findings about a workload name it ``Tag=value`` rather than by a resource."""
    key, sep, value = finding.resource_id.partition("=")
    return bool(sep) and key in workload_tags and names_application(value, application)


def pillar_scores(findings: list[Finding]) -> list[dict[str, Any]]:
    """Score and counts per pillar, as the audit's summary computes them, over any subset of findings."""
    out: list[dict[str, Any]] = []
    for key, title in PILLARS.items():
        fs = [f for f in findings if f.pillar == key]
        counts = Counter(f.status for f in fs if not f.suppressed)
        row: dict[str, Any] = {"pillar": key, "title": title, "score": score(fs), "findings": len(fs)}
        row.update({s: counts.get(s, 0) for s in STATUSES})
        row["SUPPRESSED"] = sum(1 for f in fs if f.suppressed)
        out.append(row)
    return out


def latest_for_application(runtime: Runtime, application: str) -> dict[str, Any] | None:
    """The latest stored audit narrowed to ``application`` (see the module doc); None without audits."""
    try:
        report = store.get_audit(runtime.db)
    except NotFound:
        return None
    workload_tags = ops_settings(runtime.config.ops).workload_tags
    everything = [Finding(**f) for f in report["findings"]]
    refs, count = (
        application_refs(runtime.db, report["snapshot_id"], application, workload_tags)
        if report.get("snapshot_id")
        else (set(), 0)
    )
    if refs:
        findings = [
            f for f in everything if (f.account, f.resource_id) in refs or _workload_of(f, application, workload_tags)
        ]
        note = (
            f"Findings about the {count} resources tagged "
            f"with {application} ({len(findings)} of the audit's {len(everything)} findings)."
        )
    else:
        findings = everything
        note = (
            f"No resource in this audit's snapshot carries {application}'s tags ({TAG_APPLICATION}, or "
            f"{', '.join(workload_tags)} naming it), so these are the findings of the whole audit "
            f"({', '.join(report.get('scope', {}).get('accounts', [])) or 'all accounts'})."
        )
    failing = sorted(
        (f for f in findings if f.status == "FAIL" and not f.suppressed),
        key=lambda f: (-SEVERITY_RANK[f.severity], f.pillar, f.check_id, f.resource_id),
    )
    return {
        "id": report["audit_id"],
        "created_at": dt.datetime.fromisoformat(report["generated_at"]).timestamp(),
        "snapshot_id": report.get("snapshot_id"),
        "accounts": report.get("scope", {}).get("accounts", []),
        "narrowed": bool(refs),
        "note": note,
        "score": score(findings),
        "audit_score": report["summary"]["score"],
        "pillars": pillar_scores(findings),
        "failing": [f.to_dict() for f in failing],
        "unknown": sum(1 for f in findings if f.status == "UNKNOWN" and not f.suppressed),
        "total": len(findings),
    }
