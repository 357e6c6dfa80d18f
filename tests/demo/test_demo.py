"""`gennaker demo --auto-approve` runs the source document's pipeline on simulated AWS to SUCCEEDED."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port


def test_demo_auto_approve_succeeds(tmp_path: Path) -> None:
    pytest.importorskip("moto", reason="the demo needs moto (gennaker[sandbox])")
    env = {**os.environ, "GENNAKER_DB": f"sqlite:///{tmp_path / 'unused.db'}"}
    r = subprocess.run(
        [sys.executable, "-m", "gennaker", "demo", "--auto-approve", "--soak", "1s", "--port", str(free_port()),
         "--workdir", str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert ": SUCCEEDED" in r.stdout
    for stage in ("Bake", "Verify Bake", "Integration Tests", "Unit Tests", "Deploy Canary", "Deploy To Prod",
                  "Cleanup Old Server Groups"):
        assert stage in r.stdout
    assert (tmp_path / "demo" / "gennaker.yml").read_text().startswith("# Gennaker configuration for the local sandbox")
