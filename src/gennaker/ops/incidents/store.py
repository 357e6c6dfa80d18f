"""The incident store: rows, their alarms and their timeline, read and changed inside the caller's
transaction (``with db.begin() as conn: store.ack(conn, ...)``), so a change, its timeline entry, its
notifications and its jobs commit together or not at all.

Reads and changes take ``applications``: None for a caller who may read every application, else the
set they may read; an incident outside it is a NotFound, the answer an unknown id gets. Role checks
(operator to change) are the caller's (the API's access rules).

API (names kept stable for the console, the diagnosis and the rollback action):
``create`` (create, or merge into the open incident of the same dedup key), ``get``,
``list_incidents``, ``ack``, ``resolve``, ``note``, ``assign``, ``set_priority``, ``add_event``
(a linked action: ``kind="action"``), ``timeline``, ``alarms_of``.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from gennaker.engine import jobs
from gennaker.engine.model import new_id
from gennaker.errors import Conflict, InvalidInput, NotFound
from gennaker.ops.incidents.settings import PRIORITIES
from gennaker.ops.incidents.tables import incident_alarms, incident_events, incidents
from gennaker.ops.notifications import Notice, enqueue
from gennaker.ops.notifications.tables import notification_deliveries

TRIGGERED, ACKNOWLEDGED, RESOLVED = "triggered", "acknowledged", "resolved"
OPEN = (TRIGGERED, ACKNOWLEDGED)
STATUSES = (TRIGGERED, ACKNOWLEDGED, RESOLVED)
NOTE_MAX = 10_000
LIST_MAX = 500
SEVERITY = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info", "P5": "info"}


@dataclass(frozen=True)
class AlarmRef:
    """One alarm of an incident, as the intake saw it last."""

    key: str  # account|region|alarm
    alarm: str
    account: str | None
    region: str | None
    state: str
    reason: str
    changed_at: float
    dimensions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NewIncident:
    title: str
    application: str | None
    priority: str
    dedup_key: str
    source: str
    account: str | None = None
    region: str | None = None
    rule: str | None = None
    escalation_policy: str | None = None
    channels: Sequence[str] = ()


def _dialect(conn: Connection) -> Any:
    return sqlite if conn.dialect.name == "sqlite" else postgresql


def notice_key(incident_id: str, what: str) -> str:
    """The idempotency key of one notification of an incident (``enqueue`` sends each key once)."""
    return f"incident:{incident_id}:{what}"


def link(incident_id: str, link_base: str | None) -> str:
    return f"{(link_base or '').rstrip('/')}/incidents/{incident_id}"


def notice(incident: dict[str, Any], event: str, text: str, link_base: str | None, **fields: str) -> Notice:
    return Notice(
        event=event,
        title=f"[{incident['priority']}] {incident['title']}"[:300],
        text=text,
        link=link(incident["id"], link_base),
        application=incident["application"],
        fields={"status": incident["status"], "priority": incident["priority"], "incident": incident["id"], **fields},
        severity=SEVERITY.get(incident["priority"], "warning"),
    )


# ---- timeline ------------------------------------------------------------------------------------
def add_event(
    conn: Connection,
    incident_id: str,
    kind: str,
    text: str,
    *,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
    key: str | None = None,
    at: float | None = None,
) -> bool:
    """Append to an incident's timeline; with ``key``, only once (a job repeating its step writes
    nothing twice). True if written."""
    row = {
        "incident_id": incident_id,
        "at": time.time() if at is None else at,
        "kind": kind[:40],
        "actor": actor[:200] if actor else None,
        "text": text[:NOTE_MAX],
        "details": details or {},
        "key": key,
    }
    if key is None:
        conn.execute(insert(incident_events).values(**row))
        return True
    stmt = (
        _dialect(conn)
        .insert(incident_events)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(incident_events.c.id)  # rowcount is -1 on PostgreSQL when rows are returned
    )
    return conn.execute(stmt).first() is not None


def notify(
    conn: Connection,
    incident: dict[str, Any],
    channels: Sequence[str],
    the_notice: Notice,
    what: str,
    *,
    targets: Sequence[str] = (),
) -> list[str]:
    """Enqueue a notice of an incident on ``channels`` (once per key and channel) and put it on the
    timeline; the deliveries' outcomes are read with the timeline."""
    if not channels:
        return []
    key = notice_key(incident["id"], what)
    ids = enqueue(conn, list(channels), the_notice, key)
    add_event(
        conn,
        incident["id"],
        "notified",
        f"{the_notice.event} sent to {', '.join(channels)}" + (f" for {', '.join(targets)}" if targets else ""),
        details={"notice_key": key, "channels": list(channels), "deliveries": ids, "targets": list(targets)},
        key=f"{key}:notified",
    )
    return ids


