"""An audit's score may be null: nothing passed or failed, so there is nothing to score."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_nullable_score"
down_revision = "0003_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ops_audits") as batch:  # SQLite cannot ALTER COLUMN in place
        batch.alter_column("score", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE ops_audits SET score = -1 WHERE score IS NULL")
    with op.batch_alter_table("ops_audits") as batch:
        batch.alter_column("score", existing_type=sa.Float(), nullable=False)
