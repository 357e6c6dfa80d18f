"""Other web pages cannot drive a local server (issue 8 item 4), in a real browser (Debian's Chromium).

A server runs on 127.0.0.1 with an execution RUNNING; the victim's browser is signed in to it. A page
served from another loopback address (127.0.0.2, another site) tries the attacks: a fetch that
starts an execution with a ``run`` stage, fetches and a form that pause and cancel, the same from a
sandboxed iframe (``Origin: null``), and a DNS-rebinding page (its own name, ``rebind.test``, now
resolving to 127.0.0.1: same-origin to the browser, a Host that is not ours to the server). Nothing
may change on the server. Both with the default (no auth: section) and with --insecure-no-auth,
where the Host and Origin checks are all that stands between a web page and the commands.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gennaker.engine import views
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from gennaker.web import credentials, store

from .conftest import CHROMIUM, SLOW, Server, register, serve

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")

ATTACKER = "127.0.0.2"
REBIND = "rebind.test"
PNA_FEATURES = (
    "BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"
)
JSON = "{'Content-Type': 'application/json'}"


def attack_page(victim: str, execution_id: str, marker: Path) -> str:
    """The attacker's page: every request it can make without the victim's help, then ``done``."""
    run_doc = json.dumps(
        {"yaml": f"name: pwn\napplication: shop\nstages:\n  - {{id: x, type: run, command: 'touch {marker}'}}\n"}
    )
    frame_script = f"""
      const v = {json.dumps(victim)}, id = {json.dumps(execution_id)};
      Promise.allSettled([
        fetch(v + '/api/executions/' + id + '/pause', {{method: 'POST', mode: 'no-cors', credentials: 'include'}}),
        fetch(v + '/api/executions/' + id + '/cancel', {{method: 'POST', mode: 'no-cors', credentials: 'include'}}),
      ]).then(() => {{
        const f = document.createElement('form');
        f.method = 'POST'; f.action = v + '/api/executions/' + id + '/cancel';
        document.body.appendChild(f); f.submit();
      }});
    """
    # A JS string literal inside the page's own <script>: "</" must not end that script early.
    srcdoc = json.dumps(f"<body><script>{frame_script}</script></body>").replace("</", "<\\/")
    return f"""<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="start" method="POST" enctype="text/plain" target="sink" action="{victim}/api/executions">
  <input name="{html.escape(run_doc[:-2])}" value="{html.escape('"}')}"></form>
<script>
  const v = {json.dumps(victim)}, id = {json.dumps(execution_id)};
  window.results = [];
  const post = (path, init) => fetch(v + path, {{method: 'POST', mode: 'no-cors', credentials: 'include', ...init}})
    .then(() => window.results.push(path)).catch(e => window.results.push(path + ' ' + e));
  Promise.allSettled([
    post('/api/executions', {{headers: {{'Content-Type': 'text/plain'}}, body: {json.dumps(run_doc)}}}),
    post('/api/pipelines/slow/executions', {{headers: {{'Content-Type': 'text/plain'}}, body: '{{}}'}}),
    post('/api/executions/' + id + '/pause'),
    post('/api/executions/' + id + '/cancel'),
    post('/api/executions/' + id + '/stages/sleep/skip'),
  ]).then(() => {{
    document.getElementById('start').submit();
    const frame = document.createElement('iframe');
    frame.setAttribute('sandbox', 'allow-scripts allow-forms');
    frame.setAttribute('srcdoc', {srcdoc});
    document.body.appendChild(frame);
    setTimeout(() => {{ window.done = true; }}, 2500);
  }});
</script></body></html>"""


def rebinding_page(execution_id: str, marker: Path) -> str:
    """Served (before the rebinding) from http://rebind.test:PORT: same-origin requests, JSON allowed."""
    body = json.dumps(
        {"yaml": f"name: pwn\napplication: shop\nstages:\n  - {{id: x, type: run, command: 'touch {marker}'}}\n"}
    )
    return f"""<!doctype html><html><body><script>
  const id = {json.dumps(execution_id)};
  window.statuses = {{}};
  const go = (path, init) => fetch(path, init).then(r => {{ window.statuses[path] = r.status; }})
    .catch(e => {{ window.statuses[path] = String(e); }});
  Promise.allSettled([
    go('/api/executions', {{method: 'POST', headers: {JSON}, body: {json.dumps(body)}}}),
    go('/api/executions/' + id + '/cancel', {{method: 'POST', headers: {JSON}, body: '{{}}'}}),
    go('/api/executions/' + id, {{}}),
  ]).then(() => {{ window.done = true; }});
</script></body></html>"""


