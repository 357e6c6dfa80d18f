"""Console fixtures: a real server (uvicorn in a thread, in-process worker) on a temp SQLite database,
with access control on, users for each role, and the demo pipeline registered."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gennaker.api.app import create_app
from gennaker.engine import operations as ops
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.web import store
from gennaker.web.security import hash_password

PASSWORD = "correct horse battery staple"
LOCAL = "http://127.0.0.1"  # a Host the server allows (TestClient's default, testserver, is not one)
USERS = {
    "alice": ["admin"],
    "rita": ["shop:operator", "release-managers"],  # may judge the demo's Go/No-Go
    "olga": ["shop:operator"],  # operator, but not a release manager
    "vic": ["shop:viewer"],
}

DEMO = """\
name: demo
application: shop
parameters:
  - name: version
    required: true
    description: the build to ship
  - name: region
    default: us-east-1
    options: [us-east-1, eu-west-1]
stages:
  - id: bake
    name: Bake
    type: run
    command: "echo baking ${parameters.version}; sleep 1.5; echo '::output ami=ami-123'"
  - {id: verify, name: Verify Bake, type: run, requires: [bake], command: "sleep 0.5"}
  - {id: itest, name: Integration Tests, type: run, requires: [bake], command: "sleep 0.7"}
  - {id: utest, name: Unit Tests, type: run, requires: [bake], command: "sleep 0.3"}
  - {id: canary, name: Deploy Canary, type: run, requires: [verify, itest, utest], command: "echo canary ok"}
  - id: judge
    name: "Manual Judgment: Go/No Go"
    type: manual_judgment
    requires: [canary]
    instructions: Verify the canary scores are correct and you haven't received any emails.
    options: [continue, stop]
    roles: [release-managers]
  - {id: prod, name: Deploy To Prod, type: run, requires: [judge], command: "echo to prod"}
  - {id: wait, name: Wait 4 hours, type: wait, requires: [prod], duration: 4h}
  - {id: cleanup, name: Cleanup Old Server Groups, type: run, requires: [wait], command: "echo cleanup"}
"""

QUICK = """\
name: quick
application: shop
stages:
  - {id: one, type: run, command: "echo one"}
"""

SLOW = """\
name: slow
application: shop
stages:
  - {id: sleep, name: Long command, type: run, command: "echo started; sleep 60"}
  - {id: after, type: run, requires: [sleep], command: "echo never"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def auth_config(**extra: Any) -> Config:
    users = {name: {"password_hash": hash_password(PASSWORD), "roles": roles} for name, roles in USERS.items()}
    auth = {
        "secret_key": "k" * 40,
        "secure_cookies": False,
        "users": users,
        "login_rate": {"attempts": 5, "per_seconds": 60},
        **extra,
    }
    return Config(auth=auth)


def register(rt: Runtime, text: str) -> None:
    pipeline = rt.pipeline_from_text(text, "<test>")
    with rt.db.begin() as conn:
        ops.save_pipeline(conn, pipeline, "fixture", registered=True)


@dataclass
class Server:
    url: str
    runtime: Runtime
    tokens: dict[str, str]

    def api(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def start(self, pipeline: str, params: dict[str, Any] | None = None, user: str = "alice") -> str:
        with self.api(user) as c:
            r = c.post(f"/api/pipelines/{pipeline}/executions", json={"params": params or {}})
            r.raise_for_status()
            return str(r.json()["id"])

    def status(self, execution_id: str) -> dict[str, Any]:
        with self.api("alice") as c:
            r = c.get(f"/api/executions/{execution_id}")
            r.raise_for_status()
            return dict(r.json())

    def wait_stage(self, execution_id: str, stage_id: str, status: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ex = self.status(execution_id)
            if any(s["stage_id"] == stage_id and s["status"] == status for s in ex["stages"]):
                return
            time.sleep(0.1)
        raise AssertionError(f"stage {stage_id} never reached {status}: {self.status(execution_id)}")


def serve(rt: Runtime) -> Iterator[str]:
    app = create_app(rt, with_worker=True, worker_threads=4)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("console") / "gennaker.db"
    rt = build_runtime(str(db), config=auth_config())
    for text in (DEMO, QUICK, SLOW):
        register(rt, text)
    tokens = {
        user: store.create_token(rt.db, f"{user}-test", user, roles, "fixture")["token"]
        for user, roles in USERS.items()
    }
    for url in serve(rt):
        yield Server(url=url, runtime=rt, tokens=tokens)
    rt.db.dispose()


ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per module (each test signs in in a fresh context). Not per session: with
    Playwright's sync API still open, test_schemathesis (Starlette's TestClient) got 500s from
    GET /api/executions; closing it at the end of each module keeps the runs independent."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def login(browser: Any, server: Server) -> Iterator[Any]:
    """sign_in(user) -> a page signed in as ``user`` on ``server`` (a test module may override ``server``)."""
    contexts = []

    def sign_in(user: str) -> Any:
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.csp_errors = errors  # CSP violations are reported as console errors
        page.goto(f"{server.url}/applications/shop/pipelines")
        assert "/login" in page.url  # not signed in: sent to the sign-in page
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/applications/shop/pipelines"))
        assert page.text_content("[data-testid=current-user]") == user
        return page

    yield sign_in
    for ctx in contexts:
        ctx.close()
