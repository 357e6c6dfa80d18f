"""Gennaker is watched like the services it deploys: /healthz, /readyz and /metrics (Prometheus text,
read from the database so every replica reports the same work), and JSON log lines with ids."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gennaker.api.app import create_app
from gennaker.cli import logformat
from gennaker.engine import counters, logcontext
from gennaker.runtime import Runtime
from gennaker.web import store
from gennaker.web.credentials import LOCAL_ADMIN
from tests.conftest import admin_client
from tests.core.conftest import wait_for

PIPELINE = """name: tick
application: shop
stages:
  - {id: one, type: run, command: 'echo one'}
  - {id: two, type: run, command: 'echo two', requires: [one]}
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, parsed by Prometheus' own parser (a malformed one raises)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return create_app(runtime, with_worker=True)


def test_health_needs_no_credentials_and_readiness_names_what_is_missing(runtime: Runtime) -> None:
    bare = create_app(runtime, with_worker=False)
    with TestClient(bare, base_url="http://127.0.0.1") as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        r = anonymous.get("/readyz")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["database"]["ok"] and checks["migrations"]["ok"]
        assert checks["workers"] == {"ok": False, "live": 0, "reason": "no worker has a fresh heartbeat"}
    with TestClient(create_app(runtime, with_worker=True), base_url="http://127.0.0.1") as anonymous:
        wait_for(lambda: anonymous.get("/readyz").status_code == 200)
        assert anonymous.get("/readyz").json()["checks"]["workers"]["live"] >= 1


def test_metrics_need_a_viewer_of_everything_or_an_allow_listed_scraper(runtime: Runtime) -> None:
    # Bound beyond loopback, so anonymous callers get no viewer role (on loopback they read, as elsewhere).
    runtime.config.server = {"host": "0.0.0.0"}
    app = create_app(runtime, with_worker=False)
    with TestClient(app, base_url="http://127.0.0.1") as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    one_app = store.create_token(runtime.db, "shop only", LOCAL_ADMIN, ["shop:viewer"], "test")["token"]
    with TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {one_app}"}) as c:
        assert c.get("/metrics").status_code == 403  # totals over every application
    with admin_client(app) as admin:
        r = admin.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    runtime.config.server = {"host": "0.0.0.0", "metrics_scrapers": ["10.0.0.0/8"]}
    scraped = create_app(runtime, with_worker=False)
    with TestClient(scraped, base_url="http://127.0.0.1", client=("10.1.2.3", 40000)) as prometheus:
        assert prometheus.get("/metrics").status_code == 200
        assert prometheus.get("/api/executions").status_code == 401  # the allow-list opens /metrics only
    with TestClient(scraped, base_url="http://127.0.0.1", client=("192.168.0.9", 40000)) as stranger:
        assert stranger.get("/metrics").status_code == 401


def test_counters_move_with_the_work_done(app: Any) -> None:
    with admin_client(app) as c:
        before = samples(c.get("/metrics").text)
        assert not any(name == "gennaker_executions_started_total" for name, _ in before)  # nothing yet
        assert c.post("/api/pipelines", json={"yaml": PIPELINE}).status_code == 201
        ids = [c.post("/api/pipelines/tick/executions", json={}).json()["id"] for _ in range(2)]
        for eid in ids:
            wait_for(lambda eid=eid: c.get(f"/api/executions/{eid}").json()["status"] == "SUCCEEDED")
            c.get(f"/api/executions/{eid}")
        after = samples(c.get("/metrics").text)
    assert after[("gennaker_executions_started_total", (("pipeline", "tick"),))] == 2
    assert after[("gennaker_executions_finished_total", (("pipeline", "tick"), ("status", "SUCCEEDED")))] == 2
    assert after[("gennaker_stage_duration_seconds_count", (("type", "run"),))] == 4
    assert after[("gennaker_stage_duration_seconds_bucket", (("le", "+Inf"), ("type", "run")))] == 4
    assert after[("gennaker_queue_depth", ())] == 0
    assert after[("gennaker_workers", ())] >= 1
    # HTTP durations by route template: one series for every execution read, never one per id
    route = (("method", "GET"), ("route", "/api/executions/{execution_id}"))
    assert after[("gennaker_http_request_duration_seconds_count", route)] >= 4
    assert not any(eid in str(labels) for (_, labels) in after for eid in ids)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_stored_totals_lose_no_count_under_concurrent_workers(
    backend: str, runtime: Runtime, request: pytest.FixtureRequest
) -> None:
    rt: Runtime = runtime if backend == "sqlite" else request.getfixturevalue("pg_runtime")

    def bump() -> None:
        for _ in range(25):
            with rt.db.begin() as conn:
                counters.increment(conn, counters.REDELIVERIES)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with rt.db.read() as conn:
        assert counters.totals(conn)[counters.REDELIVERIES] == 100


def test_json_log_lines_carry_the_execution_and_stage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    logformat.configure(logging.INFO, "json")
    try:
        with logcontext.bound("ex123", "deploy"):
            logging.getLogger("gennaker.cloud").info("resized %s", "shop-v002")
        logging.getLogger("gennaker.engine").warning("outside")
    finally:
        logformat.configure(logging.WARNING, "text")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "resized shop-v002"
    assert (lines[0]["execution_id"], lines[0]["stage_id"], lines[0]["level"]) == ("ex123", "deploy", "info")
    assert (lines[1]["execution_id"], lines[1]["stage_id"]) == (None, None)


def test_a_public_url_for_links_is_a_server_setting() -> None:
    from gennaker.errors import ConfigError
    from gennaker.web.settings import server_settings

    assert server_settings({"public_url": "https://gennaker.example.com"}).public_url == "https://gennaker.example.com"
    with pytest.raises(ConfigError, match="public_url"):
        server_settings({"public_url": "gennaker.example.com"})
