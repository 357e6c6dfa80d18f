"""``GET /api/accounts`` and ``/api/accounts/{account}`` over HTTP: the CLI's answer, in OpenAPI,
scoped to the caller's applications (a restricted user sees only the accounts holding them, with
only those applications); ``gennaker accounts --server`` prints the server's answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.runtime import build_runtime
from gennaker.spec.config import config_from_text
from gennaker.web import store
from gennaker.web.security import hash_password
from tests.accounts.conftest import Org
from tests.web.conftest import serve

USERS = {"gina": ["viewer"], "sam": ["shop:viewer"], "nora": ["billing:viewer"]}
Cli = Callable[..., tuple[int, str, str]]


def auth_text(org: Org) -> str:
    text = org.config_text() + "auth:\n  secret_key: " + "k" * 40 + "\n  secure_cookies: false\n  users:\n"
    for user, roles in USERS.items():
        text += f"    {user}: {{password_hash: '{hash_password('tokens only')}', roles: {roles}}}\n"
    return text


@pytest.fixture
def api(audited: Org) -> Iterator[Callable[[str], TestClient]]:
    rt = build_runtime(audited.db, config=config_from_text(auth_text(audited)))
    app = create_app(rt)
    clients: list[TestClient] = []

    def as_user(user: str | None) -> TestClient:
        headers = {}
        if user:
            token = store.create_token(rt.db, "t", user, USERS[user], "test")["token"]
            headers = {"Authorization": f"Bearer {token}"}
        c = TestClient(app, base_url="http://127.0.0.1", headers=headers)
        clients.append(c)
        return c

    yield as_user
    for c in clients:
        c.close()
    rt.db.dispose()


def test_a_global_viewer_sees_every_account(api: Callable[[str | None], TestClient], audited: Org) -> None:
    r = api("gina").get("/api/accounts")
    assert r.status_code == 200, r.text
    names = {a["name"] for a in r.json()["accounts"]}
    assert names == {"payer", "legacy", f"org-{audited.shop_prod}", f"org-{audited.cart_dev}"}
    one = api("gina").get(f"/api/accounts/{audited.cart_dev}")
    assert one.status_code == 200 and one.json()["applications"] == ["cart"]
    assert api(None).get("/api/accounts").status_code == 401


def test_a_restricted_viewer_sees_only_accounts_with_its_applications(
    api: Callable[[str | None], TestClient], audited: Org
) -> None:
    sam = api("sam")
    data = sam.get("/api/accounts").json()
    assert [(a["name"], a["applications"]) for a in data["accounts"]] == [("payer", ["shop"])]
    assert {u["path"] for u in data["units"]} == set()  # the payer sits at the root: no OU of its path
    hidden = sam.get(f"/api/accounts/org-{audited.cart_dev}")
    assert hidden.status_code == 404 and "no account named" in hidden.json()["message"]
    assert api("nora").get("/api/accounts").json()["accounts"] == []  # billing is in no account


def test_openapi_describes_the_routes(api: Callable[[str | None], TestClient]) -> None:
    spec = api("gina").get("/openapi.json").json()
    assert "/api/accounts" in spec["paths"] and "/api/accounts/{account}" in spec["paths"]
    assert "reach_error" in spec["components"]["schemas"]["AccountOut"]["properties"]


def test_cli_with_server_prints_the_servers_answer(audited: Org, cli: Cli) -> None:
    rt = build_runtime(  # the server reads the database the audit was stored in
        audited.db, config=config_from_text(auth_text(audited))
    )
    token = store.create_token(rt.db, "t", "sam", USERS["sam"], "test")["token"]
    try:
        for url in serve(rt):
            rc, out, err = cli("--server", url, "--token", token, "accounts", "list", "--format", "json")
            assert rc == 0, err
            assert [a["name"] for a in json.loads(out)["accounts"]] == ["payer"]
            rc, out, err = cli("--server", url, "--token", token, "accounts", "show", "legacy")
            assert rc != 0 and "server said (404)" in err and "no account named" in err
    finally:
        rt.db.dispose()
