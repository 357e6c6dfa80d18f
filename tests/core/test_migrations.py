"""The migrations produce exactly the tables the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import gennaker.engine.job_tables
import gennaker.metrics.tables
import gennaker.ops.costs.tables
import gennaker.ops.dr.tables
import gennaker.ops.fanout_tables
import gennaker.ops.incidents.tables
import gennaker.ops.notifications.tables
import gennaker.ops.tables
import gennaker.store.tables
import gennaker.triggers.tables
import gennaker.web.tables  # noqa: F401  (all table modules register on the one metadata)
from gennaker.store.db import open_database
from gennaker.store.schema import metadata
from tests.conftest import fresh_postgres


def _diff(url: str) -> list[object]:
    db = open_database(url)
    try:
        with db.engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        db.dispose()


def test_sqlite_schema_matches_declared_tables(tmp_path: Path) -> None:
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


def test_postgres_schema_matches_declared_tables() -> None:
    with fresh_postgres("gennaker_mig") as (_name, url):
        assert _diff(url) == []
