"""Console tables: API tokens and the request audit log."""

from __future__ import annotations

from alembic import op

from gennaker.web import tables

revision = "0003_console"
down_revision = "0002_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # The tables as declared at this revision; later revisions alter them with op.* calls.
    for table in tables.TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(tables.TABLES):
        table.drop(bind)
