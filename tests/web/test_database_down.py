"""The database going away under a running server: every request that needs it is a 503 with one line
and a Retry-After (never a 500 with a traceback), whether it fails in a route or in access control
before any route, the reason stays in the server's log, and the process itself stays alive."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.runtime import build_runtime
from gennaker.web import store
from tests.conftest import admin_conn, fresh_postgres

from .conftest import DEMO, LOCAL, PASSWORD, auth_config, register

pytestmark = pytest.mark.postgres


@pytest.fixture
def dropped_later() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database: (its name, its URL); the test drops it."""
    with fresh_postgres("gennaker_down") as database:
        yield database


def test_a_database_that_goes_away_is_a_503_for_every_request_that_needs_it(
    dropped_later: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    name, url = dropped_later
    rt = build_runtime(url, config=auth_config())
    register(rt, DEMO)
    token = store.create_token(rt.db, "root", "alice", ["admin"], "test")["token"]
    auth = {"Authorization": f"Bearer {token}"}
    client = TestClient(create_app(rt), base_url=LOCAL, raise_server_exceptions=False)
    try:
        assert client.get("/api/pipelines", headers=auth).status_code == 200
        admin = admin_conn()
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # its connections are cut too
        admin.close()
        client.get("/login")  # (the CSRF cookie a sign-in needs)
        sign_in = {"username": "alice", "password": PASSWORD, "csrf_token": client.cookies["gk_csrf"]}
        with caplog.at_level(logging.WARNING, logger="gennaker.api"):
            answers = [
                client.get("/api/pipelines", headers=auth),  # the token's lookup, in access control
                client.get("/api/executions", headers=auth),
                client.post("/login", data=sign_in, follow_redirects=False),  # the login throttle's counters
            ]
        for r in answers:
            assert r.status_code == 503, (r.request.url, r.status_code, r.text)
            assert r.headers["retry-after"] == "5"
            assert r.json() == {"error": "DatabaseUnavailable", "message": "the database is unavailable; try again"}
            assert name not in r.text  # the database's name and host stay in the log
        assert name in caplog.text
        assert client.get("/api/pipelines").status_code == 401  # refusing the anonymous needs no database
        assert client.get("/healthz").status_code == 200  # the process is alive
        assert client.get("/readyz").status_code == 503  # and not ready
    finally:
        rt.db.dispose()
