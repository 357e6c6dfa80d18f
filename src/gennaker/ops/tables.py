"""Ops tables: inventory snapshots, their resources, and audit results (SQLite and PostgreSQL).

Times are epoch seconds like the core tables. A resource row is compact: identity columns to filter
on, and tags/attributes as JSON, so show/search/export/diff are plain queries over one snapshot.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from gennaker.store.schema import metadata

ops_snapshots = Table(
    "ops_snapshots",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False, index=True),
    Column("accounts", JSON, nullable=False),  # name -> {account_id, regions, dr_region, environment}
    Column("types", JSON, nullable=False),  # resource types the collection tried
    Column("failures", JSON, nullable=False),  # [{account, region, type, code, message}]
    Column("stats", JSON, nullable=False),  # duration, calls per service
    Column("resource_count", Integer, nullable=False),
)

ops_resources = Table(
    "ops_resources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("snapshot_id", String(36), ForeignKey("ops_snapshots.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(100), nullable=False),
    Column("account", String(100), nullable=False),
    Column("region", String(50), nullable=False),
    Column("resource_id", String(1024), nullable=False),
    Column("arn", Text),
    Column("name", String(1024)),
    Column("tags", JSON, nullable=False),
    Column("attributes", JSON, nullable=False),
    Index("ix_ops_resources_snapshot_type", "snapshot_id", "type"),
)

ops_audits = Table(
    "ops_audits",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False, index=True),
    Column("snapshot_id", String(36), ForeignKey("ops_snapshots.id", ondelete="SET NULL")),
    Column("score", Float, nullable=True),  # null: nothing could be scored (0004_nullable_score)
    Column("summary", JSON, nullable=False),
    Column("report", JSON, nullable=False),  # the full JSON contract of the audit
    Column("source", String(100)),  # cli, api, or the pipeline execution/stage that ran it
)

TABLES = [ops_snapshots, ops_resources, ops_audits]
