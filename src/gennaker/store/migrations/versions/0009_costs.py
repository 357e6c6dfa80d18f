"""Cost query cache.

The schema is written out here as it was at this revision (not imported from the live table
modules), so that later revisions can change those modules and migrate with op.* calls.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_costs"
down_revision = "0008_incidents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cost_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("fetched_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cost_cache")),
    )


def downgrade() -> None:
    op.drop_table("cost_cache")
