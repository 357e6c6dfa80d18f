"""The one path by which an alarm's transition becomes part of an incident, whatever brought it: the
SNS hook (``sns``), the poller of alarm states (``poll``) or a local alarm condition (``condition``).

``record_transition`` runs in the caller's transaction and is idempotent: a transition is identified
by (account, region, alarm, state, at), and one seen before changes nothing (``duplicate``). The
alarm's last known state is kept, so a transition older than it (a late or replayed delivery) or one
that repeats the state already known from the other source within a second changes nothing either.

- ALARM: the rules decide priority, dedup key, policy and channels; the alarm opens an incident
  (``created``: notified, escalation scheduled) or joins the open one of its key (``merged``).
- OK: the alarm is marked OK on the open incidents covering it; when every alarm of one is OK, a
  job resolves it after the quiet period unless an alarm fires again meanwhile (``resolving``).
- INSUFFICIENT_DATA (or OK with no incident): recorded on the timeline only (``recorded``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gennaker.engine import jobs
from gennaker.ops.incidents import escalation, store
from gennaker.ops.incidents.rules import alarm_key, decide
from gennaker.ops.incidents.settings import IncidentSettings
from gennaker.ops.incidents.tables import alarm_states, alarm_transitions

STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")
SOURCES = ("sns", "poll", "condition")
RESOLVE_QUIET = "incidents.resolve_quiet"
SAME_WITHIN = 1.0  # seconds: the same state from SNS and the poller is one transition

Outcome = Literal["created", "merged", "resolving", "recorded", "duplicate", "stale"]


@dataclass(frozen=True)
class AlarmTransition:
    source: str  # sns | poll | condition
    account: str | None
    region: str | None
    alarm: str
    state: str  # ALARM | OK | INSUFFICIENT_DATA
    previous: str | None
    reason: str
    at: float  # when the alarm changed state (epoch seconds), as its source says
    tags: dict[str, str] = field(default_factory=dict)
    dimensions: dict[str, str] = field(default_factory=dict)
    application: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown transition source {self.source!r} ({', '.join(SOURCES)})")
        if self.state not in STATES:
            raise ValueError(f"unknown alarm state {self.state!r} ({', '.join(STATES)})")
        if not self.alarm or len(self.alarm) > 255:
            raise ValueError("an alarm name is 1 to 255 characters")

    @property
    def key(self) -> str:
        return alarm_key(self.account, self.region, self.alarm)

    @property
    def fingerprint(self) -> str:
        raw = f"{self.key}\n{self.state}\n{round(self.at, 3):.3f}"
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IntakeResult:
    outcome: Outcome
    incident_id: str | None = None  # the incident created, merged into or being resolved
    incidents: tuple[str, ...] = ()  # every open incident the transition touched
    detail: str = ""


def _record(conn: Connection, t: AlarmTransition, outcome: str, incident_id: str | None, now: float) -> bool:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = (
        dialect.insert(alarm_transitions)
        .values(
            fingerprint=t.fingerprint,
            source=t.source,
            account=t.account,
            region=t.region,
            alarm=t.alarm,
            state=t.state,
            previous=t.previous,
            reason=t.reason[:10_000],
            at=t.at,
            received_at=now,
            outcome=outcome,
            incident_id=incident_id,
        )
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(alarm_transitions.c.id)  # rowcount is -1 on PostgreSQL when rows are returned
    )
    return conn.execute(stmt).first() is not None


def _known_state(conn: Connection, t: AlarmTransition, now: float) -> tuple[str | None, float | None]:
    row = conn.execute(select(alarm_states).where(alarm_states.c.alarm_key == t.key)).first()
    return (row.state, row.changed_at) if row is not None else (None, None)


def _save_state(conn: Connection, t: AlarmTransition) -> None:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    values = {"state": t.state, "changed_at": t.at, "reason": t.reason[:10_000], "tags": dict(t.tags)}
    stmt = dialect.insert(alarm_states).values(
        alarm_key=t.key, account=t.account, region=t.region, alarm=t.alarm, **values
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["alarm_key"], set_=values))


def _ref(t: AlarmTransition) -> store.AlarmRef:
    return store.AlarmRef(t.key, t.alarm, t.account, t.region, t.state, t.reason, t.at, dict(t.dimensions))


def record_transition(conn: Connection, transition: AlarmTransition, settings: IncidentSettings) -> IntakeResult:
    """Take one alarm transition into the incidents (see the module's docstring)."""
    t, now = transition, time.time()
    if not _record(conn, t, "pending", None, now):
        return IntakeResult("duplicate", detail="this transition was received before")
    known, known_at = _known_state(conn, t, now)
    if known_at is not None and t.at < known_at:
        return _done(conn, t, IntakeResult("stale", detail=f"older than the known state {known} of {known_at:.3f}"))
    if known == t.state and known_at is not None and abs(t.at - known_at) < SAME_WITHIN:
        return _done(conn, t, IntakeResult("duplicate", detail=f"already known as {known} (another source)"))
    _save_state(conn, t)
    touched = store.open_with_alarm(conn, t.key)
    if t.state == "ALARM":
        return _done(conn, t, _on_alarm(conn, t, settings, now))
    for inc in touched:
        store.update_alarm(conn, inc["id"], _ref(t))
        store.add_event(
            conn, inc["id"], "alarm", f"{t.alarm} → {t.state} via {t.source}: {t.reason}", details={"alarm": t.key}
        )
    ids = tuple(i["id"] for i in touched)
    if t.state == "OK":
        resolving = [i["id"] for i in touched if _all_ok(conn, i["id"])]
        for incident_id in resolving:
            due = now + settings.quiet_period
            key = f"incident:{incident_id}:quiet:{t.fingerprint[:16]}"
            jobs.schedule(conn, RESOLVE_QUIET, key, {"incident": incident_id}, due)
            store.add_event(
                conn,
                incident_id,
                "alarm",
                f"every alarm is OK: resolves in {settings.quiet_period:g}s unless one fires again",
                details={"job": key, "due_at": due},
                key=f"{key}:scheduled",
            )
        if resolving:
            return _done(conn, t, IntakeResult("resolving", resolving[0], ids, "every alarm of the incident is OK"))
    detail = "no open incident covers this alarm" if not touched else f"{t.state} noted"
    return _done(conn, t, IntakeResult("recorded", ids[0] if ids else None, ids, detail))


def _done(conn: Connection, t: AlarmTransition, result: IntakeResult) -> IntakeResult:
    conn.execute(
        update(alarm_transitions)
        .where(alarm_transitions.c.fingerprint == t.fingerprint)
        .values(outcome=result.outcome, incident_id=result.incident_id)
    )
    return result


def _all_ok(conn: Connection, incident_id: str) -> bool:
    return all(a["state"] == "OK" for a in store.alarms_of(conn, incident_id))


def _on_alarm(conn: Connection, t: AlarmTransition, settings: IncidentSettings, now: float) -> IntakeResult:
    d = decide(t, settings)
    where = " ".join(p for p in (t.account, t.region) if p)
    title = f"{t.alarm} is in ALARM" + (f" ({where})" if where else "")
    new = store.NewIncident(
        title=title,
        application=d.application,
        priority=d.priority,
        dedup_key=d.dedup_key,
        source=t.source,
        account=t.account,
        region=t.region,
        rule=d.rule,
        escalation_policy=d.escalation,
        channels=d.channels,
    )
    incident, created = store.create(conn, new, _ref(t), at=now)
    if created:
        _diagnose(conn, incident)
        escalation.on_open(conn, incident, settings, now)
        return IntakeResult("created", incident["id"], (incident["id"],), f"priority {d.priority}")
    return IntakeResult("merged", incident["id"], (incident["id"],), f"dedup key {d.dedup_key}")


def resolve_quiet(job: jobs.Job, ctx: jobs.JobContext, settings: IncidentSettings) -> jobs.JobOutcome:
    """Resolve an incident whose alarms are all OK and have been for the quiet period (the job
    ``incidents.resolve_quiet``); an alarm that fired again, or went OK later, leaves it be (a later
    job, scheduled by that OK, decides)."""
    incident_id = str(job.payload["incident"])
    with ctx.db.begin() as conn:
        try:
            inc = store.get(conn, incident_id, for_update=True)
        except Exception as exc:  # NotFound: nothing to do
            return jobs.Done(note=str(exc))
        if inc["status"] == store.RESOLVED:
            return jobs.Done(note="already resolved")
        alarms = store.alarms_of(conn, incident_id)
        if not alarms or any(a["state"] != "OK" for a in alarms):
            return jobs.Done(note="an alarm is not OK: stays open")
        last_ok = max(a["changed_at"] for a in alarms)
        if last_ok + settings.quiet_period > ctx.now() + SAME_WITHIN:
            return jobs.Done(note="an alarm went OK later: its own job decides")
        store.resolve(conn, incident_id, "auto", automatic=True, link_base=settings.link_base)
    return jobs.Done(note="resolved: every alarm OK for the quiet period")


def _diagnose(conn: Connection, incident: Mapping[str, Any]) -> None:
    """The initial diagnosis, kept on the timeline as the incident opens. An unexpected failure undoes
    only its own rows and is said on the timeline; the incident and its escalation go on."""
    from gennaker.ops.incidents.diagnosis import record_diagnosis

    try:
        with conn.begin_nested():
            record_diagnosis(conn, incident)
    except Exception as exc:
        logging.getLogger("gennaker.incidents").exception("diagnosing incident %s failed", incident["id"])
        store.add_event(conn, incident["id"], "diagnosis", f"the initial diagnosis failed: {type(exc).__name__}: {exc}")
