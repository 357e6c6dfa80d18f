"""Tokens and sessions end with their grant (issue 8, item 7), over HTTP: a removed user's token is
refused after a restart, a demoted user's token carries only what they hold now, a token minted with a
token neither outlives nor out-ranks it and dies with it, and logging out ends the session on the
server (a replayed cookie is refused)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gennaker.api.app import create_app
from gennaker.errors import InvalidInput
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.web import store
from gennaker.web.security import Sessions
from gennaker.web.tables import sessions

from .conftest import DEMO, PASSWORD, USERS, auth_config, register
from .test_login_burst import postgres_url as pg_database
from .test_login_burst import replicas

postgres_url = pg_database  # the fixture: a fresh PostgreSQL database

BASE = "http://127.0.0.1"  # a Host the server knows as its own


def users_config(users: dict[str, list[str]], **extra: Any) -> Config:
    config = auth_config(**extra)
    config.auth["users"] = {
        name: {**config.auth["users"][name], "roles": roles}
        for name, roles in users.items()
        if name in config.auth["users"]
    }
    return config


class Servers:
    """One database; each ``start`` is a server (re)started on it with a given configuration."""

    def __init__(self, path: Path):
        self.path = path
        self.runtimes: list[Runtime] = []

    def start(self, config: Config) -> TestClient:
        rt = build_runtime(str(self.path), config=config)
        if not self.runtimes:
            register(rt, DEMO)
        self.runtimes.append(rt)
        return TestClient(create_app(rt), base_url=BASE)

    @property
    def db(self) -> Any:
        return self.runtimes[-1].db


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path / "g.db")
    yield s
    for rt in s.runtimes:
        rt.db.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def whoami(client: TestClient, token: str) -> Any:
    r = client.get("/api/whoami", headers=bearer(token))
    return r.json() if r.status_code == 200 else r.status_code


def mint(client: TestClient, token: str, **body: Any) -> Any:
    r = client.post("/api/tokens", json={"name": "child", **body}, headers=bearer(token))
    assert r.status_code == 201, r.text
    return r.json()


def test_a_removed_users_token_is_refused_after_a_restart(servers: Servers) -> None:
    with servers.start(auth_config()) as client:
        rita = mint(
            client,
            store.create_token(servers.db, "x", "rita", ["admin"], "test")["token"],
            user="rita",
            roles=USERS["rita"],
        )["token"]
        olga = store.create_token(servers.db, "ci", "olga", ["shop:operator"], "test")["token"]
        assert whoami(client, rita)["roles"] == sorted(USERS["rita"])
        assert whoami(client, olga)["roles"] == ["shop:operator"]
    # Restart without rita, and with olga demoted to a viewer.
    users = {name: roles for name, roles in USERS.items() if name != "rita"} | {"olga": ["shop:viewer"]}
    with servers.start(users_config(users)) as client:
        assert whoami(client, rita) == 401
        me = whoami(client, olga)
        assert me["user"] == "olga" and me["roles"] == ["shop:viewer"]  # granted ∩ held now
        execution = client.post(
            "/api/pipelines/demo/executions", json={"params": {"version": "1"}}, headers=bearer(olga)
        )
        assert execution.status_code == 403, execution.text  # an operator's token, a viewer's power
        # and no token for someone who is not a user (it could never work)
        alice = store.create_token(servers.db, "a", "alice", ["admin"], "test")["token"]
        r = client.post("/api/tokens", json={"name": "bot", "user": "rita"}, headers=bearer(alice))
        assert r.status_code == 422 and "rita" in r.json()["message"]


def test_a_child_token_neither_outlives_nor_outranks_its_parent(servers: Servers) -> None:
    with servers.start(auth_config()) as client:
        rita = store.create_token(servers.db, "root", "rita", USERS["rita"], "test")["token"]
        parent = mint(client, rita, expires_in_days=3 / 86400)  # seconds left
        assert parent["parent_id"] is not None and parent["expires_at"] - time.time() <= 3
        # Asking for ten years, or for nothing, gets no more than the parent's expiry.
        for body in ({"expires_in_days": 3650}, {}):
            child = mint(client, parent["token"], **body)
            assert child["expires_at"] is not None and child["expires_at"] <= parent["expires_at"]
        # No role the parent lacks, even one its user holds.
        weak = mint(client, rita, roles=["shop:viewer"])
        assert whoami(client, weak["token"])["roles"] == ["shop:viewer"]
        for roles in (["shop:operator"], ["admin"], ["release-managers"]):
            r = client.post("/api/tokens", json={"name": "x", "roles": roles}, headers=bearer(weak["token"]))
            assert r.status_code == 403, roles
        assert whoami(client, child["token"])["user"] == "rita"
        time.sleep(max(0.0, parent["expires_at"] - time.time()) + 0.5)
        assert whoami(client, child["token"]) == 401  # it died with its parent's time
        assert whoami(client, parent["token"]) == 401


def test_revoking_a_token_revokes_every_token_minted_with_it(servers: Servers) -> None:
    with servers.start(auth_config()) as client:
        alice = store.create_token(servers.db, "root", "alice", ["admin"], "test")["token"]
        parent = mint(client, alice)
        child = mint(client, parent["token"], user="vic", roles=["shop:operator"])
        grandchild = mint(client, child["token"], user="vic")
        # Minted by an admin's token for vic: it carries what vic holds, no more.
        assert whoami(client, child["token"])["roles"] == ["shop:viewer"]
        assert whoami(client, grandchild["token"])["user"] == "vic"
        r = client.post(f"/api/tokens/{parent['id']}/revoke", headers=bearer(alice))
        assert r.status_code == 200
        assert whoami(client, child["token"]) == 401 and whoami(client, grandchild["token"]) == 401
        listed = {t["id"]: t for t in client.get("/api/tokens", headers=bearer(alice)).json()}
        assert listed[child["id"]]["revoked_at"] and listed[grandchild["id"]]["revoked_at"]
        assert whoami(client, alice)["user"] == "alice"  # the root is untouched


def sign_in(client: TestClient, user: str) -> str:
    client.get("/login")
    csrf = str(client.cookies.get("gk_csrf"))
    r = client.post("/login", data={"username": user, "password": PASSWORD, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    m = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/applications").text)
    assert m
    return m.group(1)


def test_logout_ends_the_session_on_the_server(servers: Servers) -> None:
    with servers.start(auth_config()) as client:
        csrf = sign_in(client, "vic")
        cookie = str(client.cookies.get("gk_session"))
        assert client.get("/api/whoami").json()["user"] == "vic"
        with servers.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(sessions)).scalar() == 1
            stored = conn.execute(select(sessions.c.id_hash)).scalar()
        assert stored not in cookie  # the table holds a hash of the id, not the id
        r = client.post("/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
        assert r.status_code == 303
        with servers.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(sessions)).scalar() == 0
    # An attacker who kept the cookie replays it, on a server restarted with the same key.
    with servers.start(auth_config()) as other:
        other.cookies.set("gk_session", cookie)
        assert other.get("/api/whoami").status_code == 401
        assert "/login" in other.get("/applications", follow_redirects=False).headers["location"]


class Clock:
    """``time.time`` for the session code and itsdangerous' signatures, moved by the test: the expiry is
    asserted at exact ages, not raced against a loaded machine's request times."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_session_expires(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(1_800_000_000.0)
    monkeypatch.setattr(time, "time", clock)
    with servers.start(auth_config(session_hours=2.5 / 3600)) as client:
        sign_in(client, "vic")
        clock.now += 2.0
        assert client.get("/api/whoami").json().get("user") == "vic"
        clock.now += 0.6  # the cookie (Max-Age 3) is still sent; the server's row has ended
        assert client.get("/api/whoami").status_code == 401