# ---- create, merge ---------------------------------------------------------------------------------
def _upsert_alarm(conn: Connection, incident_id: str, alarm: AlarmRef) -> None:
    values = {
        "alarm": alarm.alarm[:255],
        "account": alarm.account,
        "region": alarm.region,
        "state": alarm.state,
        "reason": alarm.reason[:NOTE_MAX],
        "changed_at": alarm.changed_at,
        "dimensions": dict(alarm.dimensions),
    }
    stmt = _dialect(conn).insert(incident_alarms).values(incident_id=incident_id, alarm_key=alarm.key, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["incident_id", "alarm_key"], set_=values))


def open_by_key(conn: Connection, dedup_key: str) -> dict[str, Any] | None:
    row = conn.execute(select(incidents).where(incidents.c.open_key == dedup_key)).first()
    return dict(row._mapping) if row is not None else None


def create(
    conn: Connection, new: NewIncident, alarm: AlarmRef, *, at: float | None = None
) -> tuple[dict[str, Any], bool]:
    """Open an incident for ``new.dedup_key``, or merge ``alarm`` into the one already open with that
    key. Returns (the incident, True if it was created). The unique open key settles concurrent
    intakes of the same key: the loser merges."""
    now = time.time() if at is None else at
    existing = open_by_key(conn, new.dedup_key)
    if existing is None:
        incident_id = new_id()
        row = {
            "id": incident_id,
            "title": new.title[:500],
            "application": new.application,
            "status": TRIGGERED,
            "priority": new.priority,
            "dedup_key": new.dedup_key[:255],
            "open_key": new.dedup_key[:255],
            "rule": new.rule,
            "escalation_policy": new.escalation_policy,
            "channels": list(new.channels),
            "source": new.source,
            "account": new.account,
            "region": new.region,
            "created_at": now,
            "updated_at": now,
            "escalation_loop": 0,
            "escalation_level": 0,
        }
        try:
            with conn.begin_nested():
                conn.execute(insert(incidents).values(**row))
        except IntegrityError:
            existing = open_by_key(conn, new.dedup_key)
            if existing is None:
                raise
        else:
            _upsert_alarm(conn, incident_id, alarm)
            why = f" (rule {new.rule})" if new.rule else ""
            add_event(
                conn,
                incident_id,
                "triggered",
                f"opened by {alarm.alarm} → {alarm.state} via {new.source}, "
                f"priority {new.priority}{why}: {alarm.reason}",
                details={"alarm": alarm.key, "dedup_key": new.dedup_key, "rule": new.rule},
                at=now,
            )
            return get(conn, incident_id), True
    _upsert_alarm(conn, existing["id"], alarm)
    conn.execute(update(incidents).where(incidents.c.id == existing["id"]).values(updated_at=now))
    add_event(
        conn,
        existing["id"],
        "merged",
        f"{alarm.alarm} → {alarm.state} via {new.source} merged (dedup key {new.dedup_key}): {alarm.reason}",
        details={"alarm": alarm.key},
        at=now,
    )
    return get(conn, existing["id"]), False


def update_alarm(conn: Connection, incident_id: str, alarm: AlarmRef) -> None:
    """Record an alarm's new state on an incident that covers it."""
    _upsert_alarm(conn, incident_id, alarm)
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(updated_at=time.time()))


def open_with_alarm(conn: Connection, alarm_key: str) -> list[dict[str, Any]]:
    """The open incidents that cover an alarm."""
    rows = conn.execute(
        select(incidents)
        .join(incident_alarms, incident_alarms.c.incident_id == incidents.c.id)
        .where(incident_alarms.c.alarm_key == alarm_key, incidents.c.status.in_(OPEN))
    ).all()
    return [dict(r._mapping) for r in rows]


