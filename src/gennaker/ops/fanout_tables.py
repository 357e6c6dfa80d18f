"""Organization-wide audit runs and their parts (one per account x region, or an account's global
types), each part's collection stored by the worker that ran it (ops/fanout.py)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Integer, PrimaryKeyConstraint, String, Table

from gennaker.store.schema import metadata

ops_audit_runs = Table(
    "ops_audit_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("status", String(20), nullable=False),  # collecting, done
    Column("request", JSON, nullable=False),  # checks, accounts, regions, types, source, account skeletons
    Column("parts_total", Integer, nullable=False),
    Column("audit_id", String(36)),
    Column("snapshot_id", String(36)),
    Column("finished_at", Float),
)

ops_audit_parts = Table(
    "ops_audit_parts",
    metadata,
    Column("run_id", String(36), nullable=False),
    Column("part_key", String(200), nullable=False),  # account/region or account/global
    Column("account_id", String(20)),  # resolved by the part (None: it could not be)
    Column("resources", JSON, nullable=False),
    Column("failures", JSON, nullable=False),
    Column("durations", JSON, nullable=False),
    Column("tasks", Integer, nullable=False),
    Column("calls", JSON, nullable=False),
    Column("worker_id", String(100)),
    Column("finished_at", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "part_key", name="pk_ops_audit_parts"),
)

TABLES = [ops_audit_runs, ops_audit_parts]
