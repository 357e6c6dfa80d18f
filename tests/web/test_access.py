"""Access control through the HTTP API and the console's forms (in process, no browser)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from gennaker.api.app import create_app
from gennaker.engine import operations as ops
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.web import store

from .conftest import DEMO, LOCAL, PASSWORD, QUICK, USERS, auth_config, register


def make(tmp_path: Any, config: Config) -> tuple[FastAPI, Runtime]:
    rt = build_runtime(str(tmp_path / "g.db"), config=config)
    register(rt, DEMO)
    register(rt, QUICK)
    app = create_app(rt)  # no worker: executions stay where the test puts them
    return app, rt


@pytest.fixture
def env(tmp_path: Any) -> Iterator[tuple[TestClient, Runtime, dict[str, str], FastAPI]]:
    app, rt = make(tmp_path, auth_config())
    tokens = {u: store.create_token(rt.db, u, u, roles, "test")["token"] for u, roles in USERS.items()}
    with TestClient(app, base_url=LOCAL) as client:
        yield client, rt, tokens, app
    rt.db.dispose()


def start(rt: Runtime, name: str = "demo") -> str:
    with rt.db.read() as conn:
        from gennaker.engine import views

        text_, _ = views.pipeline_text(conn, name)
    return ops.start_execution(rt.db, rt.pipeline_from_text(text_), {"version": "1"} if name == "demo" else {}, "test")


def csrf_of(client: TestClient) -> str:
    client.get("/login")
    return str(client.cookies.get("gk_csrf"))


def sign_in(client: TestClient, user: str) -> str:
    """Sign in through the form; returns the session's CSRF token (as the pages embed it)."""
    r = client.post(
        "/login",
        data={"username": user, "password": PASSWORD, "csrf_token": csrf_of(client), "next": "/applications"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = client.get("/applications")
    m = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert m
    return m.group(1)


def all_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, including those of included routers (FastAPI may keep them as nested routers)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from all_routes(nested.routes)
        else:
            yield route


def mutating_paths(app: FastAPI, execution_id: str, token_id: str) -> list[tuple[str, str]]:
    values = {
        "execution_id": execution_id,
        "stage_id": "judge",
        "name": "demo",
        "application": "shop",
        "token_id": token_id,
        "operation": "enable",
        "cluster": "shop-prod",
        "app": "shop",
        "provider": "github",
        "source": "ci",
        "incident_id": "no-such-incident",
    }
    out = []
    for route in all_routes(app.routes):
        if isinstance(route, APIRoute) and route.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)
            out.extend((method, path) for method in route.methods & {"POST", "PUT", "PATCH", "DELETE"})
    return sorted(out)


OPEN_TO_ALL = re.compile(r"^(/login|/logout)$")
# Deliveries carry no login: each hook authenticates by its signature (checked below: unsigned is a 4xx).
HOOKS = re.compile(r"^/hooks/")
ANY_USER = re.compile(r"^(/api)?/tokens")


def test_every_mutating_endpoint_rejects_anonymous_and_underprivileged(env: Any) -> None:
    client, rt, tokens, app = env
    execution_id = start(rt)
    with rt.db.read() as conn:
        token_id = store.list_tokens(conn, "alice")[0]["id"]
    paths = mutating_paths(app, execution_id, token_id)
    assert len(paths) >= 15  # the API's and the console's
    assert ("POST", f"/api/executions/{execution_id}/cancel") in paths
    csrf = csrf_of(client)
    checked = 0
    for method, path in paths:
        if OPEN_TO_ALL.match(path):
            continue
        if HOOKS.match(path):
            r = client.request(method, path, content=b"{}", follow_redirects=False)
            assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
            continue
        # Anonymous: a valid CSRF token, so only the missing identity can be the reason.
        r = client.request(
            method,
            path,
            data={"csrf_token": csrf} if not path.startswith("/api") else None,
            json={} if path.startswith("/api") else None,
            follow_redirects=False,
        )
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        if ANY_USER.match(path):
            continue
        # A viewer of the application: signed in, but not allowed.
        r = client.request(
            method,
            path,
            headers={"Authorization": f"Bearer {tokens['vic']}", "X-CSRF-Token": csrf},
            json={},
            follow_redirects=False,
        )
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        checked += 1
    assert checked >= 12
    ex = client.get(f"/api/executions/{execution_id}", headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert ex.json()["status"] == "NOT_STARTED"  # nothing above got through
    with rt.db.read() as conn:
        refused = store.read_audit(conn, execution_id=execution_id, limit=1000)
    assert refused and all(e["status_code"] in (401, 403) for e in refused)
    assert "vic" in {e["actor"] for e in refused}  # anonymous refusals are counted, not listed one by one


def test_operator_may_operate_only_their_application(env: Any) -> None:
    client, rt, tokens, _app = env
    execution_id = start(rt)
    olga = {"Authorization": f"Bearer {tokens['olga']}"}
    assert client.post(f"/api/executions/{execution_id}/cancel", json={}, headers=olga).status_code == 200
    # Registering pipelines runs commands on workers: admins only.
    r = client.post("/api/pipelines", json={"yaml": QUICK}, headers=olga)
    assert r.status_code == 403 and "admin" in r.json()["message"]
    assert (
        client.post(
            "/api/pipelines", json={"yaml": QUICK}, headers={"Authorization": f"Bearer {tokens['alice']}"}
        ).status_code
        == 201
    )
    # An operator of another application is only a stranger here.
    dead = store.create_token(rt.db, "x", "otto", ["web:operator"], "test")["token"]
    r = client.get("/api/whoami", headers={"Authorization": f"Bearer {dead}"})
    assert r.status_code == 401  # otto is no configured user: his token is worth nothing
    other = store.create_token(rt.db, "x", "vic", ["web:operator"], "test")["token"]  # nothing on shop
    r = client.post(
        "/api/pipelines/demo/executions",
        json={"params": {"version": "1"}},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert r.status_code in (403, 404)  # refused (outside one's applications: not found, tests/web/test_tenancy.py)
    r = client.get(f"/api/executions/{execution_id}", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code in (403, 404)


def test_reads_need_a_viewer_role(env: Any) -> None:
    client, rt, tokens, _app = env
    execution_id = start(rt)
    assert client.get("/api/executions").status_code == 401
    assert client.get(f"/api/executions/{execution_id}").status_code == 401
    assert client.get("/api/health").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    r = client.get("/applications/shop/pipelines", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert (
        client.get(f"/api/executions/{execution_id}", headers={"Authorization": f"Bearer {tokens['vic']}"}).status_code
        == 200
    )


def test_console_forms_need_csrf(env: Any) -> None:
    client, rt, _, _ = env
    execution_id = start(rt)
    csrf = sign_in(client, "olga")
    r = client.post(f"/executions/{execution_id}/cancel", data={}, follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = client.post(f"/executions/{execution_id}/cancel", data={"csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    # The pre-login cookie token is not the session's: signing in rotated it.
    assert csrf != client.cookies.get("gk_csrf")
    # The API with the session cookie needs the header too (htmx sends it).
    assert client.post(f"/api/executions/{execution_id}/pause", json={}).status_code == 403
    assert client.get(f"/api/executions/{execution_id}").json()["status"] == "NOT_STARTED"
    r = client.post(f"/executions/{execution_id}/cancel", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get(f"/api/executions/{execution_id}").json()["status"] == "CANCELED"
    # A cross-origin post is refused even with the token.
    r = client.post(
        "/logout", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert r.status_code == 403
    # The login form itself is protected (login CSRF).
    client.cookies.clear()
    r = client.post("/login", data={"username": "olga", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403


def test_login_is_rate_limited(env: Any) -> None:
    client, _, _, _ = env
    csrf = csrf_of(client)
    for _ in range(5):
        r = client.post("/login", data={"username": "rita", "password": "guess", "csrf_token": csrf})
        assert r.status_code == 401
    r = client.post("/login", data={"username": "rita", "password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 429 and "Too many" in r.text
    assert "gk_session" not in client.cookies


def test_tampered_session_is_anonymous(env: Any) -> None:
    client, _, _, _ = env
    sign_in(client, "alice")
    assert client.get("/api/whoami").json()["user"] == "alice"
    value = str(client.cookies.get("gk_session"))
    client.cookies.set("gk_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/api/whoami").status_code == 401


def test_security_headers_and_no_inline_script(env: Any) -> None:
    client, rt, _, _ = env
    execution_id = start(rt)
    sign_in(client, "vic")
    for path in ("/applications", "/applications/shop/pipelines", f"/executions/{execution_id}", "/login"):
        r = client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), path  # every script is a file
        assert not re.search(r"\son[a-z]+=", r.text), path  # and no inline handlers
    assert "frame-ancestors 'none'" in client.get("/api/health").headers["content-security-policy"]


def test_tokens_created_shown_once_and_revoked(env: Any) -> None:
    client, rt, tokens, _app = env
    olga = {"Authorization": f"Bearer {tokens['olga']}"}
    r = client.post("/api/tokens", json={"name": "ci"}, headers=olga)
    assert r.status_code == 201
    new = r.json()
    assert new["token"].startswith("gk_") and new["roles"] == ["shop:operator"] and new["user"] == "olga"
    listed = client.get("/api/tokens", headers=olga).json()
    assert all("token" not in t and "token_hash" not in t for t in listed)
    assert {t["user"] for t in listed} == {"olga"}  # her own only
    with rt.db.read() as conn:
        stored = conn.execute(text("SELECT token_hash FROM api_tokens WHERE id = :i"), {"i": new["id"]}).scalar()
    assert stored and new["token"] not in stored and len(stored) == 64
    fresh = {"Authorization": f"Bearer {new['token']}"}
    assert client.get("/api/whoami", headers=fresh).json() == {
        "user": "olga",
        "auth": "token",
        "roles": ["shop:operator"],
        "is_admin": False,
        "access_control": True,
    }
    # No escalation: not more roles than her own, not for somebody else.
    assert client.post("/api/tokens", json={"name": "x", "roles": ["admin"]}, headers=olga).status_code == 403
    assert client.post("/api/tokens", json={"name": "x", "user": "rita"}, headers=olga).status_code == 403
    with rt.db.read() as conn:
        alice_token = store.list_tokens(conn, "alice")[0]["id"]
    assert client.post(f"/api/tokens/{alice_token}/revoke", headers=olga).status_code == 403
    assert client.post(f"/api/tokens/{new['id']}/revoke", headers=olga).status_code == 200
    assert client.get("/api/whoami", headers=fresh).status_code == 401
    # Admins manage everyone's.
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    r = client.post(
        "/api/tokens", json={"name": "deploy-bot", "user": "rita", "roles": ["shop:operator"]}, headers=alice
    )
    assert r.status_code == 201 and r.json()["user"] == "rita"
    assert len(client.get("/api/tokens", headers=alice).json()) > len(listed)


def test_trusted_headers(tmp_path: Any) -> None:
    th = {"enabled": True, "trusted_proxies": ["10.0.0.0/24"], "default_roles": ["shop:viewer"]}
    app, rt = make(tmp_path, auth_config(trusted_headers=th))
    execution_id = start(rt)
    with TestClient(app, base_url=LOCAL, client=("10.0.0.7", 40000)) as client:  # the proxy
        who = {"X-Forwarded-User": "bob", "X-Forwarded-Groups": "shop:operator, release-managers"}
        me = client.get("/api/whoami", headers=who).json()
        assert me["user"] == "bob" and set(me["roles"]) == {"shop:operator", "release-managers", "shop:viewer"}
        assert client.post(f"/api/executions/{execution_id}/cancel", json={}, headers=who).status_code == 200
        assert client.get(f"/api/executions/{execution_id}/operations", headers=who).json()[-1]["actor"] == "bob"
    # From an address that is not a trusted proxy the header means nothing.
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 40000)) as client:
        assert client.get("/api/whoami", headers={"X-Forwarded-User": "bob"}).status_code == 401
    # Off by default.
    (tmp_path / "c").mkdir()
    app, _rt3 = make(tmp_path / "c", auth_config())
    with TestClient(app, base_url=LOCAL, client=("10.0.0.7", 40000)) as client:
        assert client.get("/api/whoami", headers={"X-Forwarded-User": "bob"}).status_code == 401


def test_insecure_no_auth_keeps_the_header_actor(tmp_path: Any) -> None:
    app, rt = make(tmp_path, Config(server={"insecure_no_auth": True}))
    execution_id = start(rt)
    with TestClient(app, base_url=LOCAL) as client:
        r = client.post(
            f"/api/executions/{execution_id}/cancel", json={"reason": "x"}, headers={"X-Gennaker-User": "carol"}
        )
        assert r.status_code == 200  # no credentials, no CSRF: the API as before
        assert client.get(f"/api/executions/{execution_id}/operations").json()[-1]["actor"] == "carol"
        assert client.get("/api/whoami").json()["access_control"] is False
        # Console forms still carry a CSRF token.
        other = start(rt)
        assert client.post(f"/executions/{other}/cancel", data={}, follow_redirects=False).status_code == 403
        entries = client.get("/api/audit").json()
        assert entries[0]["status_code"] == 403 and entries[1]["actor"] == "carol"
        # Every page says so.
        for path in ("/applications", "/applications/shop/pipelines", f"/executions/{execution_id}", "/audit"):
            assert 'data-testid="insecure-banner"' in client.get(path).text, path


def test_audit_log_export(env: Any) -> None:
    client, rt, tokens, _app = env
    execution_id = start(rt)
    rita = {"Authorization": f"Bearer {tokens['rita']}", "User-Agent": "pytest-agent"}
    client.post(f"/api/executions/{execution_id}/pause", json={}, headers=rita)
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    entries = client.get("/api/audit", params={"execution": execution_id}, headers=alice).json()
    assert entries[0]["actor"] == "rita" and entries[0]["action"] == "pause" and entries[0]["auth"] == "token"
    assert entries[0]["client"] == "testclient" and entries[0]["user_agent"] == "pytest-agent"
    assert entries[0]["application"] == "shop" and entries[0]["status_code"] == 409  # not running: refused
    csv_text = client.get("/api/audit", params={"format": "csv"}, headers=alice).text
    assert csv_text.splitlines()[0].startswith("id,at,actor,auth,action")
    vic = {"Authorization": f"Bearer {tokens['vic']}"}
    assert client.get("/api/audit", headers=vic).status_code == 403
    assert client.get("/api/audit", params={"application": "shop"}, headers=vic).status_code == 200
    assert client.get("/api/audit", params={"application": "web"}, headers=vic).status_code == 403


def test_migration_creates_console_tables(env: Any) -> None:
    _, rt, _, _ = env
    names = set(inspect(rt.db.engine).get_table_names())
    assert {"api_tokens", "audit_log"} <= names
    from alembic.script import ScriptDirectory

    from gennaker.store.db import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with rt.db.read() as conn:  # migrated to the newest revision, which comes after the console's
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    assert head is not None and head >= "0003_console"