def test_a_session_lives_its_fractional_lifetime_whatever_the_signature_rounds(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature's age is whole seconds: started at .9 of a second, a session 2.2 s old is 3 by it.
    A limit truncated to 2 refused it before its 2.5 s were up."""
    clock = Clock(1_800_000_000.9)
    monkeypatch.setattr(time, "time", clock)
    servers.start(auth_config())
    sessions = Sessions("k" * 32, 2.5, servers.db)
    cookie = sessions.start("vic", "csrf")
    clock.now += 2.2
    assert (sessions.load(cookie) or {}).get("u") == "vic"
    clock.now += 0.4
    assert sessions.load(cookie) is None


def test_tokens_need_a_name_and_a_finite_positive_lifetime(servers: Servers) -> None:
    with servers.start(auth_config()) as client:
        alice = store.create_token(servers.db, "root", "alice", ["admin"], "test")["token"]
        for body in (
            '{"name": ""}',
            '{"name": "   "}',
            '{"name": "x", "expires_in_days": NaN}',
            '{"name": "x", "expires_in_days": Infinity}',
            '{"name": "x", "expires_in_days": 0}',
            '{"name": "x", "expires_in_days": -1}',
        ):
            r = client.post("/api/tokens", content=body, headers={**bearer(alice), "Content-Type": "application/json"})
            assert r.status_code == 422, body
    # The store refuses them too, whichever way it is called (the CLI without a server calls it).
    for name, seconds in (("", None), (" ", None), ("x", float("nan")), ("x", float("inf")), ("x", -5.0)):
        with pytest.raises(InvalidInput):
            store.create_token(servers.db, name, "alice", [], "test", seconds)


def test_sessions_hold_across_replicas_on_postgresql(postgres_url: str) -> None:
    """Issue 13 runs several servers on one PostgreSQL database: a session started on one works on the
    other, and logging out on either ends it on both."""
    with replicas(postgres_url) as (a, b), httpx.Client(base_url=a.url) as browser:
        browser.get("/login")
        r = browser.post(
            "/login", data={"username": "vic", "password": PASSWORD, "csrf_token": browser.cookies["gk_csrf"]}
        )
        assert r.status_code == 303 and browser.cookies.get("gk_session")
        cookie = {"gk_session": browser.cookies["gk_session"]}
        m = re.search(r'"X-CSRF-Token": "([^"]+)"', browser.get("/applications").text)
        assert m
        with httpx.Client(base_url=b.url, cookies=cookie) as other:
            assert other.get("/api/whoami").json()["user"] == "vic"
            assert other.post("/logout", headers={"X-CSRF-Token": m.group(1)}).status_code == 303
        with httpx.Client(base_url=a.url, cookies=cookie) as replay:
            assert replay.get("/api/whoami").status_code == 401
