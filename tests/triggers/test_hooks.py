"""Pushes and webhooks start pipelines without a person, once per delivery, and every refusal gets
a clear 4xx and a row in the deliveries list (POST /hooks/git/{provider}, /hooks/webhook/{source})."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.runtime import Runtime
from tests.conftest import admin_client
from tests.core.conftest import wait_for

SECRET = "s3cret-for-tests"
PIPELINE = """name: shop-ci
application: shop
triggers:
  - type: git
    provider: github
    repository: acme/shop
    branches: [main, "release/*"]
    paths: ["src/**", "Dockerfile"]
    secret_env: SHOP_SECRET
  - {type: git, provider: gitlab, repository: acme/shop, branches: [main], secret_env: SHOP_SECRET}
  - {type: git, provider: generic, repository: acme/shop, secret_env: SHOP_SECRET}
parameters: [{name: version, default: "none"}]
stages:
  - id: build
    type: run
    command: 'echo "::output commit=$C"; echo "::output branch=$B"; echo "::output version=$V"'
    env: {C: "${trigger.commit}", B: "${trigger.branch}", V: "${trigger.params.version}"}
"""


RELEASE = """name: shop-release
application: shop
triggers:
  - {type: webhook, source: my-ci, secret_env: SHOP_SECRET, params: {version: build.version}}
parameters: [{name: version}]
stages:
  - {id: build, type: run, command: 'echo "::output version=$V"', env: {V: "${trigger.params.version}"}}
