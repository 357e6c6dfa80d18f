"""`gennaker demo --local --auto-approve`: the source document's pipeline on this machine (the sample
application behind HAProxy) under load the whole time, with no failed request, and nothing left
running afterwards; its canary is judged on HAProxy's counters and passes. With --bad-version the
release answers 5 % of its requests with 500: the canary fails it and rolls it back on its own, and
no request outside the canary fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gennaker.cli.demo import write_release
from gennaker.sample_app.app import release_settings
from tests.conftest import free_port
from tests.demo.test_demo import STAGES, assert_quiet


def demo_local(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gennaker",
            "demo",
            "--local",
            "--auto-approve",
            "--soak",
            "3s",
            "--workdir",
            str(tmp_path / "demo"),
            *args,
        ],
        env={**os.environ, "GENNAKER_DB": f"sqlite:///{tmp_path / 'unused.db'}", **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_demo_local_runs_the_pipeline_under_load_with_no_failed_request(tmp_path: Path, port_8080_taken: None) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy): the local demo's load balancer")
    r = demo_local(tmp_path)  # no --port, and 8080 taken: a free one
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "port 8080 is in use" in r.stdout and "Server: http://127.0.0.1:8080" not in r.stdout
    assert ": SUCCEEDED" in r.stdout
    for stage in STAGES:
        if stage == "DR Drill":  # the local account is this machine: it has no second region to drill
            continue
        assert stage in r.stdout
    config = (tmp_path / "demo" / "gennaker.yml").read_text()
    assert "kind: local" in config and "shop-web:" in config and "path: /up" in config
    # Requests and errors per server group, printed while the pipeline runs.
    assert re.search(r"traffic  .*shop-web-v00\d \d+ req/s \d+ err/s", r.stdout), r.stdout[-3000:]
    summary = re.search(r"Traffic during the demo: (\d+) requests, (\d+) failed.*answered by version (.*)", r.stdout)
    assert summary is not None, r.stdout[-3000:]
    assert int(summary.group(1)) > 50 and summary.group(2) == "0"
    assert "1.0.0:" in summary.group(3) and "1.1.0:" in summary.group(3)
    # The canary stage judged the pair on HAProxy's counters, and the Go/No-Go came after it.
    canary = re.search(r"Canary: score (\d+) \(pass\) after (\d+) judgement", r.stdout)
    assert canary is not None and int(canary.group(1)) >= 75 and canary.group(2) == "2", r.stdout[-3000:]
    assert re.search(r"report:  http://127\.0\.0\.1:\d+/canary/[0-9a-f]+", r.stdout)
    assert "canary analyze --analysis" in r.stdout
    assert r.stdout.index("Deploy Canary                SUCCEEDED") < r.stdout.index("Go/No Go    SUCCEEDED")
    assert_quiet(r)
    # The demo started the processes and HAProxy; it stops them.
    assert processes_in(tmp_path / "demo") == []


def test_demo_local_bad_version_is_caught_by_the_canary_and_rolled_back(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy): the local demo's load balancer")
    started = time.monotonic()
    r = demo_local(tmp_path, "--bad-version", "--port", str(free_port()))
    took = time.monotonic() - started
    # Exit 0: the demo showed what it meant to (the pipeline itself failed, at the canary).
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "answers 5% of GET / with 500" in r.stdout
    assert ": FAILED" in r.stdout and "Deploy Canary                FAILED" in r.stdout
    canary = re.search(r"Canary: score (\d+) \(fail\)", r.stdout)
    assert canary is not None and canary.group(1) == "0", r.stdout[-3000:]
    assert re.search(r"failed metric: errors \(critical\) High: canary median \S+ vs baseline 0\b", r.stdout)
    assert "baseline and canary groups are destroyed" in r.stdout
    assert re.search(r"report:  http://127\.0\.0\.1:\d+/canary/[0-9a-f]+", r.stdout)
    # Never past the canary: no judgment asked, nothing deployed to production.
    assert "Go/No Go    SUCCEEDED" not in r.stdout and "Deploy To Prod               RUNNING" not in r.stdout
    # The load generator's account: failures only where the canary answered, none outside it.
    outside = re.search(
        r"Outside the canary: (\d+) requests, (\d+) failed; the canary \(1\.1\.0\) answered (\d+), (\d+) failed",
        r.stdout,
    )
    assert outside is not None, r.stdout[-3000:]
    assert int(outside.group(1)) > 500 and outside.group(2) == "0"
    assert int(outside.group(3)) > 100 and int(outside.group(4)) > 0
    summary = re.search(r"Traffic during the demo: (\d+) requests, (\d+) failed", r.stdout)
    assert summary is not None and int(summary.group(2)) == int(outside.group(4))
    assert "The canary caught the bad version" in r.stdout
    assert_quiet(r)
    assert processes_in(tmp_path / "demo") == []
    assert took < 90, f"the bad-version demo took {took:.0f}s"


def test_bad_version_needs_local(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "gennaker", "demo", "--bad-version", "--port", str(free_port())],
        env={**os.environ, "GENNAKER_DB": f"sqlite:///{tmp_path / 'unused.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "--bad-version needs --local" in r.stderr, r.stdout + r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr


def test_a_release_carries_its_version_and_error_rate(tmp_path: Path) -> None:
    release = write_release(tmp_path, "9.9.9", "0.05")
    assert (release / "app.py").is_file() and not (release / "__pycache__").exists()
    assert release_settings(release / "release.env") == {"APP_VERSION": "9.9.9", "ERROR_RATE": "0.05"}
    assert release_settings(tmp_path / "none.env") == {}
    (tmp_path / "broken.env").write_text("# a comment\nAPP_VERSION\n")
    with pytest.raises(ValueError, match="line 2: expected KEY=value"):
        release_settings(tmp_path / "broken.env")


def processes_in(workdir: Path) -> list[str]:
    """Processes running in ``workdir`` (the instances: their unpacked artifact is their cwd) or
    naming it on their command line (HAProxy: its config file)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if cwd.startswith(str(workdir)) or str(workdir) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_demo_local_without_haproxy_is_one_line(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    r = demo_local(tmp_path, "--port", str(free_port()), env={"PATH": str(bare)})
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stderr.strip().count("\n") == 0 and "apt-get install haproxy" in r.stderr, r.stderr
