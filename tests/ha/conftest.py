"""Replica fixtures: a fresh PostgreSQL database per test (several servers share one database)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import POSTGRES_URL
from tests.core.test_postgres import _admin_conn


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (dropped afterwards, whoever still holds it)."""
    admin = _admin_conn()  # skips with the reason when PostgreSQL is not reachable
    name = f"gennaker_ha_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
