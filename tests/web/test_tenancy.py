"""Tenancy: a viewer of one application (``shop:viewer``) reads nothing of another (``other``).

Two applications each have a pipeline, finished executions with logs and outputs, a task, and
findings about their tagged resources in a stored audit. Every read the viewer can make — API lists
and shows, logs (plain and followed), operations, pipelines, audits, inventory, the console's pages
and its event streams — is checked for the other application's marker strings (ids and names that
appear nowhere else). A schemathesis run over the whole OpenAPI, as that viewer, asserts the same of
every response, and that none is a 5xx.

Decisions checked here (docs/console.md, "Access control"): an execution, stage, log or pipeline of an
application the caller cannot read answers 404, as for an id that does not exist; a path naming such
an application answers 403; audits and inventory (account-wide) need a viewer role on every application;
an application's viewer reads the latest audit narrowed to its tagged resources.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.ops import store as ops_store
from gennaker.ops.model import Resource, Snapshot
from gennaker.runtime import Runtime, build_runtime
from gennaker.web import store

from .conftest import auth_config, register

BASE_URL = "http://127.0.0.1"  # a name the server answers to (the Host allow-list)

SHOP = """\
name: shop-pipe
application: shop
stages:
  - {id: run, type: run, command: "echo shop-log-line; echo '::output where=shop-output'"}
"""
OTHER = """\
name: other-pipe-k9q
application: other
parameters: [{name: note, default: other-param-v7x}]
stages:
  - {id: run, type: run, command: "echo other-log-m3z; echo '::output leak=other-output-p2w'"}
