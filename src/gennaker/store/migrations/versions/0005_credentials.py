"""Credentials that end: server-side sessions, login throttle counters, token parents; a bounded,
aggregated audit log.

The schema is written out here as it was at this revision (not imported from the live table
modules), so that later revisions can change those modules and migrate with op.* calls.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_credentials"
down_revision = "0004_nullable_score"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"], unique=False)
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_index("ix_login_throttle_window_start", "login_throttle", ["window_start"], unique=False)
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch.create_index("ix_api_tokens_parent", ["parent_id"], unique=False)
    # Existing entries are cut to the new bounds before the columns shrink.
    op.execute("UPDATE audit_log SET path = substr(path, 1, 512) WHERE length(path) > 512")
    op.execute("UPDATE audit_log SET user_agent = substr(user_agent, 1, 256) WHERE length(user_agent) > 256")
    with op.batch_alter_table("audit_log") as batch:  # SQLite cannot ALTER COLUMN in place
        batch.alter_column("path", existing_type=sa.Text(), type_=sa.String(length=512), existing_nullable=False)
        batch.alter_column("user_agent", existing_type=sa.Text(), type_=sa.String(length=256), existing_nullable=True)
        batch.add_column(sa.Column("hits", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("aggregate_key", sa.String(length=200), nullable=True))
        batch.create_unique_constraint(op.f("uq_audit_log_aggregate_key"), ["aggregate_key"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(op.f("uq_audit_log_aggregate_key"), type_="unique")
        batch.drop_column("aggregate_key")
        batch.drop_column("hits")
        batch.alter_column("user_agent", existing_type=sa.String(length=256), type_=sa.Text(), existing_nullable=True)
        batch.alter_column("path", existing_type=sa.String(length=512), type_=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_parent")
        batch.drop_column("parent_id")
    op.drop_table("login_throttle")
    op.drop_table("sessions")
