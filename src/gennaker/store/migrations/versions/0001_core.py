"""Core engine tables: pipelines, executions, stages, messages, logs, operations, workers."""

from __future__ import annotations

from alembic import op

from gennaker.store import tables

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = [
    tables.pipelines,
    tables.executions,
    tables.stages,
    tables.messages,
    tables.logs,
    tables.operations,
    tables.workers,
]


def upgrade() -> None:
    bind = op.get_bind()
    # The tables as declared at this revision; later revisions alter them with op.* calls.
    for table in _TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind)