"""
# Strings that exist only in the other application's data (its execution and task ids are added).
OTHER_MARKERS = [
    "other-pipe-k9q",
    "other-log-m3z",
    "other-output-p2w",
    "other-param-v7x",
    "other-finding-f5c",
    "i-other-r8t",
    "other-web-v001",
]


@dataclass
class World:
    rt: Runtime
    client: TestClient
    vic: dict[str, str]  # shop:viewer
    alice: dict[str, str]  # admin
    shop_id: str
    other_id: str
    other_task: str
    markers: list[str]

    def leaks(self, text: str, asked: str = "") -> list[str]:
        """Markers in ``text``, except those the request itself carried (an error may echo what was asked)."""
        return [m for m in self.markers if m in text and m not in asked]


def finding(check: str, ref: str, message: str) -> dict[str, Any]:
    return {
        "check_id": check,
        "status": "FAIL",
        "severity": "high",
        "pillar": "ha",
        "account": "prod",
        "region": "us-east-1",
        "resource_type": "ec2.instance",
        "resource_id": ref,
        "message": message,
        "remediation": {"text": "fix it", "cli": ""},
    }


def store_audit(rt: Runtime) -> None:
    now = dt.datetime.now(dt.UTC)
    resources = [
        Resource("ec2.instance", "prod", "us-east-1", "i-shop-1", tags={"gennaker:application": "shop"}),
        Resource(
            "ec2.instance",
            "prod",
            "us-east-1",
            "i-other-r8t",
            name="other-web-v001",
            tags={"gennaker:application": "other"},
        ),
    ]
    snap = Snapshot("snap-t1", now, {}, resources, [], ["ec2.instance"], {})
    ops_store.save_snapshot(rt.db, snap)
    ops_store.save_audit(
        rt.db,
        {
            "audit_id": "audit-t1",
            "generated_at": now.isoformat(),
            "snapshot_id": snap.id,
            "scope": {"accounts": ["prod"]},
            "summary": {"score": 0.0},
            "findings": [
                finding("ha.one", "i-shop-1", "shop-finding"),
                finding("ha.one", "i-other-r8t", "other-finding-f5c on other-web-v001"),
            ],
        },
    )


def run(rt: Runtime, name: str) -> str:
    with rt.db.read() as conn:
        text, _ = views.pipeline_text(conn, name)
    return ops.start_execution(rt.db, rt.pipeline_from_text(text), {}, "alice")


def wait_done(rt: Runtime, execution_id: str) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        with rt.db.read() as conn:
            if views.is_done(views.execution_detail(conn, execution_id)["status"]):
                return
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    rt = build_runtime(str(tmp_path_factory.mktemp("tenancy") / "g.db"), config=auth_config())
    register(rt, SHOP)
    register(rt, OTHER)
    app = create_app(rt, with_worker=True, worker_threads=2)
    vic = {"Authorization": "Bearer " + store.create_token(rt.db, "vic", "vic", ["shop:viewer"], "t")["token"]}
    alice = {"Authorization": "Bearer " + store.create_token(rt.db, "alice", "alice", ["admin"], "t")["token"]}
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        shop_id, other_id = run(rt, "shop-pipe"), run(rt, "other-pipe-k9q")
        other_task = ops.start_task(rt.db, rt.registry, "other", "wait", {"duration": "1h"}, "alice")
        ops.start_task(rt.db, rt.registry, "shop", "wait", {"duration": "1h"}, "alice")
        wait_done(rt, shop_id)
        wait_done(rt, other_id)
        store_audit(rt)
        markers = [*OTHER_MARKERS, other_id, other_task]
        yield World(rt, client, vic, alice, shop_id, other_id, other_task, markers)
    rt.db.dispose()


def test_the_admin_sees_both_so_the_markers_are_real(world: World) -> None:
    """The markers are in the data: the checks below can fail."""
    c = world.client
    seen = c.get("/api/executions", headers=world.alice).text
    assert world.other_id in seen and world.other_task in seen and world.shop_id in seen
    logs = c.get(f"/api/executions/{world.other_id}/stages/run/logs", headers=world.alice).text
    assert "other-log-m3z" in logs
    detail = c.get(f"/api/executions/{world.other_id}", headers=world.alice).text
    assert "other-output-p2w" in detail and "other-param-v7x" in detail
    assert "other-finding-f5c" in c.get("/api/audits/latest", headers=world.alice).text
    assert "i-other-r8t" in c.get("/api/inventory/resources", headers=world.alice).text


def test_api_lists_hold_only_the_viewers_application(world: World) -> None:
    c, vic = world.client, world.vic
    listed = c.get("/api/executions", headers=vic)
    assert listed.status_code == 200
    assert {e["application"] for e in listed.json()} == {"shop"} and len(listed.json()) == 2
    assert world.shop_id in listed.text
    # Filters narrow within the caller's applications, never beyond.
    for params in ({"application": "other"}, {"pipeline": "other-pipe-k9q"}, {"kind": "tasks", "application": "other"}):
        r = c.get("/api/executions", params=params, headers=vic)
        assert r.status_code == 200 and r.json() == [], params
    pipes = c.get("/api/pipelines", headers=vic)
    assert [p["name"] for p in pipes.json()] == ["shop-pipe"]
    assert c.get("/api/pipelines", params={"application": "other"}, headers=vic).json() == []
    for r in (listed, pipes):
        assert not world.leaks(r.text)


def test_other_applications_things_are_not_found(world: World) -> None:
    c, vic, oid = world.client, world.vic, world.other_id
    for path in (
        f"/api/executions/{oid}",
        f"/api/executions/{oid}/stages/run",
        f"/api/executions/{oid}/stages/run/logs",
        f"/api/executions/{oid}/operations",
        f"/api/executions/{world.other_task}",
        "/api/pipelines/other-pipe-k9q",
    ):
        r = c.get(path, headers=vic)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert not world.leaks(r.text, path)
        # The same answer as for something that does not exist.
        missing = c.get(path.replace(oid, "nope").replace("other-pipe-k9q", "nope"), headers=vic)
        assert missing.status_code == 404
    r = c.get(f"/api/executions/{oid}/stages/run/logs", params={"follow": "true"}, headers=vic)
    assert r.status_code == 404 and not world.leaks(r.text, oid)
    # Its own application's are there.
    assert c.get(f"/api/executions/{world.shop_id}/stages/run/logs", headers=vic).status_code == 200
    assert "shop-output" in c.get(f"/api/executions/{world.shop_id}", headers=vic).text


def test_account_wide_reads_need_a_global_role(world: World) -> None:
    c, vic = world.client, world.vic
    for path in (
        "/api/audits",
        "/api/audits/latest",
        "/api/audits/audit-t1?format=html",
        "/api/inventory/snapshots",
        "/api/inventory/resources",
        "/api/inventory/diff",
    ):
        r = c.get(path, headers=vic)
        assert r.status_code == 403, (path, r.status_code)
        assert not world.leaks(r.text)
    mine = c.get("/api/applications/shop/readiness", headers=vic)
    assert mine.status_code == 200 and "shop-finding" in mine.text and not world.leaks(mine.text)
    assert c.get("/api/applications/other/readiness", headers=vic).status_code == 403
    assert c.get("/api/audit", params={"application": "other"}, headers=vic).status_code == 403


def test_console_pages_and_streams(world: World) -> None:
    c, vic = world.client, world.vic
    apps = c.get("/applications", headers=vic)
    assert apps.status_code == 200 and "shop" in apps.text and "/applications/other" not in apps.text
    for path in (
        "/applications/shop/pipelines",
        "/applications/shop/pipelines?group=0",
        "/applications/shop/tasks",
        "/applications/shop/readiness",
        f"/executions/{world.shop_id}",
        f"/executions/{world.shop_id}/stages/run",
    ):
        r = c.get(path, headers=vic)
        assert r.status_code == 200, (path, r.status_code)
        assert not world.leaks(r.text), (path, world.leaks(r.text))
    assert "shop-log-line" in c.get(f"/executions/{world.shop_id}/stages/run", headers=vic).text
    for path in (
        f"/executions/{world.other_id}",
        f"/executions/{world.other_id}/stages/run",
        f"/executions/{world.other_task}",
        f"/executions/{world.other_id}/events",
    ):
        r = c.get(path, headers=vic)
        assert r.status_code == 404, (path, r.status_code)
        assert not world.leaks(r.text, path)
    for path in (
        "/applications/other/pipelines",
        "/applications/other/tasks",
        "/applications/other/readiness",
        "/applications/other/pipelines/events",
        "/audit",
    ):
        r = c.get(path, headers=vic)
        assert r.status_code == 403, (path, r.status_code)
        assert not world.leaks(r.text)


def test_event_stream_of_the_viewers_application_holds_nothing_else(world: World) -> None:
    c, vic = world.client, world.vic
    with c.stream("GET", "/applications/shop/pipelines/events?group=0", headers=vic) as r:
        assert r.status_code == 200
        chunks = []
        for chunk in r.iter_text():
            chunks.append(chunk)
            if "event: g-" in "".join(chunks):
                break
    text = "".join(chunks)
    assert world.shop_id in text and not world.leaks(text)


schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Path parameters set to the other application's real ids and names (the fuzzer alone never guesses them).
REAL = {
    "execution_id": ["{other_id}", "{other_task}"],
    "stage_id": ["run"],
    "name": ["other-pipe-k9q"],
    "application": ["other"],
    "audit_id": ["audit-t1", "latest"],
    "cluster": ["other-web"],
}
# Phrases that name the other application in an answer to a request that did not name it.
NAMES_OTHER = ["'other'", '"application":"other"', '"application": "other"', "on application other"]


def test_schemathesis_as_a_viewer_of_one_application(world: World) -> None:
    """The whole OpenAPI, as ``shop:viewer``: no 5xx, and no answer carries the other application's data."""
    schema = schemathesis.openapi.from_dict(world.client.get("/openapi.json").json())
    real = {k: [v.format(other_id=world.other_id, other_task=world.other_task) for v in vs] for k, vs in REAL.items()}
    failures: list[str] = []
    sent: list[int] = []
    for op in schema.get_all_operations():
        operation = op.ok()
        # Never run generated documents (admins only anyway; a viewer is refused before parsing).
        if operation.method.upper() == "POST" and operation.path in ("/api/executions", "/api/pipelines"):
            continue

        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), use_real=st.booleans(), pick=st.integers(0, 1))
        def check(case: Any, use_real: bool, pick: int) -> None:
            if use_real and case.path_parameters:
                case.path_parameters = {
                    k: real[k][pick % len(real[k])] if k in real else v for k, v in case.path_parameters.items()
                }
            kwargs = case.as_transport_kwargs(base_url=BASE_URL)
            headers = {**(kwargs.get("headers") or {}), **world.vic}
            url = case.formatted_path
            r = world.client.request(
                case.method, url, params=kwargs.get("params"), json=kwargs.get("json"), headers=headers
            )
            sent.append(r.status_code)
            asked = url + " " + json.dumps(kwargs.get("params") or {}) + " " + json.dumps(kwargs.get("json") or "")
            where = f"{case.method} {url} {kwargs.get('params') or ''} -> {r.status_code}"
            if r.status_code >= 500:
                failures.append(f"{where}: {r.text[:200]}")
            leaked = world.leaks(r.text, asked)
            if "other" not in asked:
                leaked += [p for p in NAMES_OTHER if p in r.text]
            if leaked:
                failures.append(f"{where} leaks {leaked}: {r.text[:300]}")

        check()
    assert not failures, "\n".join(failures[:20])
    assert len(sent) > 100 and sum(code == 200 for code in sent) > 20  # it did reach the handlers


