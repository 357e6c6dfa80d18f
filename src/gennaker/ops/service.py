"""What the CLI, the API and the readiness gate share: collect-and-store and audit-and-store."""

from __future__ import annotations

import datetime as dt

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops import store
from gennaker.ops.audit import AuditResult, run_audit
from gennaker.ops.checks import needed_types, select
from gennaker.ops.collect import Progress, account_regions, audited_accounts, collect
from gennaker.ops.drill_facts import recent_successful_drills
from gennaker.ops.model import Snapshot
from gennaker.ops.organization import discover_accounts
from gennaker.ops.settings import OpsSettings
from gennaker.ops.suppressions import Suppression
from gennaker.store.db import Database


def collect_and_store(
    db: Database,
    sessions: AwsSessions,
    settings: OpsSettings,
    *,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    types: list[str] | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    if accounts is None:
        discover_accounts(sessions, settings)
    snap = collect(sessions, settings, accounts=accounts, regions=regions, types=types, progress=progress)
    store.save_snapshot(db, snap)
    return snap


def audit_and_store(
    db: Database,
    sessions: AwsSessions,
    settings: OpsSettings,
    *,
    checks: list[str] | None = None,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    suppressions: list[Suppression] | None = None,
    max_age_s: float | None = None,
    progress: Progress | None = None,
    source: str | None = None,
) -> AuditResult:
    """Audit, reusing a stored snapshot younger than ``max_age_s`` when it collected what the checks
    need for the same accounts (the configured ones when none are given) and covers the regions."""
    snapshot = None
    if max_age_s:
        types = needed_types(select(checks))
        if accounts is None:
            discover_accounts(sessions, settings)
        names = audited_accounts(sessions, accounts)
        scope = {n: set(account_regions(sessions, n, regions)) for n in names}
        snapshot = store.reusable_snapshot(db, max_age_s, types, scope, dt.datetime.now(dt.UTC))
    result = run_audit(
        sessions,
        settings,
        checks=checks,
        accounts=accounts,
        regions=regions,
        suppressions=suppressions,
        snapshot=snapshot,
        progress=progress,
        drills=recent_successful_drills(db, settings),  # the DR checks name recent drills
    )
    if snapshot is None:
        store.save_snapshot(db, result.snapshot)
    store.save_audit(db, result.to_json(), source)
    return result
