"""Replica fixtures: a fresh PostgreSQL database per test (several servers share one database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import fresh_postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (dropped afterwards, whoever still holds it)."""
    with fresh_postgres("gennaker_ha") as (_name, url):  # skips with the reason when PostgreSQL is not reachable
        yield url