class _Attacker(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(params=["default", "insecure-no-auth"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    mode = request.param
    server = {"insecure_no_auth": True} if mode == "insecure-no-auth" else {}
    rt = build_runtime(str(tmp_path / "g.db"), config=Config(server=server))
    register(rt, SLOW)
    for url in serve(rt):
        yield Server(url=url, runtime=rt, tokens={}), mode
    rt.db.dispose()


@pytest.fixture
def rebinding_browser() -> Iterator[Any]:
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
                f"--host-resolver-rules=MAP {REBIND} 127.0.0.1",
                # Chromium's Private Network Access would stop a public page's requests to loopback by
                # itself; Firefox and Safari have no such guard: the server must not depend on it.
                f"--disable-features={PNA_FEATURES}",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def snapshot(server: Server, execution_id: str) -> tuple[Any, ...]:
    rt = server.runtime
    with rt.db.read() as conn:
        ex = views.execution_detail(conn, execution_id)
        executions = views.list_executions(conn, None, None, None, 1000)
        pipelines = views.list_pipelines(conn)
    stages = tuple((s["stage_id"], s["status"]) for s in ex["stages"])
    return ex["status"], stages, len(executions), tuple(p["name"] for p in pipelines)


def test_pages_from_other_origins_change_nothing(
    target: tuple[Server, str], rebinding_browser: Any, tmp_path: Path
) -> None:
    server, mode = target
    rt = server.runtime
    from gennaker.engine import operations as ops

    with rt.db.read() as conn:
        text, _ = views.pipeline_text(conn, "slow")
    execution_id = ops.start_execution(rt.db, rt.pipeline_from_text(text), {}, "victim")
    server.tokens["admin"] = credentials.ensure_admin_token(rt.db, credentials.local_urls("127.0.0.1", 1))
    end = time.monotonic() + 30
    while snapshot(server, execution_id)[0] != "RUNNING":
        assert time.monotonic() < end, snapshot(server, execution_id)
        time.sleep(0.1)
    before = snapshot(server, execution_id)
    marker = tmp_path / "pwned"

    handler = type("Attacker", (_Attacker,), {"page": attack_page(server.url, execution_id, marker).encode()})
    attacker = ThreadingHTTPServer((ATTACKER, 0), handler)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    ctx = rebinding_browser.new_context()
    try:
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        if mode == "default":  # the victim is signed in: the session cookie is in the browser
            page.goto(credentials.login_link(rt.db, server.url))
            assert page.url.endswith("/applications")
        page.goto(f"http://{ATTACKER}:{attacker.server_port}/")
        page.wait_for_function("window.done === true", timeout=20_000)
        assert len(page.evaluate("window.results")) == 5  # every request was made

        port = server.url.rsplit(":", 1)[1]
        rebind_origin = f"http://{REBIND}:{port}"
        page.route(
            f"{rebind_origin}/attack",
            lambda route: route.fulfill(
                status=200, content_type="text/html", body=rebinding_page(execution_id, marker)
            ),
        )
        page.goto(f"{rebind_origin}/attack")
        page.wait_for_function("window.done === true", timeout=20_000)
        statuses = page.evaluate("window.statuses")
        assert set(statuses.values()) == {400}, statuses  # a Host that is not ours: not even a read
        time.sleep(1.0)  # let any request still on its way land
    finally:
        ctx.close()
        attacker.shutdown()

    assert snapshot(server, execution_id) == before
    assert not marker.exists()
    with rt.db.read() as conn:
        audit = store.read_audit(conn, limit=1000)
    assert any(e["status_code"] in (401, 403) for e in audit)  # the attacks did reach the server
    assert not [e for e in audit if e["status_code"] < 400 and e["method"] == "POST"], audit
    with server.api("admin") as c:  # the same requests with the right credentials and origin do work
        assert c.post(f"/api/executions/{execution_id}/pause", json={}).status_code == 200
