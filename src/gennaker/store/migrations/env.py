"""Alembic environment: runs against the Engine that ``gennaker.store.db`` hands over."""

from __future__ import annotations

from alembic import context

import gennaker.ops.tables
import gennaker.store.tables
import gennaker.web.tables  # noqa: F401
from gennaker.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
