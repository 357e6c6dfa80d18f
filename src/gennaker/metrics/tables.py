"""Canary analyses and their judgements (SQLite and PostgreSQL; times are epoch seconds).

An analysis is one canary stage attempt (or nothing but a stored window, for a retroactive one):
its configuration, the baseline and canary server groups, and its outcome. Each judgement of its
lifetime is a row keyed by (analysis, index), so storing one twice keeps one row; the per-metric
results carry the baseline and canary series the report draws.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from gennaker.store.schema import metadata

canary_analyses = Table(
    "canary_analyses",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("execution_id", String(32)),  # null: not run by a pipeline
    Column("stage_id", String(100)),
    Column("attempt", Integer, nullable=False),
    Column("application", String(100), nullable=False),
    Column("baseline", String(200), nullable=False),  # server group names
    Column("canary", String(200), nullable=False),
    Column("location", String(50), nullable=False),
    Column("config", JSON, nullable=False),  # the AnalysisConfig, as given
    Column("started_at", Float, nullable=False),  # when both groups served (windows count from here)
    Column("ended_at", Float),
    Column("status", String(20), nullable=False),  # running, succeeded, failed, canceled
    Column("result", String(20)),  # pass, marginal, fail (of the last judgement)
    Column("score", Float),
    Column("message", String(1000)),
    UniqueConstraint("execution_id", "stage_id", "attempt"),
    Index("ix_canary_analyses_application_started_at", "application", "started_at"),
)

canary_judgements = Table(
    "canary_judgements",
    metadata,
    Column("analysis_id", String(32), ForeignKey("canary_analyses.id", ondelete="CASCADE"), primary_key=True),
    Column("index", Integer, primary_key=True),  # 1-based, as plan_windows numbers them
    Column("window_start", Float, nullable=False),
    Column("window_end", Float, nullable=False),
    Column("judged_at", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("result", String(20), nullable=False),
    Column("summary", JSON, nullable=False),  # groups, reasons, errors
    Column("metrics", JSON, nullable=False),  # per metric: label, figures, baseline/canary series
)

TABLES = [canary_analyses, canary_judgements]
