"""`gennaker demo --auto-approve` runs the source document's pipeline on simulated AWS to SUCCEEDED,
quietly (no library warnings, no simulator noise), and on a free port when 8080 is taken."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

# What reached the terminal before: pydantic's serializer warning for a ${...} in a typed field, and
# moto's line for each call to a service it does not simulate (the audit asks ssm-incidents).
NOISE = ("Warning:", "PydanticSerialization", "Unable to find appropriate backend", "Traceback")
STAGES = (
    "Bake",
    "Verify Bake",
    "Integration Tests",
    "Unit Tests",
    "Deploy Canary",
    "Deploy To Prod",
    "DR Drill",
    "Cleanup Old Server Groups",
)


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENNAKER_DB": f"sqlite:///{tmp_path / 'unused.db'}"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gennaker",
            "demo",
            "--auto-approve",
            "--soak",
            "1s",
            "--workdir",
            str(tmp_path / "demo"),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def assert_quiet(r: subprocess.CompletedProcess[str]) -> None:
    for noise in NOISE:
        assert noise not in r.stdout, f"{noise!r} on stdout:\n{r.stdout[-3000:]}"
        assert noise not in r.stderr, f"{noise!r} on stderr:\n{r.stderr[-3000:]}"


def test_demo_auto_approve_succeeds_quietly(tmp_path: Path) -> None:
    pytest.importorskip("moto", reason="the demo needs moto (gennaker[sandbox])")
    r = demo(tmp_path, "--port", str(free_port()))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert ": SUCCEEDED" in r.stdout
    for stage in STAGES:
        assert stage in r.stdout
    assert (tmp_path / "demo" / "gennaker.yml").read_text().startswith("# Gennaker configuration for the local sandbox")
    # the DR drill recovered shop in us-west-2 from the sandbox's copies, and says where its report is
    drill = re.search(r"DR drill (\w+): drill succeeded: RTO \S+, RPO \S+", r.stdout)
    assert drill is not None, r.stdout[-3000:]
    assert re.search(rf"report:  http://127\.0\.0\.1:\d+/applications/shop/dr/{drill.group(1)}", r.stdout)
    assert_quiet(r)


def test_demo_starts_on_a_free_port_when_8080_is_taken(tmp_path: Path, port_8080_taken: None) -> None:
    pytest.importorskip("moto", reason="the demo needs moto (gennaker[sandbox])")
    r = demo(tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "port 8080 is in use" in r.stdout
    served = re.search(r"Server: http://127\.0\.0\.1:(\d+)", r.stdout)
    assert served is not None and served.group(1) != "8080"
    assert ": SUCCEEDED" in r.stdout
    assert_quiet(r)


def test_demo_on_a_busy_port_asked_for_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        r = demo(tmp_path, "--port", str(sock.getsockname()[1]))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "in use" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "Starting simulated AWS" not in r.stdout
