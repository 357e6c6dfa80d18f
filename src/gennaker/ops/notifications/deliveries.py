"""Notices and their deliveries: ``enqueue`` turns one notice into one durable delivery per channel.

``enqueue`` runs inside the caller's transaction (a pipeline's state change, an incident's), so the
change and its notifications commit together or not at all. It never raises for a bad channel: a
channel nobody declared is a delivery recorded as failed with the reason, and the caller goes on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from gennaker.engine import jobs
from gennaker.engine.job_tables import jobs as jobs_table
from gennaker.engine.model import new_id
from gennaker.ops.notifications.tables import notification_deliveries as deliveries

DELIVER = "notification.deliver"  # the job kind that sends one delivery
KEY_MAX = 200
PENDING, SENT, FAILED = "pending", "sent", "failed"


@dataclass(frozen=True)
class Notice:
    """What happened, said once for every channel; each channel renders it its own way."""

    event: str  # pipeline.complete, judgment.awaiting, incident.triggered, test, …
    title: str
    text: str
    link: str | None = None
    application: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    severity: str | None = None  # critical, error, warning, info (PagerDuty's words)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Notice:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        values["fields"] = {str(k): str(v) for k, v in (values.get("fields") or {}).items()}
        return cls(**values)


def enqueue(
    conn: Connection,
    channels: Sequence[str],
    notice: Notice,
    key: str,
    due_at: float | None = None,
    *,
    known_channels: Collection[str] | None = None,
    max_attempts: int = jobs.DEFAULT_MAX_ATTEMPTS,
) -> list[str]:
    """One delivery per channel, idempotent by (key, channel): enqueuing the same notice again returns
    the same delivery ids and sends nothing twice. With ``known_channels``, a channel not among them is
    recorded as a failed delivery at once (else its job finds out)."""
    if not key or len(key) > KEY_MAX:
        raise ValueError(f"a notice key must be 1 to {KEY_MAX} characters, got {len(key)}")
    now = time.time()
    due = now if due_at is None else due_at
    dialect: Any = sqlite if conn.dialect.name == "sqlite" else postgresql
    ids: list[str] = []
    for channel in dict.fromkeys(channels):  # each channel once, in the given order
        delivery_id = new_id()
        unknown = known_channels is not None and channel not in known_channels
        row = {
            "id": delivery_id,
            "key": key,
            "channel": channel[:100],
            "event": notice.event[:60],
            "application": notice.application,
            "notice": notice.as_dict(),
            "status": FAILED if unknown else PENDING,
            "attempts": 0,
            "job_key": None if unknown else f"notify:{delivery_id}",
            "created_at": now,
            "updated_at": now,
            "last_error": f"unknown notification channel '{channel}'" if unknown else None,
        }
        stmt = dialect.insert(deliveries).values(**row).on_conflict_do_nothing(index_elements=["key", "channel"])
        # RETURNING, not rowcount: on PostgreSQL rowcount is -1 for this statement
        if conn.execute(stmt.returning(deliveries.c.id)).first() is not None:
            if not unknown:
                jobs.schedule(conn, DELIVER, f"notify:{delivery_id}", {"delivery": delivery_id}, due, max_attempts)
            ids.append(delivery_id)
        else:
            existing = conn.execute(
                select(deliveries.c.id).where(deliveries.c.key == key, deliveries.c.channel == channel[:100])
            ).scalar_one()
            ids.append(existing)
    return ids


# A delivery's job may give up without its handler running (every worker that took it died): then
# the job's status and error are the delivery's, not a "pending" that would never change.
_WITH_JOB = select(
    deliveries, jobs_table.c.status.label("job_status"), jobs_table.c.last_error.label("job_error")
).select_from(deliveries.outerjoin(jobs_table, jobs_table.c.key == deliveries.c.job_key))


def _row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    job_status, job_error = d.pop("job_status"), d.pop("job_error")
    if d["status"] == PENDING and job_status in (jobs.FAILED, jobs.CANCELED):
        d["status"], d["last_error"] = FAILED, job_error or f"its job was {job_status}"
    return d


def get_delivery(conn: Connection, delivery_id: str) -> dict[str, Any] | None:
    row = conn.execute(_WITH_JOB.where(deliveries.c.id == delivery_id)).first()
    return _row(row) if row is not None else None


def list_deliveries(
    conn: Connection,
    applications: Collection[str] | None = None,
    *,
    channel: str | None = None,
    status: str | None = None,
    key: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first. ``applications`` None: all (an admin); else only notices of those applications
    (a notice with no application, such as a channel test, is an admin's to see)."""
    q = _WITH_JOB.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).limit(limit)
    if applications is not None:
        q = q.where(deliveries.c.application.in_(list(applications)))
    if channel is not None:
        q = q.where(deliveries.c.channel == channel)
    if status is not None:
        q = q.where(deliveries.c.status == status)
    if key is not None:
        q = q.where(deliveries.c.key == key)
    return [_row(r) for r in conn.execute(q).all()]
