"""No single point of failure: two `gennaker server` replicas (no in-process worker) and two
`gennaker worker` processes on one fresh PostgreSQL database, behind a real HAProxy that checks
/readyz and retries idempotent requests elsewhere. A browser signs in through HAProxy and watches an
execution; the replica serving its live stream is killed with SIGKILL; the page reconnects to the
other replica and shows the execution SUCCEEDED. API reads through HAProxy during the kill all
succeed.

The HAProxy configuration is the example of docs/operating.md (keep them in step)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from gennaker.web import store
from gennaker.web.security import hash_password
from tests.web.conftest import PASSWORD, browser, free_port, register

__all__ = ["browser"]

# Short engine timings: a worker counts as live for 3 s after its last heartbeat.
ENV = {
    "GENNAKER_HEARTBEAT_SECONDS": "0.5",
    "GENNAKER_WORKER_TTL_SECONDS": "3",
    "GENNAKER_LEASE_SECONDS": "5",
}
WATCHED = """\
name: watched
application: shop
stages:
  - {id: soak, name: Soak, type: wait, duration: 2s}
  - id: talk
    name: Talk
    type: run
    requires: [soak]
    command: "for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.8; done"
  - {id: announce, name: Announce, type: run, requires: [talk], command: "echo released"}
"""
LINES = [f"line {i}" for i in range(1, 9)]


def haproxy_config(front: int, stats: Path, replicas: dict[str, int]) -> str:
    """HAProxy in front of the replicas: round robin, a replica taken out after two failed /readyz
    checks half a second apart, and a request whose replica refused the connection or died before
    answering sent again, to another replica (idempotent requests only: HAProxy never retries a
    request whose body it did not keep)."""
    servers = "\n".join(f"    server {name} 127.0.0.1:{port} check" for name, port in replicas.items())
    return f"""\
global
    stats socket {stats} mode 600 level admin
    maxconn 512

defaults
    mode http
    option httplog
    option forwardfor
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend gennaker
    bind 127.0.0.1:{front}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
    http-response set-header X-Gennaker-Replica %s
{servers}
"""


@dataclass
class Cluster:
    url: str  # HAProxy's
    token: str  # alice's API token
    replicas: dict[str, subprocess.Popen[bytes]]
    stats: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stat(self) -> dict[str, dict[str, str]]:
        """HAProxy's `show stat` of the backend's servers, by name."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.stats))
            s.sendall(b"show stat\n")
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        lines = raw.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {r["svname"]: r for r in rows if r["pxname"] == "replicas"}


def _gennaker(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "gennaker", *args], env=env, stdout=out, stderr=out)


def _wait(what: str, check: Any, timeout: float, logs: list[Path]) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in logs if p.exists())
    raise AssertionError(f"{what} within {timeout}s\n{tails}")


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if haproxy is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy): the load balancer in front of the replicas")
    # One configuration for every process, with no auth.secret_key: the replicas share the key the
    # database keeps.
    config = tmp_path / "gennaker.yml"
    users = {"alice": {"password_hash": hash_password(PASSWORD), "roles": ["admin"]}}
    config.write_text(
        yaml.safe_dump(
            {"auth": {"secure_cookies": False, "users": users}, "server": {"forwarded_allow": ["127.0.0.1"]}}
        )
    )
    rt = build_runtime(pg_url, config=Config())  # migrates the database once, before the replicas start
    register(rt, WATCHED)
    token = store.create_token(rt.db, "load", "alice", ["admin"], "fixture")["token"]
    rt.db.dispose()

    env = {**os.environ, **ENV, "XDG_DATA_HOME": str(tmp_path / "data")}
    common = ["--db", pg_url, "--config", str(config)]
    ports = {"r1": free_port(), "r2": free_port()}
    logs: list[Path] = []
    procs: list[subprocess.Popen[bytes]] = []
    replicas: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, port in ports.items():
            logs.append(tmp_path / f"{name}.log")
            replicas[name] = _gennaker(
                [*common, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "0"], logs[-1], env
            )
            procs.append(replicas[name])
        for n in (1, 2):
            logs.append(tmp_path / f"worker{n}.log")
            procs.append(_gennaker([*common, "worker", "--threads", "2"], logs[-1], env))
        front = free_port()
        stats = tmp_path / "haproxy.sock"
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(haproxy_config(front, stats, ports))
        logs.append(tmp_path / "haproxy.log")
        with logs[-1].open("wb") as out:
            procs.append(subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=out, stderr=out))
        c = Cluster(url=f"http://127.0.0.1:{front}", token=token, replicas=replicas, stats=stats, procs=procs)
        _wait(
            "both replicas UP in HAProxy (their /readyz: database, schema, live workers)",
            lambda: stats.exists() and all(s["status"] == "UP" for s in c.stat().values()),
            40,
            logs,
        )
        yield c
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@dataclass
class Load:
    """API reads through HAProxy, one after another, until stopped."""

    url: str
    token: str
    done: threading.Event = field(default_factory=threading.Event)
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as client:
            while not self.done.is_set():
                try:
                    r = client.get("/api/executions", params={"limit": 20})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code == 200:
                    self.ok += 1
                    replica = r.headers.get("x-gennaker-replica", "?")
                    self.served_by[replica] = self.served_by.get(replica, 0) + 1
                else:
                    self.failures.append(f"{r.status_code} from {r.headers.get('x-gennaker-replica')}: {r.text[:200]}")


