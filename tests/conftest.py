"""Shared fixtures: simulated AWS (moto in server mode, over real HTTP), databases, config."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test reach a real account: fake keys, no profile, a fixed default region."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(autouse=True)
def _own_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The user data and state directories (default database, the local credentials a server writes,
    the status files of run supervisors) are the test session's, never the real user's; subprocesses
    inherit them."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "xdg-data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-state"))  # run status files


def admin_client(app: Any, **kwargs: Any) -> Any:
    """A TestClient for an app without an auth: section, as this machine's admin: a Host the server
    allows (TestClient's default "testserver" is none of its names) and a local admin token."""
    from fastapi.testclient import TestClient

    from gennaker.web import store
    from gennaker.web.credentials import LOCAL_ADMIN

    token = store.create_token(app.state.runtime.db, "test admin", LOCAL_ADMIN, ["admin"], "test")["token"]
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return TestClient(app, base_url="http://127.0.0.1", headers=headers, **kwargs)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session; tests reset it through ``moto_endpoint``."""
    pytest.importorskip("moto", reason="moto (gennaker[sandbox]) is not installed")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(moto_server: str) -> str:
    """A clean simulated AWS for one test (moto's reset API over HTTP)."""
    import httpx

    httpx.post(f"{moto_server}/moto-api/reset", timeout=30).raise_for_status()
    return moto_server


POSTGRES_URL = os.environ.get("GENNAKER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def admin_conn() -> Any:
    """An autocommit connection to the test PostgreSQL server (to create and drop databases); skips
    the test with the reason when psycopg is missing or the server is not reachable."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg (gennaker[postgres]) is not installed")
    dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {dsn}: {exc}")


@contextmanager
def fresh_postgres(prefix: str = "gennaker_test") -> Iterator[tuple[str, str]]:
    """A new, empty PostgreSQL database: (its name, its URL), dropped afterwards whoever still holds it
    (the test may drop it itself). Skips the test with the reason when PostgreSQL is not reachable."""
    admin = admin_conn()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield name, POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def fresh_postgres_database(prefix: str = "gennaker_test") -> Iterator[Any]:
    """``fresh_postgres``, opened (migrated) as a ``Database``, disposed before it is dropped."""
    from gennaker.store.db import open_database

    with fresh_postgres(prefix) as (_name, url):
        database = open_database(url)
        try:
            yield database
        finally:
            database.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI=true) a skipped test is a failure: every system part must be there."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every test must run:", red=True)
        for report in skipped:
            reporter.write_line(
                f"  {report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}"
            )
        session.exitstatus = 1
