"""A server without an auth: section is not open (issue 8, items 4 and 5), over HTTP and the CLI:
anonymous changes are refused, X-Gennaker-User grants nothing, the Host must be one of ours, unsafe
requests from another origin (or Origin: null) are refused even with a session, trusted headers count
only from configured proxies, and the local admin credential is made, kept 0600 and found by the CLI."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gennaker.api.app import create_app
from gennaker.errors import ConfigError
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.web import credentials

from .conftest import LOCAL, QUICK, SLOW, free_port, register

ENTRY = f"{sys.executable} -m gennaker"


def make(tmp_path: Path, config: Config | None = None) -> tuple[FastAPI, Runtime]:
    tmp_path.mkdir(exist_ok=True)
    rt = build_runtime(str(tmp_path / "g.db"), config=config or Config())
    register(rt, QUICK)
    register(rt, SLOW)
    return create_app(rt), rt


def started(rt: Runtime, name: str = "slow") -> str:
    from gennaker.engine import operations as ops
    from gennaker.engine import views

    with rt.db.read() as conn:
        text, _ = views.pipeline_text(conn, name)
    return ops.start_execution(rt.db, rt.pipeline_from_text(text), {}, "test")


def status(rt: Runtime, execution_id: str) -> str:
    from gennaker.engine import views

    with rt.db.read() as conn:
        return str(views.execution_detail(conn, execution_id)["status"])


def count_executions(rt: Runtime) -> int:
    from gennaker.engine import views

    with rt.db.read() as conn:
        return len(views.list_executions(conn, None, None, None, 1000))


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime]]:
    app, rt = make(tmp_path)
    with TestClient(app, base_url=LOCAL) as client:
        yield client, rt
    rt.db.dispose()


def sign_in_with_link(client: TestClient, rt: Runtime) -> str:
    """Spend a one-time login link; return the session's CSRF token (as the pages embed it)."""
    link = credentials.login_link(rt.db, LOCAL)
    r = client.get(link.removeprefix(LOCAL), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/applications", r.text
    m = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/applications").text)
    assert m
    return m.group(1)


def test_anonymous_changes_are_refused_without_an_auth_section(local: Any) -> None:
    client, rt = local
    execution_id = started(rt)
    before = count_executions(rt)
    naming = {"X-Gennaker-User": "admin"}  # naming yourself grants nothing
    r = client.post("/api/executions", json={"yaml": QUICK}, headers=naming)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    assert client.post("/api/pipelines/quick/executions", json={"params": {}}, headers=naming).status_code == 401
    for op in ("pause", "cancel"):
        assert client.post(f"/api/executions/{execution_id}/{op}", json={}, headers=naming).status_code == 401
    assert client.post("/api/tokens", json={"name": "mine"}, headers=naming).status_code == 401
    assert count_executions(rt) == before and status(rt, execution_id) == "NOT_STARTED"
    # On a loopback bind anyone on this machine may read (as a viewer).
    assert client.get(f"/api/executions/{execution_id}").status_code == 200
    assert client.get("/api/whoami").json()["access_control"] is True
    # The local admin's token may.
    token = credentials.ensure_admin_token(rt.db, credentials.local_urls("127.0.0.1", 8080))
    admin = {"Authorization": f"Bearer {token}"}
    assert client.post(f"/api/executions/{execution_id}/pause", json={}, headers=admin).status_code in (200, 409)
    assert client.post("/api/pipelines/quick/executions", json={"params": {}}, headers=admin).status_code == 201


def test_reads_need_a_credential_on_a_non_loopback_bind(tmp_path: Path) -> None:
    app, rt = make(tmp_path, Config(server={"host": "0.0.0.0"}))
    execution_id = started(rt)
    with TestClient(app, base_url=LOCAL) as client:
        assert client.get(f"/api/executions/{execution_id}").status_code == 401
        assert client.get("/api/executions").status_code == 401
        assert client.get("/api/health").status_code == 200
        token = credentials.ensure_admin_token(rt.db, credentials.local_urls("0.0.0.0", 8080))
        ok = client.get(f"/api/executions/{execution_id}", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200


def test_a_host_that_is_not_ours_gets_400(local: Any, tmp_path: Path) -> None:
    client, rt = local
    execution_id = started(rt)
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.nip.io:8080", "", "localhost.evil.example"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 400, host
        r = client.post(f"/api/executions/{execution_id}/cancel", json={}, headers={"Host": host})
        assert r.status_code == 400, host
    assert "allowed_hosts" in client.get("/applications", headers={"Host": "evil.example"}).text
    for host in ("127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
    assert status(rt, execution_id) == "NOT_STARTED"
    # Configured names are ours too; a wildcard bind answers to its IP addresses.
    app, _rt2 = make(tmp_path / "b", Config(server={"allowed_hosts": ["gennaker.internal"]}))
    with TestClient(app, base_url="http://gennaker.internal") as other:
        assert other.get("/api/health").status_code == 200
        assert other.get("/api/health", headers={"Host": "10.1.2.3:8080"}).status_code == 400
    app, _rt3 = make(tmp_path / "c", Config(server={"host": "0.0.0.0"}))
    with TestClient(app, base_url="http://10.1.2.3:8080") as other:
        assert other.get("/api/health").status_code == 200
        assert other.get("/api/health", headers={"Host": "rebind.example:8080"}).status_code == 400


def test_foreign_and_null_origins_are_refused_even_with_a_session(local: Any) -> None:
    client, rt = local
    execution_id = started(rt)
    csrf = sign_in_with_link(client, rt)
    assert client.get("/api/whoami").json()["user"] == credentials.LOCAL_ADMIN
    for origin in ("null", "http://127.0.0.2:8080", "http://127.0.0.1:9999", "http://evil.example", "file://"):
        for path in (f"/api/executions/{execution_id}/pause", f"/api/executions/{execution_id}/cancel"):
            r = client.post(path, json={}, headers={"X-CSRF-Token": csrf, "Origin": origin})
            assert r.status_code == 403 and "cross-origin" in r.json()["message"], (origin, r.text)
        r = client.post(
            f"/executions/{execution_id}/cancel",
            data={"csrf_token": csrf},
            headers={"Origin": origin},
            follow_redirects=False,
        )
        assert r.status_code == 403, origin
    assert status(rt, execution_id) == "NOT_STARTED"
    # The server's own origin is fine; so is no Origin at all (a non-browser client) with the CSRF token.
    r = client.post(f"/api/executions/{execution_id}/cancel", json={}, headers={"X-CSRF-Token": csrf, "Origin": LOCAL})
    assert r.status_code == 200 and status(rt, execution_id) == "CANCELED"
    other = started(rt)
    assert client.post(f"/api/executions/{other}/cancel", json={}).status_code == 403  # a cookie needs CSRF
    assert client.post(f"/api/executions/{other}/cancel", json={}, headers={"X-CSRF-Token": csrf}).status_code == 200


def test_allowed_origins_extend_the_set(tmp_path: Path) -> None:
    app, rt = make(tmp_path, Config(server={"allowed_origins": ["https://console.example.com"]}))
    execution_id = started(rt)
    token = credentials.ensure_admin_token(rt.db, credentials.local_urls("127.0.0.1", 8080))
    with TestClient(app, base_url=LOCAL, headers={"Authorization": f"Bearer {token}"}) as client:
        r = client.post(
            f"/api/executions/{execution_id}/cancel", json={}, headers={"Origin": "https://console.example.com"}
        )
        assert r.status_code == 200
        other = started(rt)
        r = client.post(f"/api/executions/{other}/cancel", json={}, headers={"Origin": "https://example.com"})
        assert r.status_code == 403


def test_the_login_link_works_once_and_is_no_api_token(local: Any) -> None:
    client, rt = local
    link = credentials.login_link(rt.db, LOCAL).removeprefix(LOCAL)
    secret = link.split("token=", 1)[1]
    assert client.get("/api/whoami", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert client.get(link, follow_redirects=False).status_code == 303
    assert "gk_session" in client.cookies
    client.cookies.clear()
    r = client.get(link, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?err=")
    assert "gk_session" not in client.cookies
    assert client.get("/api/whoami").json()["auth"] == "anonymous"
    page = client.get(r.headers["location"])
    assert "already used or has expired" in page.text and 'data-testid="login-link-hint"' in page.text


def test_trusted_headers_only_from_configured_proxies(tmp_path: Path) -> None:
    th = {"enabled": True, "trusted_proxies": ["10.9.0.0/16"]}
    config = Config(auth={"secret_key": "k" * 40, "trusted_headers": th}, server={"forwarded_allow": ["127.0.0.1"]})
    app, rt = make(tmp_path, config)
    execution_id = started(rt)
    who = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "admin"}
    # A loopback client is not a proxy just by being local, and X-Forwarded-For does not make it one.
    for peer, extra in (
        (("127.0.0.1", 5000), {}),
        (("127.0.0.1", 5000), {"X-Forwarded-For": "10.9.1.1"}),
        (("::1", 5000), {}),
        (("10.8.0.1", 5000), {}),
    ):
        with TestClient(app, base_url=LOCAL, client=peer) as client:
            assert client.get("/api/whoami", headers={**who, **extra}).status_code == 401, (peer, extra)
            r = client.post(f"/api/executions/{execution_id}/cancel", json={}, headers={**who, **extra})
            assert r.status_code == 401, (peer, extra)
    assert status(rt, execution_id) == "NOT_STARTED"
    with TestClient(app, base_url=LOCAL, client=("10.9.3.4", 5000)) as client:
        assert client.get("/api/whoami", headers=who).json()["user"] == "mallory"
    # Enabling trusted headers without saying which proxies is a configuration error, not "everyone".
    with pytest.raises(ConfigError, match="trusted_proxies"):
        make(tmp_path / "b", Config(auth={"secret_key": "k" * 40, "trusted_headers": {"enabled": True}}))
    with pytest.raises(ConfigError, match="not an IP address or network"):
        make(tmp_path / "c", Config(auth={"trusted_headers": {"enabled": True, "trusted_proxies": ["proxy"]}}))


def test_insecure_no_auth_is_refused_on_a_non_loopback_bind(tmp_path: Path) -> None:
    env = {**os.environ, "GENNAKER_DB": f"sqlite:///{tmp_path / 'g.db'}"}
    for host in ("0.0.0.0", "::", "10.1.2.3"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "gennaker",
                "server",
                "--insecure-no-auth",
                "--host",
                host,
                "--port",
                str(free_port()),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "loopback" in lines[0] and "Traceback" not in r.stderr, r.stderr
    with pytest.raises(ConfigError, match="loopback"):
        make(tmp_path, Config(server={"insecure_no_auth": True, "host": "0.0.0.0"}))


def test_bad_server_and_worker_options_are_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "GENNAKER_DB": f"sqlite:///{tmp_path / 'g.db'}"}
    for args in (
        ["server", "--port", "99999"],
        ["server", "--host", "no such host!"],
        ["worker", "--threads", "0"],
        ["server", "--workers", "-1"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "gennaker", *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    # A port in use is one line too (exit 1), not uvicorn's traceback.
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "gennaker", "server", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert r.returncode != 0 and "Traceback" not in r.stderr and "cannot listen" in r.stderr, r.stderr


class LiveServer:
    """`gennaker server` in a subprocess, with its own user data directory."""

    def __init__(self, tmp_path: Path, *extra: str, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = tmp_path / "data"
        self.env = {**os.environ, "GENNAKER_DB": f"sqlite:///{tmp_path / 'g.db'}", "XDG_DATA_HOME": str(self.data)}
        self.env.pop("GENNAKER_TOKEN", None)
        self.log = tmp_path / f"server-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gennaker", "server", "--port", str(self.port), *extra],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
            if self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"the server did not start: {self.log.read_text()}")

    def cli(self, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gennaker", "--server", url or self.url, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def test_first_start_makes_a_local_credential_the_cli_finds(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yml"
    pipeline.write_text(QUICK)
    server = LiveServer(tmp_path)
    try:
        printed = server.log.read_text()
        link = re.search(r"(http://127\.0\.0\.1:\d+/login\?token=\S+)", printed)
        assert link, printed
        files = list((server.data / "gennaker" / "credentials").glob("*.json"))
        assert len(files) == 1 and str(files[0]) in printed
        assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
        assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
        # Anonymous changes are refused; the CLI on this machine needs no set-up.
        r = httpx.post(f"{server.url}/api/executions", json={"yaml": QUICK}, headers={"X-Gennaker-User": "me"})
        assert r.status_code == 401
        for url in (server.url, f"http://localhost:{server.port}"):
            r = server.cli("run", str(pipeline), "--wait", url=url)
            assert r.returncode == 0, r.stdout + r.stderr
        r = server.cli("executions", "list", "--json")
        assert r.returncode == 0 and r.stdout.count('"SUCCEEDED"') == 2, r.stdout + r.stderr
        # The link signs a browser in, once.
        with httpx.Client() as browser:
            first = browser.get(link.group(1), follow_redirects=False)
            assert first.status_code == 303 and "gk_session" in browser.cookies
            assert browser.get(f"{server.url}/api/whoami").json()["user"] == "admin"
        assert httpx.get(link.group(1), follow_redirects=False).headers["location"].startswith("/login?err=")
        token = files[0].read_text()
    finally:
        server.stop()
    # A restart on the same database keeps the credential (and prints a fresh link).
    again = LiveServer(tmp_path, port=server.port)
    try:
        assert [f.read_text() for f in files[0].parent.glob("*.json")] == [token]
        assert "login?token=" in again.log.read_text()
        # A credential file others can read is not used.
        files[0].chmod(0o644)
        r = again.cli("run", str(pipeline))
        assert r.returncode == 6 and "401" in r.stderr, r.stdout + r.stderr
    finally:
        again.stop()


def test_insecure_no_auth_on_loopback_keeps_todays_behaviour(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, "--insecure-no-auth")
    try:
        assert "WARNING: --insecure-no-auth" in server.log.read_text()
        assert not (server.data / "gennaker" / "credentials").exists()
        r = httpx.post(f"{server.url}/api/pipelines", json={"yaml": QUICK}, headers={"X-Gennaker-User": "carol"})
        assert r.status_code == 201
        page = httpx.get(f"{server.url}/applications")
        assert 'data-testid="insecure-banner"' in page.text
        # Host and Origin are still checked: those are what stop other web pages.
        assert httpx.get(f"{server.url}/api/health", headers={"Host": "evil.example"}).status_code == 400
        r = httpx.post(f"{server.url}/api/pipelines", json={"yaml": QUICK}, headers={"Origin": "null"})
        assert r.status_code == 403
    finally:
        server.stop()


def test_a_local_token_without_an_auth_section_is_the_local_admins(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gennaker.cli import app as cli

    db = f"sqlite:///{tmp_path / 'g.db'}"
    (tmp_path / "gennaker.yml").write_text("accounts: {}\n")  # no auth: section
    r = CliRunner().invoke(
        cli,
        [
            "--db",
            db,
            "--config",
            str(tmp_path / "gennaker.yml"),
            "tokens",
            "create",
            "ci",
            "-r",
            "shop:operator",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    token = json.loads(r.stdout)
    assert token["user"] == credentials.LOCAL_ADMIN
    rt = build_runtime(db, config=Config())
    with TestClient(create_app(rt), base_url=LOCAL) as client:
        me = client.get("/api/whoami", headers={"Authorization": f"Bearer {token['token']}"}).json()
        assert me["user"] == credentials.LOCAL_ADMIN and me["roles"] == ["shop:operator"]
