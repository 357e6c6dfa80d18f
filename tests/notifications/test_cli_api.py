"""``gennaker notifications`` and /api/notifications as their users meet them: a test notice sent
and shown, deliveries scoped to the caller's applications, sending refused without the role and
written to the audit log when allowed, one clear line for an unknown channel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gennaker.api.app import create_app
from gennaker.engine.jobs import JobRunner
from gennaker.ops.notifications import Notice, enqueue
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import load_config
from gennaker.web import store
from gennaker.web.tables import audit_log
from tests.notifications.conftest import Receiver
from tests.web.conftest import auth_config


@pytest.fixture
def setup(tmp_path: Path, receiver: Receiver) -> Iterator[tuple[Runtime, Path]]:
    cfg = tmp_path / "gennaker.yml"
    cfg.write_text(
        "notifications:\n  backoff: 50ms\n  channels:\n"
        f"    hook: {{type: webhook, url: '{receiver.url}/hook'}}\n"
        f"    broken: {{type: webhook, url: '{receiver.url}/broken'}}\n"
        "    team: {type: slack, url_env: TEAM_SLACK_URL}\n"
    )
    config = load_config(str(cfg))
    config.auth = auth_config().auth  # users and their roles (vic: shop:viewer); the CLI acts locally
    rt = build_runtime(f"sqlite:///{tmp_path / 'g.db'}", config=config)
    yield rt, cfg
    rt.db.dispose()


def gk(rt: Runtime, cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENNAKER_DB": str(rt.db.engine.url), "GENNAKER_CONFIG": str(cfg), "GENNAKER_USER": "carol"}
    return subprocess.run(
        [sys.executable, "-m", "gennaker", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_sends_a_test_lists_and_shows_deliveries(setup: tuple[Runtime, Path], receiver: Receiver) -> None:
    rt, cfg = setup
    sent = gk(rt, cfg, "notifications", "test", "hook", "--json")
    assert sent.returncode == 0, sent.stderr
    delivery = json.loads(sent.stdout)
    assert delivery["status"] == "sent" and delivery["attempts"] == 1
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["done"]
    [req] = receiver.requests
    assert req.path == "/hook" and req.headers["x-gennaker-delivery"] == delivery["id"]
    assert "carol asked for a test" in req.json["text"]

    receiver.script = [404]
    refused = gk(rt, cfg, "notifications", "test", "broken")
    assert refused.returncode == 1 and "failed" in refused.stdout and "HTTP 404" in refused.stdout

    listed = gk(rt, cfg, "notifications", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["channel"], r["status"], r["attempts"]) for r in rows] == [("broken", "failed", 1), ("hook", "sent", 1)]
    table = gk(rt, cfg, "notifications", "list", "--status", "failed")
    assert "│ broken " in table.stdout and "│ hook " not in table.stdout

    unknown = gk(rt, cfg, "notifications", "test", "nope")
    assert unknown.returncode != 0 and unknown.stderr.strip() == (
        "error: unknown notification channel 'nope' (known: broken, hook, team)"
    )
    channels = gk(rt, cfg, "notifications", "channels", "--json")
    assert {c["name"]: c["target"] for c in json.loads(channels.stdout)}["team"] == "(url from $TEAM_SLACK_URL)"


def _seed(rt: Runtime) -> dict[str, str]:
    ids = {}
    with rt.db.begin() as conn:
        for app in ("shop", "other"):
            notice = Notice(event="pipeline.complete", title=f"{app} done", text="ok", application=app)
            [ids[app]] = enqueue(conn, ["hook"], notice, f"seed:{app}")
    return ids


def test_api_scopes_deliveries_and_role_checks_and_audits_the_test(
    setup: tuple[Runtime, Path], receiver: Receiver
) -> None:
    rt, _ = setup
    ids = _seed(rt)
    app = create_app(rt)

    def client(user: str, roles: list[str]) -> TestClient:
        token = store.create_token(rt.db, user, user, roles, "test")["token"]
        return TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"})

    admin, viewer = client("alice", ["admin"]), client("vic", ["shop:viewer"])

    refused = viewer.post("/api/notifications/test", json={"channel": "hook"})
    assert refused.status_code == 403
    r = admin.post("/api/notifications/test", json={"channel": "hook"})
    assert r.status_code == 202, r.text
    test_id = r.json()["delivery_id"]
    JobRunner(rt.db, rt.job_handlers, "w").run_due()
    missing = admin.post("/api/notifications/test", json={"channel": "nope"})
    assert missing.status_code == 404 and missing.json()["message"].startswith("unknown notification channel 'nope'")
    assert admin.post("/api/notifications/test", json={"channel": "x" * 101}).status_code == 422

    everything = {d["id"]: d for d in admin.get("/api/notifications/deliveries").json()}
    assert set(everything) == {ids["shop"], ids["other"], test_id}
    assert everything[test_id]["status"] == "sent"
    mine = viewer.get("/api/notifications/deliveries").json()
    assert [d["id"] for d in mine] == [ids["shop"]]  # not the other application's, not the admin's test
    assert viewer.get(f"/api/notifications/deliveries/{ids['other']}").status_code == 404
    detail = viewer.get(f"/api/notifications/deliveries/{ids['shop']}").json()
    assert [a["outcome"] for a in detail["attempt_log"]] == ["done"]
    assert admin.get("/api/notifications/deliveries", params={"status": "bogus"}).status_code == 422

    with rt.db.read() as conn:
        audited: list[Any] = conn.execute(
            select(audit_log.c.actor, audit_log.c.status_code).where(audit_log.c.path == "/api/notifications/test")
        ).all()
    assert sorted(code for _, code in audited) == [202, 403, 404, 422]
    spec = admin.get("/openapi.json").json()
    for path in (
        "/api/notifications/deliveries",
        "/api/notifications/deliveries/{delivery_id}",
        "/api/notifications/test",
    ):
        assert path in spec["paths"]
