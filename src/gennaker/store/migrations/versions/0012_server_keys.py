"""Keys every server replica shares: the session cookie signing key when the configuration sets none.

The schema is written out here as it was at this revision (not imported from the live table modules).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_server_keys"
down_revision = "0011_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_keys")),
    )


def downgrade() -> None:
    op.drop_table("server_keys")
