"""`gennaker demo --local --auto-approve`: the source document's pipeline on this machine (the sample
application behind HAProxy) under load the whole time, with no failed request, and nothing left
running afterwards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
        assert stage in r.stdout
    config = (tmp_path / "demo" / "gennaker.yml").read_text()
    assert "kind: local" in config and "shop-web:" in config and "path: /up" in config
    # Requests and errors per server group, printed while the pipeline runs.
    assert re.search(r"traffic  .*shop-web-v00\d \d+ req/s \d+ err/s", r.stdout), r.stdout[-3000:]
    summary = re.search(r"Traffic during the demo: (\d+) requests, (\d+) failed.*answered by version (.*)", r.stdout)
    assert summary is not None, r.stdout[-3000:]
    assert int(summary.group(1)) > 50 and summary.group(2) == "0"
    assert "1.0.0:" in summary.group(3) and "1.1.0:" in summary.group(3)
    assert_quiet(r)
    # The demo started the processes and HAProxy; it stops them.
    assert processes_in(tmp_path / "demo") == []


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
