"""Local alarms: the ``alarms.conditions`` of ``kind: local`` accounts, evaluated by Gennaker itself
(this machine has no CloudWatch) and fed to the incidents as alarm transitions, the path SNS and the
poller take (``ops.incidents.intake.record_transition``, source ``condition``).

A periodic job (``alarms.evaluate_conditions``) evaluates every condition over the metric sources
(HAProxy's counters, Prometheus) for each server group of its application in rotation: BREACHED in
any group is ALARM (naming the group), else OK where a group answered, else INSUFFICIENT_DATA (no
data, or a source that cannot be read: UNKNOWN with the reason, never OK). Only a change of state
from what the intake last recorded for the alarm is a transition, so a repeated run (a retried job,
two workers) opens nothing twice. Each run schedules the next under the key of its time slot, and a
worker's start schedules the current one (``ensure_evaluating``) in case that chain broke.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from gennaker.cloud.provider import TAG_APPLICATION
from gennaker.cloud.registry import provider_for
from gennaker.engine import jobs
from gennaker.errors import ConfigError
from gennaker.metrics.conditions import ConditionResult, evaluate_all
from gennaker.metrics.sources import MetricSource, Scope, SourceSettings, build_sources
from gennaker.ops.alarms.settings import AlarmSettings, ConditionSettings
from gennaker.ops.incidents.intake import AlarmTransition, IntakeResult, record_transition
from gennaker.ops.incidents.rules import alarm_key
from gennaker.ops.incidents.settings import IncidentSettings
from gennaker.ops.incidents.tables import alarm_states
from gennaker.spec.config import Config
from gennaker.store.db import Database

EVALUATE = "alarms.evaluate_conditions"
TAG_CONDITION = "gennaker:condition"
ALARM_STATE = {"BREACHED": "ALARM", "OK": "OK", "NO_DATA": "INSUFFICIENT_DATA", "UNKNOWN": "INSUFFICIENT_DATA"}
log = logging.getLogger("gennaker.alarms")


def check_conditions(config: Config, settings: AlarmSettings) -> None:
    """Conditions are for ``kind: local`` accounts (AWS ones have CloudWatch alarms): one line if not."""
    for c in settings.conditions:
        acct = config.accounts.get(c.account)
        if acct is None:
            known = ", ".join(sorted(config.accounts)) or "none configured"
            raise ConfigError(f"alarms.conditions {c.name}: unknown account '{c.account}' (known: {known})")
        if acct.kind != "local":
            raise ConfigError(
                f"alarms.conditions {c.name}: account '{c.account}' is kind {acct.kind}; conditions are "
                "for kind: local accounts (use CloudWatch alarms, see 'gennaker alarms plan')"
            )


def slot_key(every: float, at: float) -> str:
    return f"alarms:conditions:{int(at // every)}"


def ensure_evaluating(db: Database, settings: AlarmSettings, now: float | None = None) -> bool:
    """Schedule the evaluation of the current time slot (nothing if it exists, or no conditions)."""
    if not settings.conditions:
        return False
    now = time.time() if now is None else now
    with db.begin() as conn:
        return jobs.schedule(conn, EVALUATE, slot_key(settings.evaluate_every, now), {}, now)


@dataclass(frozen=True)
class Judged:
    condition: ConditionSettings
    state: str  # ALARM | OK | INSUFFICIENT_DATA
    value: float | None
    reason: str
    server_groups: tuple[str, ...]  # the groups that breached (ALARM), else those judged


def _combine(c: ConditionSettings, results: dict[str, ConditionResult]) -> Judged:
    if not results:
        return Judged(c, "INSUFFICIENT_DATA", None, f"no server group of {c.application} is in rotation", ())
    for state in ("BREACHED", "UNKNOWN", "OK", "NO_DATA"):
        hit = {g: r for g, r in sorted(results.items()) if r.state == state}
        if hit:
            reason = "; ".join(f"{g}: {r.reason}" for g, r in hit.items())
            value = max((r.value for r in hit.values() if r.value is not None), default=None)
            prefix = "cannot be evaluated: " if state == "UNKNOWN" else ""
            return Judged(c, ALARM_STATE[state], value, prefix + reason, tuple(hit))
    raise AssertionError("a condition result has one of the four states")


def judge(services: Any, c: ConditionSettings, now: float) -> Judged:
    """One condition over its application's server groups in rotation."""
    try:
        provider = provider_for(services, c.account)
        groups = [g.name for g in provider.list_server_groups(application=c.application) if g.in_rotation]
    except Exception as exc:  # the account cannot be read: UNKNOWN with why, never OK
        return Judged(c, "INSUFFICIENT_DATA", None, f"cannot be evaluated: {type(exc).__name__}: {exc}", ())
    sources: dict[str, MetricSource] = build_sources(
        SourceSettings(
            prometheus_url=getattr(services, "prometheus_url", None),
            prometheus_timeout=getattr(services, "prometheus_timeout", 10.0),
            haproxy=provider if hasattr(provider, "server_stats") else None,
        )
    )
    sample = getattr(sources.get(c.source), "sample", None)
    if sample is not None:
        try:
            sample()  # counter-only sources (haproxy) answer a window from samples taken each step
        except Exception as exc:  # a missed sample is a gap; the evaluation says what it makes of it
            log.warning("sampling %s for condition %s failed: %s", c.source, c.name, exc)
    when = datetime.fromtimestamp(now, UTC)
    results = {
        g: evaluate_all([c], sources, Scope(server_group=g, location=provider.region, account=c.account), when)[0]
        for g in groups
    }
    return _combine(c, results)


def take_in(db: Database, incidents: IncidentSettings, j: Judged, region: str, now: float) -> IntakeResult | None:
    """The condition's state as an alarm transition, when it differs from the last one recorded."""
    c = j.condition
    with db.begin() as conn:
        known = conn.execute(
            select(alarm_states.c.state).where(alarm_states.c.alarm_key == alarm_key(c.account, region, c.name))
        ).scalar()
        if known == j.state or (known is None and j.state == "INSUFFICIENT_DATA"):
            return None
        transition = AlarmTransition(
            source="condition",
            account=c.account,
            region=region,
            alarm=c.name,
            state=j.state,
            previous=known,
            reason=j.reason[:2000],
            at=now,
            tags={**c.tags, TAG_APPLICATION: c.application, TAG_CONDITION: c.name},
            dimensions={"server_group": ",".join(j.server_groups)[:500]} if j.server_groups else {},
            application=c.application,
        )
        return record_transition(conn, transition, incidents)


def evaluate_conditions(
    job: jobs.Job, ctx: jobs.JobContext, services: Any, settings: AlarmSettings, incidents: IncidentSettings
) -> jobs.JobOutcome:
    """One round over every condition, then the next round's job."""
    now = ctx.now()
    notes = []
    for c in settings.conditions:
        j = judge(services, c, now)
        try:
            region = services.config.account(c.account).regions[0]
            result = take_in(ctx.db, incidents, j, region, now)
        except Exception as exc:  # one condition's failure leaves the others and the next round
            log.warning("condition %s could not be taken in: %s", c.name, exc)
            notes.append(f"{c.name}: {exc}")
            continue
        if result is not None:
            notes.append(f"{c.name}: {j.state} ({result.outcome})")
    every = settings.evaluate_every
    following = jobs.NewJob(EVALUATE, slot_key(every, now + every), {}, (now // every + 1) * every)
    return jobs.Done("; ".join(notes)[:2000] or None, then=[following])
