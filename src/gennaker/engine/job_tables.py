"""Durable jobs (``gennaker.engine.jobs``) and the record of every attempt at one.

A job row is kept after it ends (done, failed or canceled): its key is what makes scheduling
idempotent, and a job that gave up stays visible with its last error. Times are epoch seconds.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from gennaker.store.schema import metadata

KEY_MAX = 255  # PagerDuty's dedup keys are at most 255 characters too

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(KEY_MAX), nullable=False, unique=True),
    Column("kind", String(60), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # pending, done, failed, canceled
    Column("due_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("last_error", Text),
    Column("note", Text),
    Index("ix_jobs_status_due_at", "status", "due_at"),
)

job_attempts = Table(
    "job_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker_id", String(64), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    # done, retry, failed; abandoned when its worker died (or lost its lease) before it finished
    Column("outcome", String(20)),
    Column("error", Text),
    Index("ix_job_attempts_job_id", "job_id", "attempt"),
)

TABLES = [jobs, job_attempts]
