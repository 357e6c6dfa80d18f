"""Workers killed with SIGKILL mid-pipeline: another worker takes over and the execution completes,
with every finished stage's side effect present exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gennaker.runtime import Runtime
from tests.core.conftest import detail, finished, stage_status, start, wait_for

ENV = {
    "GENNAKER_LEASE_SECONDS": "2",
    "GENNAKER_HEARTBEAT_SECONDS": "0.3",
    "GENNAKER_WORKER_TTL_SECONDS": "1.5",
    "GENNAKER_SELF_CHECK_SECONDS": "1",
}


def spawn_worker(db_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, "GENNAKER_DB": db_url}
    return subprocess.Popen(
        [sys.executable, "-m", "gennaker.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(20)


def kill_and_take_over(runtime: Runtime, eid: str, ready: Callable[[], object], settle: float = 0.0) -> dict[str, Any]:
    """Run a worker until ``ready()``, SIGKILL it, start another and return the finished execution."""
    url = str(runtime.db.engine.url)
    first = spawn_worker(url)
    try:
        wait_for(ready, timeout=30)
        time.sleep(settle)
        kill(first)
        second = spawn_worker(url)
        try:
            return finished(runtime, eid, timeout=40)
        finally:
            stop(second)
    finally:
        if first.poll() is None:
            kill(first)


def _pipeline(out: Path, middle: str) -> str:
    return f"""name: durable
application: shop
stages:
  - {{id: one, type: run, command: "echo one >> {out}"}}
  - {{id: two, type: run, requires: [one], command: "echo two >> {out}"}}
  - {middle}
  - {{id: four, type: run, requires: [three], command: "echo four >> {out}"}}
"""


def test_worker_killed_in_wait_stage(runtime: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    eid = start(runtime, tmp_path, _pipeline(out, "{id: three, type: wait, requires: [two], duration: 2s}"))
    d = kill_and_take_over(runtime, eid, lambda: stage_status(runtime, eid)["three"] == "WAITING")
    assert d["status"] == "SUCCEEDED", d
    assert out.read_text().split() == ["one", "two", "four"]


def test_worker_killed_in_run_stage_reruns_with_retries(runtime: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    started = tmp_path / "started"
    middle = (
        f"{{id: three, type: run, requires: [two], retries: {{count: 1, backoff: 0.1s}}, "
        f'command: "echo x >> {started}; sleep 3; echo three >> {out}"}}'
    )
    eid = start(runtime, tmp_path, _pipeline(out, middle))
    # settle: let the worker commit that the command started (its first poll is at 20 ms)
    d = kill_and_take_over(runtime, eid, started.exists, settle=0.5)
    assert d["status"] == "SUCCEEDED", d
    # the killed attempt's command was stopped by its supervisor when its worker died (before the retry
    # started: see test_supervisor.py): "three" is written once, by the second attempt
    assert out.read_text().split() == ["one", "two", "three", "four"]
    assert started.read_text().split() == ["x", "x"]
    three = next(s for s in d["stages"] if s["stage_id"] == "three")
    assert three["attempt"] == 2


def test_worker_killed_in_run_stage_without_retries_fails_worker_lost(runtime: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    started = tmp_path / "started"
    middle = f'{{id: three, type: run, requires: [two], command: "touch {started}; sleep 3; echo three >> {out}"}}'
    eid = start(runtime, tmp_path, _pipeline(out, middle))
    d = kill_and_take_over(runtime, eid, started.exists, settle=0.5)
    assert d["status"] == "FAILED"
    three = next(s for s in d["stages"] if s["stage_id"] == "three")
    assert three["status"] == "FAILED" and "worker lost" in three["message"]
    assert "stopped the command and every process it started" in three["message"]
    assert out.read_text().split() == ["one", "two"]
    assert detail(runtime, eid)["stages"][3]["status"] == "NOT_STARTED"
