"""The REST API over the same engine: pipelines, executions, logs, operations, errors, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.runtime import Runtime
from tests.core.conftest import wait_for

PIPELINE = """name: api-demo
application: shop
parameters: [{name: version, default: "1.0"}]
stages:
  - {id: build, type: run, command: 'echo "building $V"; echo "::output v=$V"', env: {V: "${trigger.params.version}"}}
  - {id: gate, type: manual_judgment, requires: [build], options: [approve, reject]}
"""


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    # These tests name their actors with X-Gennaker-User: only --insecure-no-auth honours it.
    runtime.config.server = {"insecure_no_auth": True}
    with TestClient(create_app(runtime, with_worker=True), base_url="http://127.0.0.1") as c:
        yield c


def test_register_start_judge_and_read(client: TestClient) -> None:
    r = client.post("/api/pipelines", json={"yaml": PIPELINE}, headers={"X-Gennaker-User": "alice"})
    assert r.status_code == 201 and r.json()["name"] == "api-demo"
    assert [p["name"] for p in client.get("/api/pipelines").json()] == ["api-demo"]
    r = client.post(
        "/api/pipelines/api-demo/executions", json={"params": {"version": "7"}}, headers={"X-Gennaker-User": "alice"}
    )
    eid = r.json()["id"]
    wait_for(lambda: client.get(f"/api/executions/{eid}/stages/gate").json()["status"] == "WAITING")
    assert client.get(f"/api/executions/{eid}/stages/build").json()["outputs"]["v"] == "7"
    logs = client.get(f"/api/executions/{eid}/stages/build/logs").json()
    assert "building 7" in [line["line"] for line in logs]
    r = client.post(
        f"/api/executions/{eid}/stages/gate/judge",
        json={"choice": "approve", "comment": "ok"},
        headers={"X-Gennaker-User": "bob"},
    )
    assert r.status_code == 200
    wait_for(lambda: client.get(f"/api/executions/{eid}").json()["status"] == "SUCCEEDED")
    ops = [(o["action"], o["actor"]) for o in client.get(f"/api/executions/{eid}/operations").json()]
    assert ops == [("start", "alice"), ("judge", "bob")]
    listed = client.get("/api/executions", params={"pipeline": "api-demo", "status": "SUCCEEDED"}).json()
    assert [e["id"] for e in listed] == [eid]
    assert client.get("/api/executions", params={"status": "FAILED"}).json() == []


def test_streaming_logs_follow_until_stage_ends(client: TestClient, tmp_path: Path) -> None:
    text = (
        "name: s\napplication: shop\nstages:\n"
        "  - {id: a, type: run, command: 'for i in 1 2 3; do echo line$i; sleep 0.2; done'}\n"
    )
    eid = client.post("/api/executions", json={"yaml": text, "base_dir": str(tmp_path)}).json()["id"]
    with client.stream("GET", f"/api/executions/{eid}/stages/a/logs", params={"follow": "true"}) as r:
        lines = [json.loads(x)["line"] for x in r.iter_lines() if x]
    assert [x for x in lines if x.startswith("line")] == ["line1", "line2", "line3"]


def test_errors_are_clear(client: TestClient) -> None:
    r = client.post("/api/executions", json={"yaml": "name: x\napplication: a\nstages:\n  - {id: a, type: nope}\n"})
    assert r.status_code == 422
    assert r.json()["problems"][0]["message"].startswith("unknown stage type 'nope'")
    assert r.json()["problems"][0]["line"] == 4
    assert client.get("/api/executions/missing").status_code == 404
    assert client.post("/api/pipelines/missing/executions", json={}).status_code == 404
    text = "name: x\napplication: a\nstages:\n  - {id: a, type: run, command: 'true'}\n"
    eid = client.post("/api/executions", json={"yaml": text}).json()["id"]
    wait_for(lambda: client.get(f"/api/executions/{eid}").json()["status"] == "SUCCEEDED")
    r = client.post(f"/api/executions/{eid}/cancel")
    assert r.status_code == 409 and "already ended" in r.json()["message"]
    r = client.post(f"/api/executions/{eid}/stages/a/judge", json={"choice": "approve"})
    assert r.status_code == 409


def test_openapi_is_published(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/api/executions",
        "/api/executions/{execution_id}/cancel",
        "/api/executions/{execution_id}/stages/{stage_id}/judge",
    ):
        assert path in spec["paths"]


def test_huge_numbers_are_refused_not_a_server_error(client: TestClient) -> None:
    assert client.get("/api/executions", params={"offset": 10**20}).status_code == 422
    assert client.get("/api/executions/x/stages/y/logs", params={"after": 10**20}).status_code == 422
