"""Organization-wide audit runs and their parts (collected by workers as durable jobs).

The schema is written out here as it was at this revision (not imported from the live table modules).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_audit_runs"
down_revision = "0013_dr_drills"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_audit_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("parts_total", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.String(length=36), nullable=True),
        sa.Column("snapshot_id", sa.String(length=36), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_audit_runs")),
    )
    op.create_table(
        "ops_audit_parts",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("part_key", sa.String(length=200), nullable=False),
        sa.Column("account_id", sa.String(length=20), nullable=True),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("durations", sa.JSON(), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
        sa.Column("calls", sa.JSON(), nullable=False),
        sa.Column("worker_id", sa.String(length=100), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "part_key", name="pk_ops_audit_parts"),
    )


def downgrade() -> None:
    op.drop_table("ops_audit_parts")
    op.drop_table("ops_audit_runs")
