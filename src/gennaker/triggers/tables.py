"""Trigger deliveries (every one, accepted or refused, for the deliveries list) and firings (the key
that makes one scheduled time, one push or one parent execution start its pipeline once)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, Text

from gennaker.store.schema import metadata

trigger_deliveries = Table(
    "trigger_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("kind", String(20), nullable=False),  # git, webhook, cron, pipeline, image
    Column("source", String(200), nullable=False),  # github/acme/shop, my-ci, a pipeline name
    Column("delivery_key", String(200)),  # the sender's delivery id (X-GitHub-Delivery, ...)
    Column("outcome", String(20), nullable=False),  # started, duplicate, refused
    Column("http_status", Integer),
    Column("reason", Text),
    Column("summary", JSON, nullable=False),  # commit, branch, author; bounded
    Column("executions", JSON, nullable=False),  # [{pipeline, execution_id}]
    Index("ix_trigger_deliveries_received", "received_at"),
)

trigger_firings = Table(
    "trigger_firings",
    metadata,
    Column("key", String(300), primary_key=True),  # kind:pipeline:what (a delivery id, a scheduled time)
    Column("pipeline", String(100), nullable=False),
    Column("execution_id", String(32), nullable=False),
    Column("fired_at", Float, nullable=False),
    Column("label", String(300), nullable=False),  # how the execution was started, for people
    Index("ix_trigger_firings_pipeline", "pipeline", "fired_at"),
)

TABLES = [trigger_deliveries, trigger_firings]