def test_a_watched_execution_and_api_reads_survive_a_replica_killed_behind_haproxy(
    cluster: Cluster, browser: Any
) -> None:
    load = Load(cluster.url, cluster.token)
    reader = threading.Thread(target=load.run, daemon=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        streams: list[str] = []  # which replica served each of the execution page's streams, in order
        page.on(
            "response",
            lambda r: (
                streams.append(r.headers.get("x-gennaker-replica", "?"))
                if "/executions/" in r.url and "/events" in r.url
                else None
            ),
        )
        # Sign in through HAProxy: the sign-in page, the form post and the next page may each be
        # served by a different replica (round robin, no stickiness).
        page.goto(f"{cluster.url}/applications/shop/pipelines")
        assert "/login" in page.url
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/applications/shop/pipelines"))
        assert page.text_content("[data-testid=current-user]") == "alice"

        with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.token}"}) as api:
            r = api.post("/api/pipelines/watched/executions", json={"params": {}})
            assert r.status_code in (200, 201), r.text
            execution = r.json()["id"]
        # Watch the stage that prints a line every 0.8 s: its log streams live.
        page.goto(f"{cluster.url}/executions/{execution}/stages/talk")
        page.locator("[data-testid=execution][data-status=RUNNING]").wait_for()
        page.locator("[data-testid=log]", has_text="line 2").wait_for()  # (the CSP forbids wait_for_function)
        deadline = time.monotonic() + 10
        while not streams and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert streams, "the execution page opened no live-update stream"
        victim = streams[-1]
        assert victim in cluster.replicas, streams

        reader.start()
        time.sleep(1.0)  # reads spread over both replicas before the kill
        before_kill = dict(load.served_by)
        killed_log_lines = (page.text_content("[data-testid=log]") or "").count("line ")
        cluster.replicas[victim].send_signal(signal.SIGKILL)
        cluster.replicas[victim].wait(10)
        killed_at = time.monotonic()

        # The page keeps updating: its stream reconnects (to the survivor) and the execution ends.
        page.locator("[data-testid=execution][data-status=SUCCEEDED]").wait_for(timeout=30_000)
        took = time.monotonic() - killed_at
        page.locator("[data-testid=log]", has_text="line 8").wait_for(timeout=10_000)
        # Each line once: the stream resumed after the last line the page had, not from its start.
        log = page.text_content("[data-testid=log]") or ""
        assert re.findall(r"^line \d$", log, re.M) == LINES, log
        survivor = next(name for name in cluster.replicas if name != victim)
        assert survivor in streams[streams.index(victim) + 1 :], streams  # reconnected to the other one
        time.sleep(1.0)  # reads after HAProxy has taken the dead replica out
    finally:
        load.done.set()
        if reader.ident is not None:
            reader.join(15)
        ctx.close()

    stat = cluster.stat()
    print(
        f"\nkilled {victim}; page showed SUCCEEDED {took:.1f}s later; streams served by {streams}; "
        f"{load.ok} reads ok ({load.served_by}; before the kill {before_kill}), {len(load.failures)} failed; "
        f"HAProxy: {victim} {stat[victim]['status']}, retries {stat[survivor]['wretr']}/{stat[victim]['wretr']}, "
        f"redispatches {stat[survivor]['wredis']}/{stat[victim]['wredis']}"
    )
    assert stat[victim]["status"].startswith("DOWN"), stat[victim]["status"]
    assert killed_log_lines < len(LINES), "the replica was killed after the log had ended: nothing was watched"
    assert load.ok > 20 and set(before_kill) == set(cluster.replicas), (load.ok, before_kill)
    # Every read was an idempotent GET HAProxy could send again: none may be lost.
    assert load.failures == [], load.failures[:5]
