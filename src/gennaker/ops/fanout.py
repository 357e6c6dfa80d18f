"""The organization-wide audit across workers: collection fanned out as durable jobs.

``start_run`` plans the audit's parts (ops/collect.py ``plan``: one per account x region, one per
account for the global types) and schedules each as an ``ops.audit_part`` job in one transaction with
the run's row. Any worker with the job handlers (``gennaker worker`` on PostgreSQL, or runners inside
the CLI) claims parts; each collects its scope with ``collect_parts``, the same code the in-process
audit runs, and stores what it found under (run id, part key), replacing that part's row if it ran
before (a worker killed after storing, or whose lease ran out, re-runs it: never a duplicate). A
worker killed mid-part loses nothing: the jobs module gives the part to another after the lease.

When every part is stored, ``finish_run`` builds the snapshot with ``assemble`` (sorted the same way
as the in-process audit) and runs ``evaluate``: same findings, same score as a single-process audit
of the same accounts. Credentials never go into the job payload: a part of an account discovered in
the organization names the configured account whose credentials reach it (the management account).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from gennaker.cloud.aws.session import AwsSessions
from gennaker.engine import jobs
from gennaker.engine.job_tables import jobs as jobs_table
from gennaker.engine.jobs import Done, Failed, Job, JobContext, JobHandler, JobRunner, JobSettings
from gennaker.errors import ConfigError, GennakerError
from gennaker.ops import store
from gennaker.ops.audit import AuditResult, evaluate
from gennaker.ops.checks import needed_types
from gennaker.ops.checks import select as select_checks
from gennaker.ops.collect import (
    Part,
    PartResult,
    assemble,
    audited_accounts,
    collect_parts,
    plan,
    requested,
    resolve_types,
    skeleton,
)
from gennaker.ops.drill_facts import recent_successful_drills
from gennaker.ops.fanout_tables import ops_audit_parts, ops_audit_runs
from gennaker.ops.model import AccountInfo, Failure, Resource
from gennaker.ops.organization import discover_accounts
from gennaker.ops.settings import OpsSettings, ops_settings
from gennaker.ops.suppressions import Suppression, apply_suppressions
from gennaker.spec.config import Account, Config
from gennaker.store.db import Database

PART = "ops.audit_part"
COLLECTING, DONE = "collecting", "done"
SECRETS = {"aws_access_key_id", "aws_secret_access_key"}

RunProgress = Callable[[int, int], None]


class AuditRunFailed(GennakerError):
    """A part could not be collected at all (its job gave up): the run cannot be reported."""


def _job_key(run_id: str, part: Part) -> str:
    return f"audit:{run_id}:{part.key}"


# ---- scheduling ---------------------------------------------------------------------------------
def start_run(
    db: Database,
    sessions: AwsSessions,
    settings: OpsSettings,
    *,
    checks: list[str] | None = None,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    source: str | None = None,
    run_id: str | None = None,
) -> str:
    """Plan the parts and schedule them; idempotent by ``run_id`` (a run that exists is left alone)."""
    run_id = run_id or str(uuid.uuid4())
    with db.read() as conn:
        if conn.execute(select(ops_audit_runs.c.id).where(ops_audit_runs.c.id == run_id)).first():
            return run_id
    discovered = set(discover_accounts(sessions, settings)) if accounts is None else set()
    names = audited_accounts(sessions, accounts)
    if not names:
        raise ConfigError("no accounts configured: add an 'accounts:' section to gennaker.yml")
    chosen = select_checks(checks)
    rtypes = resolve_types(needed_types(chosen))
    scopes, parts = plan(sessions, names, regions, rtypes)
    mgmt = settings.organization.management_account if settings.organization else None
    now = time.time()
    request = {
        "checks": checks,
        "accounts": accounts,
        "regions": regions,
        "types": [rt.name for rt in rtypes],
        "source": source,
        "infos": {n: _info_dict(i) for n, i in skeleton(sessions, scopes).items()},
    }
    with db.begin() as conn:
        conn.execute(
            insert(ops_audit_runs).values(
                id=run_id, created_at=now, status=COLLECTING, request=request, parts_total=len(parts)
            )
        )
        for part in parts:
            payload: dict[str, Any] = {
                "run_id": run_id,
                "part": {"account": part.account, "region": part.region, "stored": part.stored, "types": part.types},
            }
            if part.account in discovered:
                # discovered in the organization: how to reach it, without its credentials
                payload["account"] = sessions.account(part.account).model_dump(exclude=SECRETS, exclude_unset=True)
                payload["credentials_from"] = mgmt
            jobs.schedule(conn, PART, _job_key(run_id, part), payload, now)
    return run_id


def _info_dict(i: AccountInfo) -> dict[str, Any]:
    return {
        "account_id": i.account_id,
        "regions": list(i.regions),
        "dr_region": i.dr_region,
        "environment": i.environment,
    }


# ---- the part job ---------------------------------------------------------------------------------
def _part_config(config: Config, payload: dict[str, Any]) -> Config:
    """The worker's configuration, plus the discovered account the part is about (credentials taken
    from the configured account that reaches the organization)."""
    name = payload["part"]["account"]
    if name in config.accounts or "account" not in payload:
        return config
    fields = dict(payload["account"])
    source = payload.get("credentials_from")
    if source:
        base = config.account(source)
        fields.update(aws_access_key_id=base.aws_access_key_id, aws_secret_access_key=base.aws_secret_access_key)
    return config.model_copy(update={"accounts": {**config.accounts, name: Account.model_validate(fields)}})


def part_handler(config: Config) -> JobHandler:
    def run(job: Job, ctx: JobContext) -> Done | Failed:
        p = job.payload["part"]
        part = Part(p["account"], p["region"], p["stored"], tuple(p["types"]))
        cfg = _part_config(config, job.payload)
        if part.account not in cfg.accounts:
            return Failed(f"account '{part.account}' is not in this worker's configuration")
        # A session per part: its clients and retry budgets are this (account, region)'s alone.
        sessions = AwsSessions(cfg)
        [result] = collect_parts(sessions, ops_settings(cfg.ops), [part])
        save_part(ctx.db, job.payload["run_id"], result, dict(sessions.calls), ctx.worker_id)
        return Done(f"{len(result.resources)} resources, {len(result.failures)} failures")

    return run


def job_handlers(config: Config) -> dict[str, JobHandler]:
    return {PART: part_handler(config)}


def save_part(db: Database, run_id: str, result: PartResult, calls: dict[str, int], worker_id: str) -> None:
    """Store one part's collection, replacing what an earlier attempt of the same part stored."""
    with db.begin() as conn:
        where = (ops_audit_parts.c.run_id == run_id) & (ops_audit_parts.c.part_key == result.part.key)
        conn.execute(delete(ops_audit_parts).where(where))
        conn.execute(
            insert(ops_audit_parts).values(
                run_id=run_id,
                part_key=result.part.key,
                account_id=result.account_id,
                resources=[vars(r) for r in result.resources],
                failures=[vars(f) for f in result.failures],
                durations=result.durations,
                tasks=result.tasks,
                calls=calls,
                worker_id=worker_id,
                finished_at=time.time(),
            )
        )