# ---- reads ------------------------------------------------------------------------------------------
def _visible(applications: Collection[str] | None) -> Any:
    if applications is None:
        return True
    return incidents.c.application.in_(list(applications))


def get(
    conn: Connection, incident_id: str, applications: Collection[str] | None = None, *, for_update: bool = False
) -> dict[str, Any]:
    q = select(incidents).where(incidents.c.id == incident_id, _visible(applications))
    if for_update and conn.dialect.name != "sqlite":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no incident '{incident_id[:100]}'")
    return dict(row._mapping)


def list_incidents(
    conn: Connection,
    applications: Collection[str] | None = None,
    *,
    status: str | None = None,
    priority: str | None = None,
    application: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; ``status`` one of triggered, acknowledged, resolved, or ``open`` (either of the
    first two). Each row carries ``alarms`` (how many, and how many are not OK)."""
    q = select(incidents).where(_visible(applications))
    if status == "open":
        q = q.where(incidents.c.status.in_(OPEN))
    elif status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"unknown status '{status[:40]}' (open, {', '.join(STATUSES)})")
        q = q.where(incidents.c.status == status)
    if priority is not None:
        if priority not in PRIORITIES:
            raise InvalidInput(f"unknown priority '{priority[:10]}' ({', '.join(PRIORITIES)})")
        q = q.where(incidents.c.priority == priority)
    if application is not None:
        q = q.where(incidents.c.application == application)
    q = q.order_by(incidents.c.created_at.desc(), incidents.c.id.desc()).limit(max(1, min(limit, LIST_MAX)))
    rows = [dict(r._mapping) for r in conn.execute(q).all()]
    if rows:
        counts = conn.execute(
            select(
                incident_alarms.c.incident_id,
                func.count(),
                func.sum(case((incident_alarms.c.state != "OK", 1), else_=0)),
            )
            .where(incident_alarms.c.incident_id.in_([r["id"] for r in rows]))
            .group_by(incident_alarms.c.incident_id)
        ).all()
        by_id = {c[0]: (int(c[1]), int(c[2] or 0)) for c in counts}
        for r in rows:
            total, firing = by_id.get(r["id"], (0, 0))
            r["alarms"] = {"total": total, "not_ok": firing}
    return rows


def alarms_of(conn: Connection, incident_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(incident_alarms).where(incident_alarms.c.incident_id == incident_id).order_by(incident_alarms.c.alarm)
    ).all()
    return [dict(r._mapping) for r in rows]


def timeline(conn: Connection, incident_id: str, applications: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Every event of an incident, oldest first; a ``notified`` event carries its deliveries' status
    (pending, sent, failed with the last error) as the notification jobs left them."""
    get(conn, incident_id, applications)
    events = [
        dict(r._mapping)
        for r in conn.execute(
            select(incident_events)
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.at, incident_events.c.id)
        ).all()
    ]
    d = notification_deliveries.c
    sent = conn.execute(
        select(d.id, d.key, d.channel, d.status, d.attempts, d.sent_at, d.last_error).where(
            d.key.like(notice_key(incident_id, "%"))
        )
    ).all()
    by_key: dict[str, list[dict[str, Any]]] = {}
    for s in sent:
        by_key.setdefault(s.key, []).append(dict(s._mapping))
    for e in events:
        nk = (e["details"] or {}).get("notice_key")
        if e["kind"] == "notified" and nk:
            e["deliveries"] = by_key.get(nk, [])
    return events


# ---- changes by people ------------------------------------------------------------------------------
def _change(conn: Connection, incident_id: str, applications: Collection[str] | None) -> dict[str, Any]:
    return get(conn, incident_id, applications, for_update=True)


def ack(conn: Connection, incident_id: str, actor: str, applications: Collection[str] | None = None) -> dict[str, Any]:
    """Acknowledge: escalation stops (its pending job is canceled). Acknowledging again changes nothing."""
    inc = _change(conn, incident_id, applications)
    if inc["status"] == RESOLVED:
        raise Conflict(f"incident {incident_id} is resolved: there is nothing to acknowledge")
    if inc["status"] == ACKNOWLEDGED:
        return inc
    now = time.time()
    if inc["escalation_job"]:
        jobs.cancel(conn, inc["escalation_job"])
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id)
        .values(
            status=ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor[:200], updated_at=now, escalation_job=None
        )
    )
    add_event(conn, incident_id, "acknowledged", f"acknowledged by {actor}; escalation stops", actor=actor, at=now)
    return get(conn, incident_id)


