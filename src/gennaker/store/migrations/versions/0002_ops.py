"""Ops tables: inventory snapshots, resources and audits.

The schema is written out here as it was at this revision (not imported from the live table
modules), so that later revisions can change those modules and migrate with op.* calls.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ops"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_snapshots",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("accounts", sa.JSON(), nullable=False),
        sa.Column("types", sa.JSON(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("resource_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_snapshots")),
    )
    op.create_index(op.f("ix_ops_snapshots_created_at"), "ops_snapshots", ["created_at"], unique=False)
    op.create_table(
        "ops_audits",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=36), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["snapshot_id"], ["ops_snapshots.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_audits")),
    )
    op.create_index(op.f("ix_ops_audits_created_at"), "ops_audits", ["created_at"], unique=False)
    op.create_table(
        "ops_resources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("snapshot_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column("resource_id", sa.String(length=1024), nullable=False),
        sa.Column("arn", sa.Text(), nullable=True),
        sa.Column("name", sa.String(length=1024), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["snapshot_id"], ["ops_snapshots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_resources")),
    )
    op.create_index("ix_ops_resources_snapshot_type", "ops_resources", ["snapshot_id", "type"], unique=False)


def downgrade() -> None:
    op.drop_table("ops_resources")
    op.drop_table("ops_audits")
    op.drop_table("ops_snapshots")
