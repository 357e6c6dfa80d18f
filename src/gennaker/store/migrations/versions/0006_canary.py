"""Canary analyses and their judgements.

The schema is written out here as it was at this revision (not imported from the live table
modules), so that later revisions can change those modules and migrate with op.* calls.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_canary"
down_revision = "0005_credentials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canary_analyses",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("execution_id", sa.String(length=32), nullable=True),
        sa.Column("stage_id", sa.String(length=100), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("application", sa.String(length=100), nullable=False),
        sa.Column("baseline", sa.String(length=200), nullable=False),
        sa.Column("canary", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=50), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("result", sa.String(length=20), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("message", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canary_analyses")),
        sa.UniqueConstraint(
            "execution_id", "stage_id", "attempt", name=op.f("uq_canary_analyses_execution_id_stage_id_attempt")
        ),
    )
    op.create_index(
        "ix_canary_analyses_application_started_at", "canary_analyses", ["application", "started_at"], unique=False
    )
    op.create_table(
        "canary_judgements",
        sa.Column("analysis_id", sa.String(length=32), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("window_end", sa.Float(), nullable=False),
        sa.Column("judged_at", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("result", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["analysis_id"], ["canary_analyses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("analysis_id", "index", name=op.f("pk_canary_judgements")),
    )


def downgrade() -> None:
    op.drop_table("canary_judgements")
    op.drop_index("ix_canary_analyses_application_started_at", table_name="canary_analyses")
    op.drop_table("canary_analyses")