def test_the_cli_through_the_server(world: World, capfd: pytest.CaptureFixture[str]) -> None:
    """``gennaker --server URL --token T``: the viewer's CLI sees what its API sees (exit 4: not found)."""
    from gennaker.cli import run as cli

    from .conftest import serve

    token = world.vic["Authorization"].removeprefix("Bearer ")

    where = {"url": ""}

    def gennaker(*args: str) -> tuple[int, str]:
        code = cli(["--server", where["url"], "--token", token, *args])
        captured = capfd.readouterr()
        return code, captured.out + captured.err

    for url in serve(world.rt):
        where["url"] = url
        code, output = gennaker("executions", "list", "--json", "--limit", "100")
        assert code == 0, output
        assert {e["application"] for e in json.loads(output)} == {"shop"} and not world.leaks(output)
        code, output = gennaker("pipelines", "list", "--json")
        assert code == 0 and [p["name"] for p in json.loads(output)] == ["shop-pipe"]
        for args in (["executions", "show", world.other_id], ["logs", world.other_id, "run"]):
            code, output = gennaker(*args)
            assert code == 4, (args, code, output)
            assert not world.leaks(output, world.other_id)
        code, output = gennaker("logs", world.shop_id, "run")
        assert code == 0 and "shop-log-line" in output
