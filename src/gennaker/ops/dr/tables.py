"""DR drills: one row per drill, its measured RTO/RPO and the full report (the shared contract in
docs/dr.md: the console tab and the audit read these columns). Times are epoch seconds."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, String, Table

from gennaker.store.schema import metadata

dr_drills = Table(
    "dr_drills",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("application", String(200), nullable=False),
    Column("account", String(100)),
    Column("scenario", String(30)),  # region_loss, restore_data, failover_dns
    Column("from_region", String(50)),
    Column("to_region", String(50)),
    Column("status", String(20)),  # RUNNING, SUCCEEDED, FAILED, CANCELED
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("rto_s", Float),  # measured: start to serving in the DR region
    Column("rpo", JSON),  # [{store, kind, age_s}] at the start
    Column("rpo_s", Float),  # the worst age in rpo
    Column("objectives", JSON),  # {rto_s, rpo_s}
    Column("report", JSON),  # {steps: [{name, status, duration_s, detail}], missing: [str], met_objectives}
    Column("execution_id", String(36)),
    Column("stage_id", String(100)),
    Index("ix_dr_drills_application", "application"),
)

TABLES = [dr_drills]
