"""The sample application, run as a real process the way an instance runs it."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gennaker.sample_app import SOURCE_DIR
from tests.conftest import free_port


def request(port: int, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def run_app(**env: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SOURCE_DIR / "app.py")],
        env={**os.environ, "PORT": str(port), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    assert "listening on" in proc.stdout.readline()
    return proc, port


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def test_version_health_and_prometheus_metrics(procs: list[subprocess.Popen[str]]) -> None:
    proc, port = run_app(APP_VERSION="4.5.6")
    procs.append(proc)
    assert request(port) == (200, "4.5.6\n")
    assert request(port, "/up") == (200, "up\n")
    assert request(port, "/nope")[0] == 404
    status, text = request(port, "/metrics")
    assert status == 200
    assert 'http_requests_total{status="200"} 1' in text
    assert 'http_request_duration_seconds_bucket{le="+Inf"} 1' in text
    assert "http_request_duration_seconds_count 1" in text
    assert "# TYPE http_request_duration_seconds histogram" in text


def test_error_rate_and_latency_make_a_bad_version(procs: list[subprocess.Popen[str]]) -> None:
    proc, port = run_app(ERROR_RATE="1", LATENCY_MS="200")
    procs.append(proc)
    started = time.monotonic()
    assert request(port)[0] == 500
    assert time.monotonic() - started >= 0.2
    assert request(port, "/up")[0] == 200  # healthy, yet failing requests: what a canary must catch
    assert 'http_requests_total{status="500"} 1' in request(port, "/metrics")[1]


def test_sigterm_finishes_requests_in_flight(procs: list[subprocess.Popen[str]]) -> None:
    proc, port = run_app(LATENCY_MS="1000", APP_VERSION="9")
    procs.append(proc)
    result: list[tuple[int, str]] = []
    slow = threading.Thread(target=lambda: result.append(request(port)))
    slow.start()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    slow.join(10)
    assert result == [(200, "9\n")]
    assert proc.wait(10) == 0
    with pytest.raises(OSError):
        request(port)


def test_bad_settings_and_a_taken_port_are_one_clear_line(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, str(SOURCE_DIR / "app.py")],
        env={**os.environ, "ERROR_RATE": "2"},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "sample app: ERROR_RATE must be between 0 and 1, got 2.0"
    ]
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [sys.executable, str(SOURCE_DIR / "app.py")],
            env={**os.environ, "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert busy.returncode == 1 and f"cannot listen on port {port}" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