def resolve(
    conn: Connection,
    incident_id: str,
    actor: str,
    *,
    text: str | None = None,
    applications: Collection[str] | None = None,
    link_base: str | None = None,
    automatic: bool = False,
) -> dict[str, Any]:
    """Resolve (a person, or ``automatic`` when every alarm has been OK for the quiet period): the open
    key is freed (the next alarm of that key opens a new incident), escalation stops, and the
    incident's channels are told. Resolving again changes nothing."""
    inc = _change(conn, incident_id, applications)
    if inc["status"] == RESOLVED:
        return inc
    now = time.time()
    if inc["escalation_job"]:
        jobs.cancel(conn, inc["escalation_job"])
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id)
        .values(
            status=RESOLVED,
            resolved_at=now,
            resolved_by="auto" if automatic else actor[:200],
            open_key=None,
            updated_at=now,
            escalation_job=None,
        )
    )
    said = text or ("every alarm back to OK for the quiet period" if automatic else f"resolved by {actor}")
    add_event(conn, incident_id, "resolved", said[:NOTE_MAX], actor=None if automatic else actor, at=now)
    inc = get(conn, incident_id)
    channels = list(dict.fromkeys([*inc["channels"], *_paged_channels(conn, incident_id)]))
    notify(conn, inc, channels, notice(inc, "incident.resolved", said, link_base), "resolved")
    return inc


def _paged_channels(conn: Connection, incident_id: str) -> list[str]:
    """Every channel an escalation level notified: those who were paged hear of the resolution too."""
    rows = conn.execute(
        select(incident_events.c.details).where(
            and_(incident_events.c.incident_id == incident_id, incident_events.c.kind == "notified")
        )
    ).all()
    return [c for r in rows for c in (r.details or {}).get("channels", [])]


def note(
    conn: Connection, incident_id: str, actor: str, text: str, applications: Collection[str] | None = None
) -> dict[str, Any]:
    text = text.strip()
    if not text:
        raise InvalidInput("a note needs some text")
    if len(text) > NOTE_MAX:
        raise InvalidInput(f"a note is at most {NOTE_MAX} characters (got {len(text)})")
    inc = _change(conn, incident_id, applications)
    add_event(conn, incident_id, "note", text, actor=actor)
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(updated_at=time.time()))
    return inc


def assign(
    conn: Connection, incident_id: str, actor: str, assignee: str | None, applications: Collection[str] | None = None
) -> dict[str, Any]:
    """Assign to a person (None or empty: unassign)."""
    who = (assignee or "").strip() or None
    if who is not None and len(who) > 200:
        raise InvalidInput("an assignee is at most 200 characters")
    inc = _change(conn, incident_id, applications)
    if inc["assignee"] == who:
        return inc
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(assignee=who, updated_at=time.time()))
    said = f"assigned to {who}" if who else f"unassigned (was {inc['assignee']})"
    add_event(conn, incident_id, "assigned", f"{said} by {actor}", actor=actor, details={"assignee": who})
    return get(conn, incident_id)


def set_priority(
    conn: Connection, incident_id: str, actor: str, priority: str, applications: Collection[str] | None = None
) -> dict[str, Any]:
    """A person's priority wins over the rules' (escalation reads it at each step)."""
    if priority not in PRIORITIES:
        raise InvalidInput(f"unknown priority '{priority[:10]}' ({', '.join(PRIORITIES)})")
    inc = _change(conn, incident_id, applications)
    if inc["priority"] == priority:
        return inc
    conn.execute(
        update(incidents).where(incidents.c.id == incident_id).values(priority=priority, updated_at=time.time())
    )
    add_event(
        conn,
        incident_id,
        "priority",
        f"priority {inc['priority']} → {priority} by {actor}",
        actor=actor,
        details={"from": inc["priority"], "to": priority},
    )
    return get(conn, incident_id)
