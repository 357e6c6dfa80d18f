"""Trigger deliveries and firings.

The schema is written out here as it was at this revision (not imported from the live table modules).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_triggers"
down_revision = "0010_counters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trigger_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("delivery_key", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("executions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_deliveries")),
    )
    op.create_index("ix_trigger_deliveries_received", "trigger_deliveries", ["received_at"])
    op.create_table(
        "trigger_firings",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("execution_id", sa.String(length=32), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_trigger_firings")),
    )
    op.create_index("ix_trigger_firings_pipeline", "trigger_firings", ["pipeline", "fired_at"])


def downgrade() -> None:
    op.drop_table("trigger_firings")
    op.drop_table("trigger_deliveries")
