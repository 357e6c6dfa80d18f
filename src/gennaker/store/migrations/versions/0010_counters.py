"""Engine event totals (redeliveries, dead letters, repaired executions) for /metrics.

The schema is written out here as it was at this revision (not imported from the live table modules).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_counters"
down_revision = "0009_costs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engine_counters",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_engine_counters")),
    )


def downgrade() -> None:
    op.drop_table("engine_counters")
