"""Notification deliveries: one row per (notice key, channel), the notice it carries and how its
sending went. Each delivery is sent by a durable job (``gennaker.engine.jobs``), whose
``job_attempts`` rows are the record of every try."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from gennaker.store.schema import metadata

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),  # also sent to receivers, for their dedup
    Column("key", String(200), nullable=False),  # the caller's idempotency key of the notice
    Column("channel", String(100), nullable=False),
    Column("event", String(60), nullable=False),
    Column("application", String(100)),
    Column("notice", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # pending, sent, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("job_key", String(255)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("last_error", Text),
    UniqueConstraint("key", "channel"),
    Index("ix_notification_deliveries_application_created_at", "application", "created_at"),
    Index("ix_notification_deliveries_created_at", "created_at"),
)

TABLES = [notification_deliveries]
