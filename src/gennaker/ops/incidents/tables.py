"""Incidents, the alarms each one covers, its timeline; every alarm transition received, and the last
known state of each alarm. Times are epoch seconds.

``incidents.open_key`` holds the dedup key while the incident is open and NULL once it is resolved:
its unique index is what makes "one open incident per dedup key" true under concurrent intake.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from gennaker.store.schema import metadata

ALARM_KEY_MAX = 420  # account (100) | region (50) | alarm name (255)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("application", String(100)),  # None: no application known (only global readers see it)
    Column("status", String(20), nullable=False),  # triggered, acknowledged, resolved
    Column("priority", String(2), nullable=False),  # P1 … P5
    Column("dedup_key", String(255), nullable=False),
    Column("open_key", String(255), unique=True),
    Column("rule", String(100)),
    Column("escalation_policy", String(100)),
    Column("channels", JSON, nullable=False),
    Column("assignee", String(200)),
    Column("source", String(20), nullable=False),  # sns, poll, condition: how the first alarm came
    Column("account", String(100)),
    Column("region", String(50)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("acknowledged_at", Float),
    Column("acknowledged_by", String(200)),
    Column("resolved_at", Float),
    Column("resolved_by", String(200)),  # a person, or "auto" (every alarm back to OK)
    Column("escalation_loop", Integer, nullable=False, default=0),
    Column("escalation_level", Integer, nullable=False, default=0),  # 0-based, the last level notified
    Column("escalation_job", String(255)),  # the pending job of the next level, canceled by an ack
    Index("ix_incidents_status_priority", "status", "priority"),
    Index("ix_incidents_application_created_at", "application", "created_at"),
    Index("ix_incidents_dedup_key", "dedup_key"),
)

incident_alarms = Table(
    "incident_alarms",
    metadata,
    Column("incident_id", String(32), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    Column("alarm_key", String(ALARM_KEY_MAX), primary_key=True),
    Column("alarm", String(255), nullable=False),
    Column("account", String(100)),
    Column("region", String(50)),
    Column("state", String(20), nullable=False),
    Column("reason", Text),
    Column("changed_at", Float, nullable=False),
    Column("dimensions", JSON, nullable=False),
    Index("ix_incident_alarms_alarm_key", "alarm_key"),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    # triggered, alarm, merged, notified, escalated, acknowledged, resolved, reopened, note, priority,
    # assigned, action (a linked action such as a rollback), escalation_stopped
    Column("kind", String(40), nullable=False),
    Column("actor", String(200)),
    Column("text", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("key", String(255), unique=True),  # set by repeatable writers (jobs): written once
    Index("ix_incident_events_incident_id_at", "incident_id", "at"),
)

alarm_transitions = Table(
    "alarm_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),  # sha256 of (alarm key, state, at)
    Column("source", String(20), nullable=False),
    Column("account", String(100)),
    Column("region", String(50)),
    Column("alarm", String(255), nullable=False),
    Column("state", String(20), nullable=False),
    Column("previous", String(20)),
    Column("reason", Text),
    Column("at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("incident_id", String(32)),
    Index("ix_alarm_transitions_received_at", "received_at"),
)

alarm_states = Table(
    "alarm_states",
    metadata,
    Column("alarm_key", String(ALARM_KEY_MAX), primary_key=True),
    Column("account", String(100)),
    Column("region", String(50)),
    Column("alarm", String(255), nullable=False),
    Column("state", String(20), nullable=False),
    Column("changed_at", Float, nullable=False),
    Column("reason", Text),
    Column("tags", JSON, nullable=False),
)

TABLES = [incidents, incident_alarms, incident_events, alarm_transitions, alarm_states]