"""


def push(
    branch: str = "main", paths: list[str] | None = None, deleted: bool = False, sha: str = "a1b2c3d4e5"
) -> dict[str, Any]:
    return {
        "ref": f"refs/heads/{branch}",
        "after": "0" * 40 if deleted else sha,
        "deleted": deleted,
        "repository": {"full_name": "acme/shop"},
        "head_commit": None if deleted else {"id": sha, "message": "Fix checkout", "author": {"username": "alice"}},
        "commits": [{"added": [], "modified": paths if paths is not None else ["src/app.py"], "removed": []}],
        "pusher": {"name": "alice"},
    }


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def client(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SHOP_SECRET", SECRET)
    app = create_app(runtime, with_worker=True)
    with admin_client(app) as admin:
        assert admin.post("/api/pipelines", json={"yaml": PIPELINE}).status_code == 201
        assert admin.post("/api/pipelines", json={"yaml": RELEASE}).status_code == 201
    with TestClient(app, base_url="http://127.0.0.1") as anonymous:  # hooks carry no login
        yield anonymous


def github(client: TestClient, doc: dict[str, Any], delivery: str, secret: str = SECRET, event: str = "push") -> Any:
    body = json.dumps(doc).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signed(body, secret),
        "Content-Type": "application/json",
    }
    return client.post("/hooks/git/github", content=body, headers=headers)


def executions(client: TestClient, runtime: Runtime) -> list[dict[str, Any]]:
    with admin_client(client.app) as admin:
        return admin.get("/api/executions", params={"pipeline": "shop-ci"}).json()


def deliveries(client: TestClient) -> list[dict[str, Any]]:
    with admin_client(client.app) as admin:
        return admin.get("/api/triggers/deliveries").json()


def test_a_signed_push_starts_the_pipeline_once_with_the_commit(client: TestClient, runtime: Runtime) -> None:
    r = github(client, push(), "delivery-1")
    assert r.status_code == 202, r.text
    [started] = r.json()["executions"]
    with admin_client(client.app) as admin:
        wait_for(lambda: admin.get(f"/api/executions/{started['execution_id']}").json()["status"] == "SUCCEEDED")
        ex = admin.get(f"/api/executions/{started['execution_id']}").json()
        outputs = admin.get(f"/api/executions/{started['execution_id']}/stages/build").json()["outputs"]
    assert outputs["commit"] == "a1b2c3d4e5" and outputs["branch"] == "main"
    assert ex["trigger"]["type"] == "git" and ex["trigger"]["label"] == "push a1b2c3d by alice"
    assert ex["trigger"]["author"] == "alice" and ex["trigger"]["message"] == "Fix checkout"
    # GitHub redelivers (a timeout on its side): nothing starts twice
    again = github(client, push(), "delivery-1")
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert len(executions(client, runtime)) == 1
    assert [d["outcome"] for d in deliveries(client)] == ["duplicate", "started"]


@pytest.mark.parametrize(
    ("doc", "secret", "status", "reason"),
    [
        (push(), "not-the-secret", 401, "signature matches no trigger"),
        ({**push(), "repository": {"full_name": "acme/other"}}, SECRET, 404, "no registered pipeline"),
        (push(branch="dev"), SECRET, 422, "branch 'dev' is not one the triggers follow"),
        (push(paths=["docs/readme.md"]), SECRET, 422, "no changed path matches"),
        (push(deleted=True), SECRET, 422, "was deleted: nothing to build"),
        ({**push(), "ref": "refs/tags/v1"}, SECRET, 422, "is not a branch"),
    ],
)
def test_refused_pushes_start_nothing_and_say_why(
    client: TestClient, runtime: Runtime, doc: dict[str, Any], secret: str, status: int, reason: str
) -> None:
    r = github(client, doc, "delivery-x", secret=secret)
    assert r.status_code == status and reason in r.json()["reason"], r.text
    assert executions(client, runtime) == []
    [recorded] = deliveries(client)
    assert (recorded["outcome"], recorded["http_status"]) == ("refused", status) and reason in recorded["reason"]


def test_a_release_branch_glob_and_a_dockerfile_change_start_it(client: TestClient) -> None:
    assert github(client, push(branch="release/2.1", paths=["Dockerfile"]), "d-glob").status_code == 202


def test_malformed_payloads_and_unknown_providers_are_4xx_not_500(client: TestClient) -> None:
    body = b"{not json"
    r = client.post("/hooks/git/github", content=body, headers={"X-Hub-Signature-256": signed(body)})
    assert r.status_code == 400 and "not JSON" in r.json()["reason"]
    r = client.post("/hooks/git/bitbucket", content=b"{}")
    assert r.status_code == 404 and "unknown git provider" in r.json()["reason"]
    assert github(client, {}, "ping-1", event="ping").status_code == 200
    assert client.post("/hooks/git/github", content=json.dumps([1, 2]).encode()).status_code == 400


def test_gitlab_token_and_the_generic_form(client: TestClient) -> None:
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "checkout_sha": "feedbeef99",
            "user_username": "bob",
            "project": {"path_with_namespace": "acme/shop"},
            "commits": [{"message": "Bump", "added": ["src/x.py"]}],
        }
    ).encode()
    bad = client.post("/hooks/git/gitlab", content=body, headers={"X-Gitlab-Token": "nope"})
    assert bad.status_code == 401
    ok = client.post("/hooks/git/gitlab", content=body, headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event-UUID": "u1"})
    assert ok.status_code == 202, ok.text
    generic = json.dumps({"repository": "acme/shop", "branch": "main", "commit": "c0ffee0001", "author": "ci"}).encode()
    r = client.post("/hooks/git/generic", content=generic, headers={"X-Gennaker-Signature": signed(generic)})
    assert r.status_code == 202, r.text
    # no delivery id: the same body again is the same delivery
    r = client.post("/hooks/git/generic", content=generic, headers={"X-Gennaker-Signature": signed(generic)})
    assert r.json()["outcome"] == "duplicate"


def test_a_signed_webhook_maps_its_fields_to_parameters(client: TestClient) -> None:
    body = json.dumps({"build": {"version": "2.4.1"}}).encode()
    r = client.post(
        "/hooks/webhook/my-ci", content=body, headers={"X-Gennaker-Signature": signed(body), "X-Delivery-Id": "b-9"}
    )
    assert r.status_code == 202, r.text
    eid = r.json()["executions"][0]["execution_id"]
    with admin_client(client.app) as admin:
        wait_for(lambda: admin.get(f"/api/executions/{eid}").json()["status"] == "SUCCEEDED")
        assert admin.get(f"/api/executions/{eid}/stages/build").json()["outputs"]["version"] == "2.4.1"
    missing = json.dumps({"build": {}}).encode()
    r = client.post("/hooks/webhook/my-ci", content=missing, headers={"X-Gennaker-Signature": signed(missing)})
    assert r.status_code == 422 and "has no 'build.version'" in r.json()["reason"]
    r = client.post("/hooks/webhook/my-ci", content=body, headers={"X-Gennaker-Signature": signed(body, "x")})
    assert r.status_code == 401
    assert client.post("/hooks/webhook/unknown", content=body).status_code == 404


def test_without_the_secret_on_the_server_every_push_is_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOP_SECRET")
    r = github(client, push(), "d-nosecret")
    assert r.status_code == 401 and "SHOP_SECRET not set on the server" in r.json()["reason"]