# ---- following and finishing a run -----------------------------------------------------------------
@dataclass
class RunState:
    total: int
    done: int
    failed: list[str] = field(default_factory=list)  # parts whose job gave up, with the reason

    @property
    def complete(self) -> bool:
        return self.done >= self.total


def run_state(db: Database, run_id: str) -> RunState:
    with db.read() as conn:
        total = conn.execute(select(ops_audit_runs.c.parts_total).where(ops_audit_runs.c.id == run_id)).scalar()
        if total is None:
            raise ConfigError(f"no audit run {run_id}")
        done = conn.execute(
            select(func.count()).select_from(ops_audit_parts).where(ops_audit_parts.c.run_id == run_id)
        ).scalar_one()
        failed = conn.execute(
            select(jobs_table.c.key, jobs_table.c.last_error).where(
                jobs_table.c.key.like(f"audit:{run_id}:%"), jobs_table.c.status == jobs.FAILED
            )
        ).all()
    return RunState(int(total), int(done), [f"{k.split(':', 2)[2]}: {e}" for k, e in failed])


def wait_run(
    db: Database, run_id: str, *, timeout: float, poll: float = 0.2, progress: RunProgress | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = run_state(db, run_id)
        if progress:
            progress(state.done, state.total)
        if state.failed:
            raise AuditRunFailed(f"audit run {run_id}: part(s) could not be collected: {'; '.join(state.failed)}")
        if state.complete:
            return
        if time.monotonic() > deadline:
            raise AuditRunFailed(
                f"audit run {run_id}: {state.done}/{state.total} parts collected after {timeout:.0f} s "
                "(are workers running? `gennaker worker`)"
            )
        time.sleep(poll)


def finish_run(
    db: Database,
    settings: OpsSettings,
    run_id: str,
    *,
    suppressions: list[Suppression] | None = None,
    now: dt.datetime | None = None,
) -> AuditResult:
    """Build the snapshot from the stored parts, evaluate and store it (once: a run already finished
    is evaluated again from the same parts and keeps its stored ids)."""
    with db.read() as conn:
        run = conn.execute(select(ops_audit_runs).where(ops_audit_runs.c.id == run_id)).one()
        rows = conn.execute(
            select(ops_audit_parts).where(ops_audit_parts.c.run_id == run_id).order_by(ops_audit_parts.c.part_key)
        ).all()
    req = run.request
    if len(rows) < run.parts_total:
        raise AuditRunFailed(f"audit run {run_id}: only {len(rows)}/{run.parts_total} parts collected")
    results = [
        PartResult(
            Part(r.part_key.rsplit("/", 1)[0], r.part_key.rsplit("/", 1)[1], r.part_key.rsplit("/", 1)[1], ()),
            r.account_id,
            [Resource(**x) for x in r.resources],
            [Failure(**x) for x in r.failures],
            dict(r.durations),
            r.tasks,
        )
        for r in rows
    ]
    infos = {
        n: AccountInfo(n, i["account_id"], tuple(i["regions"]), i["dr_region"], i["environment"])
        for n, i in req["infos"].items()
    }
    calls: Counter[str] = Counter()
    for r in rows:
        calls.update(r.calls)
    finished = run.finished_at or time.time()
    stats = {
        "duration_s": round(finished - run.created_at, 3),
        "calls": dict(sorted(calls.items())),
        "requested": requested(req["accounts"], req["regions"]),
        "audit_run": run_id,
        "parts": len(rows),
        "workers": sorted({r.worker_id for r in rows if r.worker_id}),
    }
    created = dt.datetime.fromtimestamp(run.created_at, dt.UTC)
    snapshot = assemble(infos, results, req["types"], stats, snapshot_id=run.snapshot_id, created_at=created)
    chosen = select_checks(req["checks"])
    findings = evaluate(snapshot, settings, chosen, recent_successful_drills(db, settings))
    when = now or dt.datetime.now(dt.UTC)
    expired = apply_suppressions(findings, suppressions or [], when.date())
    result = AuditResult(run.audit_id or str(uuid.uuid4()), when, snapshot, findings, [c.id for c in chosen], expired)
    if run.status == DONE:
        return result
    store.save_snapshot(db, snapshot)
    store.save_audit(db, result.to_json(), req["source"])
    with db.begin() as conn:
        conn.execute(
            update(ops_audit_runs)
            .where(ops_audit_runs.c.id == run_id)
            .values(status=DONE, audit_id=result.id, snapshot_id=snapshot.id, finished_at=time.time())
        )
    return result


def audit_organization(
    db: Database,
    sessions: AwsSessions,
    settings: OpsSettings,
    *,
    checks: list[str] | None = None,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    suppressions: list[Suppression] | None = None,
    workers: int = 2,
    timeout: float = 3600.0,
    progress: RunProgress | None = None,
    source: str | None = None,
    job_settings: JobSettings | None = None,
    handlers: Mapping[str, JobHandler] | None = None,
) -> AuditResult:
    """Schedule a run and wait for it; with ``workers`` > 0 this process also runs that many parts at
    a time (so one machine on SQLite needs nothing else), with 0 it relies on ``gennaker worker``s."""
    run_id = start_run(db, sessions, settings, checks=checks, accounts=accounts, regions=regions, source=source)
    runner = None
    if workers > 0:
        js = job_settings or JobSettings.from_env()
        js = JobSettings(lease=js.lease, poll=js.poll, threads=workers, extend_every=js.extend_every)
        runner = JobRunner(db, handlers or job_handlers(sessions.config), f"audit-{run_id[:8]}", js)
        runner.start()
    try:
        wait_run(db, run_id, timeout=timeout, progress=progress)
    finally:
        if runner is not None:
            runner.stop()
    return finish_run(db, settings, run_id, suppressions=suppressions)
