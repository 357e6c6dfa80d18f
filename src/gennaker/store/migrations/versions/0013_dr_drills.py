"""DR drills: each rehearsal of a recovery scenario, its measured RTO/RPO and report.

The schema is written out here as it was at this revision (not imported from the live table modules).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_dr_drills"
down_revision = "0012_server_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dr_drills",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("application", sa.String(length=200), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=True),
        sa.Column("scenario", sa.String(length=30), nullable=True),
        sa.Column("from_region", sa.String(length=50), nullable=True),
        sa.Column("to_region", sa.String(length=50), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("rto_s", sa.Float(), nullable=True),
        sa.Column("rpo", sa.JSON(), nullable=True),
        sa.Column("rpo_s", sa.Float(), nullable=True),
        sa.Column("objectives", sa.JSON(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("execution_id", sa.String(length=36), nullable=True),
        sa.Column("stage_id", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dr_drills")),
    )
    op.create_index("ix_dr_drills_application", "dr_drills", ["application"])


def downgrade() -> None:
    op.drop_table("dr_drills")
