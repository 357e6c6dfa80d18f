"""The engine's tables: pipelines, executions, stages, the message queue, logs, operations, workers.

Times are epoch seconds (double precision): one representation on SQLite and PostgreSQL, cheap to
compare in the queue's claim query.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, String, Table, Text

from gennaker.store.schema import metadata

pipelines = Table(
    "pipelines",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("application", String(100), nullable=False),
    Column("source", Text),
    Column("text", Text),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(200)),
    Column("registered", Boolean, nullable=False, default=False),
)

executions = Table(
    "executions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(100), nullable=False),
    Column("application", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("trigger", JSON, nullable=False),
    Column("pipeline_text", Text),
    Column("source", Text),
    Column("base_dir", Text),
    Column("concurrency_limit", Integer),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("message", Text),
    Index("ix_executions_pipeline_created", "pipeline", "created_at"),
    Index("ix_executions_status_created", "status", "created_at"),
    Index("ix_executions_application_created", "application", "created_at"),
    Index("ix_executions_created", "created_at"),
)

stages = Table(
    "stages",
    metadata,
    Column("execution_id", String(32), primary_key=True),
    Column("stage_id", String(100), primary_key=True),
    Column("idx", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("type", String(60), nullable=False),
    Column("status", String(20), nullable=False),
    Column("requires", JSON, nullable=False),
    Column("dependents", JSON, nullable=False),
    Column("config", JSON, nullable=False),
    Column("context", JSON, nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("tasks", JSON, nullable=False),
    Column("task_index", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False, default=0),
    Column("worker_id", String(64)),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("message", Text),
    Index("ix_stages_execution_status", "execution_id", "status"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("execution_id", String(32), nullable=False),
    Column("stage_id", String(100)),
    Column("payload", JSON, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("held", Boolean, nullable=False, default=False),
    Column("affinity", String(64)),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_messages_due", "held", "due_at"),
    Index("ix_messages_execution", "execution_id"),
)

logs = Table(
    "logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(32), nullable=False),
    Column("stage_id", String(100), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("stream", String(10), nullable=False),
    Column("line", Text, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_logs_stage", "execution_id", "stage_id", "id"),
)

operations = Table(
    "operations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(32)),
    Column("stage_id", String(100)),
    Column("action", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_operations_execution", "execution_id", "id"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Index("ix_workers_heartbeat", "heartbeat_at"),
)

# Totals of engine events that leave no row behind (a redelivered message is deleted once handled;
# a dead letter becomes a failed stage): kept here so every replica's /metrics reads the same count.
engine_counters = Table(
    "engine_counters",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("value", Integer, nullable=False, default=0),
)
