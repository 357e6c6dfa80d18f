"""Escalation: an incident's policy notifies level 1 when it opens, then each next level after the
delay of the one before, while nobody acknowledges; after the last level it starts over ``loops`` more
times. Priorities the policy does not escalate notify level 1 only.

Each step is a durable job keyed by (incident, loop, level). The step's notifications, its timeline
entry and the job of the next step are written in one transaction, the notifications keyed by that
same step, so a worker killed anywhere in a step repeats it without losing it or sending twice. An
ack or a resolution cancels the pending step, and a step finding the incident no longer triggered
does nothing.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, update

from gennaker.engine import jobs
from gennaker.engine.jobs import Done, Job, JobContext, JobOutcome
from gennaker.errors import NotFound
from gennaker.ops.incidents import store
from gennaker.ops.incidents.settings import EscalationLevel, EscalationPolicy, IncidentSettings
from gennaker.ops.incidents.tables import incidents

ESCALATE = "incidents.escalate"


def step_key(incident_id: str, loop: int, level: int) -> str:
    return f"incident:{incident_id}:esc:{loop}:{level}"


def level_channels(level: EscalationLevel, settings: IncidentSettings) -> list[str]:
    """The level's own channels, then those of each user and role it names (``contacts``)."""
    out = list(level.targets.channels)
    for name in level.targets.names():
        out += settings.contacts.get(name, [])
    return list(dict.fromkeys(out))


def _next(policy: EscalationPolicy, loop: int, level: int) -> tuple[int, int] | None:
    if level + 1 < len(policy.levels):
        return loop, level + 1
    if loop < policy.loops:
        return loop + 1, 0
    return None


def _schedule_next(
    conn: Connection, incident: dict[str, Any], policy: EscalationPolicy, loop: int, level: int, now: float
) -> str | None:
    nxt = _next(policy, loop, level)
    key = None
    if nxt is not None and policy.escalates(incident["priority"]):
        key = step_key(incident["id"], *nxt)
        delay = policy.levels[level].delay
        jobs.schedule(conn, ESCALATE, key, {"incident": incident["id"], "loop": nxt[0], "level": nxt[1]}, now + delay)
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident["id"])
        .values(escalation_loop=loop, escalation_level=level, escalation_job=key)
    )
    return key


def on_open(conn: Connection, incident: dict[str, Any], settings: IncidentSettings, now: float | None = None) -> None:
    """A new incident: one ``incident.triggered`` notice to the rule's channels and level 1's targets,
    and the job of level 2 (if the policy escalates this priority)."""
    now = time.time() if now is None else now
    policy = settings.escalation_policies.get(incident["escalation_policy"] or "")
    channels = list(incident["channels"])
    targets: list[str] = []
    if policy is not None:
        first = policy.levels[0]
        channels = list(dict.fromkeys([*channels, *level_channels(first, settings)]))
        targets = first.targets.names()
    text = f"{incident['title']} (priority {incident['priority']})"
    the_notice = store.notice(incident, "incident.triggered", text, settings.link_base, level="1")
    store.notify(conn, incident, channels, the_notice, "opened", targets=targets)
    if policy is not None:
        _schedule_next(conn, incident, policy, 0, 0, now)


def escalate(job: Job, ctx: JobContext, settings: IncidentSettings) -> JobOutcome:
    """One step of escalation (the job ``incidents.escalate``)."""
    incident_id, loop, level = str(job.payload["incident"]), int(job.payload["loop"]), int(job.payload["level"])
    now = ctx.now()
    with ctx.db.begin() as conn:
        try:
            inc = store.get(conn, incident_id, for_update=True)
        except NotFound:
            return Done(note="the incident no longer exists")
        if inc["status"] != store.TRIGGERED:
            return Done(note=f"incident is {inc['status']}: escalation stops")
        if inc["escalation_job"] != job.key:
            return Done(note="superseded by another escalation step")
        policy = settings.escalation_policies.get(inc["escalation_policy"] or "")
        if policy is None or level >= len(policy.levels):
            store.add_event(
                conn,
                incident_id,
                "escalation_stopped",
                f"escalation policy {inc['escalation_policy']!r} has no level {level + 1} any more: escalation stops",
                key=f"{job.key}:stopped",
            )
            conn.execute(update(incidents).where(incidents.c.id == incident_id).values(escalation_job=None))
            return Done(note="policy changed")
        if not policy.escalates(inc["priority"]):
            store.add_event(
                conn,
                incident_id,
                "escalation_stopped",
                f"priority {inc['priority']} does not escalate under policy {inc['escalation_policy']}",
                key=f"{job.key}:stopped",
            )
            conn.execute(update(incidents).where(incidents.c.id == incident_id).values(escalation_job=None))
            return Done(note="priority does not escalate")
        lvl = policy.levels[level]
        label = f"level {level + 1}" + (f" (loop {loop + 1})" if loop else "")
        text = f"not acknowledged: escalated to {label}"
        store.add_event(
            conn,
            incident_id,
            "escalated",
            f"{text}: {', '.join(lvl.targets.names() + lvl.targets.channels) or 'no targets'}",
            details={"loop": loop, "level": level, "targets": lvl.targets.model_dump()},
            key=f"{job.key}:escalated",
            at=now,
        )
        the_notice = store.notice(
            inc, "incident.escalated", f"{inc['title']}: {text}", settings.link_base, level=str(level + 1)
        )
        store.notify(
            conn,
            inc,
            level_channels(lvl, settings),
            the_notice,
            f"esc:{loop}:{level}",
            targets=lvl.targets.names(),
        )
        nxt = _schedule_next(conn, inc, policy, loop, level, now)
    return Done(note=f"{label} notified" + ("" if nxt else "; the policy is exhausted"))
