"""What the console and API remember lives in the database, so two replicas on one PostgreSQL (each
its own app, built from the same configuration, as two `gennaker server` processes are) serve one
user as one server: a session or CSRF token from one works on the other, the local admin's login
link and credential work on both, failed sign-ins count on both, and a live log that reconnects to
the other replica resumes where it stopped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.engine import logs as stage_logs
from gennaker.engine import operations as ops
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from gennaker.web.credentials import ensure_admin_token, local_urls, login_link
from gennaker.web.security import CSRF_COOKIE, SESSION_COOKIE, hash_password
from tests.core.conftest import finished

PASSWORD = "correct horse battery staple"
BASE = "http://127.0.0.1"  # a Host both replicas allow


def _config(**auth: Any) -> Config:
    # No secret_key: the case where each process used to make its own random signing key.
    users = {"alice": {"password_hash": hash_password(PASSWORD), "roles": ["admin"]}}
    return Config(auth={"secure_cookies": False, "users": users, **auth})


def _replicas(url: str, config: Config | None) -> Iterator[tuple[TestClient, TestClient]]:
    runtimes = [build_runtime(url, config=(config or Config()).model_copy(deep=True)) for _ in range(2)]
    clients = [TestClient(create_app(rt), base_url=BASE, follow_redirects=False) for rt in runtimes]
    try:
        yield clients[0], clients[1]
    finally:
        for c in clients:
            c.close()
        for rt in runtimes:
            rt.db.dispose()


@pytest.fixture
def pair(pg_url: str) -> Iterator[tuple[TestClient, TestClient]]:
    yield from _replicas(pg_url, _config(login_rate={"attempts": 3, "per_seconds": 60}))


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def _sign_in(client: TestClient, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": "alice", "password": password, "csrf_token": _csrf(page.text), "next": "/applications"},
        headers={"Origin": BASE},
    )


def test_a_session_and_its_csrf_token_from_one_replica_work_on_the_other(
    pair: tuple[TestClient, TestClient],
) -> None:
    a, b = pair
    assert _sign_in(a).status_code == 303
    session = a.cookies[SESSION_COOKIE]
    b.cookies.set(SESSION_COOKIE, session)
    who = b.get("/api/whoami")
    assert who.status_code == 200 and who.json()["user"] == "alice", who.text
    # The CSRF token of a page replica B rendered is the session's: replica A accepts it.
    csrf = _csrf(b.get("/applications").text)
    a.cookies.set(SESSION_COOKIE, session)
    out = a.post("/logout", data={"csrf_token": csrf}, headers={"Origin": BASE})
    assert out.status_code == 303, out.text
    # Signed out on A: the same cookie signs nobody in on B either.
    b.cookies.set(SESSION_COOKIE, session)
    assert b.get("/api/whoami").status_code == 401


def test_failed_sign_ins_on_one_replica_count_on_the_other(pair: tuple[TestClient, TestClient]) -> None:
    a, b = pair
    for _ in range(3):
        assert _sign_in(a, "wrong password").status_code == 401
    locked = _sign_in(b)  # the right password, on the other replica: still locked
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text


def test_the_local_admin_login_link_and_credential_work_on_every_replica(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without an auth: section: each replica makes sure of a local admin token for its own
    address; a login link printed by one signs a browser in on the other, and that browser's session
    holds on both."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for a, b in _replicas(pg_url, None):
        db_a = a.app.state.runtime.db  # type: ignore[attr-defined]
        db_b = b.app.state.runtime.db  # type: ignore[attr-defined]
        token_a = ensure_admin_token(db_a, local_urls("127.0.0.1", 18001))
        token_b = ensure_admin_token(db_b, local_urls("127.0.0.1", 18002))
        for client, token in ((a, token_b), (b, token_a)):
            me = client.get("/api/whoami", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["user"] == "admin", me.text
        link = login_link(db_a, "http://127.0.0.1:18001").split("/login", 1)[1]
        spent = b.get(f"/login{link}")
        assert spent.status_code == 303 and spent.headers["location"] == "/applications", spent.text
        session = b.cookies[SESSION_COOKIE]
        a.cookies.set(SESSION_COOKIE, session)
        a.cookies.delete(CSRF_COOKIE)
        assert a.get("/api/whoami").json()["user"] == "admin"
        assert b.get(f"/login{link}").headers["location"].startswith("/login?err=")  # spent on both


LINES = """\
name: lines
application: shop
stages:
  - {id: talk, type: run, command: "echo one; echo two; echo three"}
"""


def _first_log_event(client: TestClient, url: str, headers: dict[str, str]) -> str:
    """The first ``log`` event of a stream (its raw text), reading no further."""
    block: list[str] = []
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line:
                block.append(line)
            elif block and block[0] == "event: log":
                return "\n".join(block)
            else:
                block = []
    raise AssertionError("the stream ended without a log event")


def test_a_live_log_that_reconnects_to_another_replica_resumes_after_its_last_line(pg_url: str, tmp_path: Path) -> None:
    for a, b in _replicas(pg_url, Config()):  # no auth: section: a loopback reader is a viewer
        rt = a.app.state.runtime  # type: ignore[attr-defined]
        path = tmp_path / "lines.yml"
        path.write_text(LINES)
        execution = ops.start_execution(rt.db, rt.load_pipeline(str(path)), {}, "tester")
        worker = rt.worker(threads=1)
        worker.start()
        try:
            finished(rt, execution)
        finally:
            worker.stop()
        url = f"/executions/{execution}/events?stage=talk&after=0"
        first = _first_log_event(a, url, {})
        assert "one" in first and "three" in first
        ids = re.findall(r"^id: (\d+)$", first, re.M)
        assert ids, first  # the event carries the id of its last line
        with rt.db.read() as conn:
            lines = stage_logs.read(conn, execution, "talk", 0)
        second_id = next(line["id"] for line in lines if line["line"].strip() == "two")
        # The browser reconnects (to the other replica) saying it has everything up to "two".
        again = _first_log_event(b, url, {"Last-Event-ID": str(second_id)})
        assert "three" in again and "one" not in again and "two" not in again, again
