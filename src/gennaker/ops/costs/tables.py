"""The Cost Explorer cache: one row per query (each GetCostAndUsage request costs $0.01), holding
the daily amounts it answered, so the same question asked again costs nothing until ``--refresh``."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Integer, String, Table

from gennaker.store.schema import metadata

cost_cache = Table(
    "cost_cache",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 of the source and the query
    Column("source", String(20), nullable=False),
    Column("query", JSON, nullable=False),
    Column("days", JSON, nullable=False),  # [[YYYY-MM-DD, group, amount], ...]
    Column("requests", Integer, nullable=False),  # what filling this row cost
    Column("fetched_at", Float, nullable=False),
)

TABLES = [cost_cache]
