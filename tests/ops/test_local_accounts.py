"""The audit reads AWS accounts: a `kind: local` account (this machine's processes behind HAProxy) is
left out of an audit of the configured accounts, and naming it is one clear line, never an AWS call
with made-up credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _audit(tmp_path: Path, moto_endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "gennaker.yml"
    cfg.write_text(
        f"accounts:\n  main:\n    regions: [us-east-1]\n    endpoint_url: {moto_endpoint}\n"
        "  laptop:\n    kind: local\n    load_balancers:\n      shop-web: {listen: '127.0.0.1:18088'}\n"
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gennaker",
            "audit",
            "--checks",
            "ha.eip.*",
            "--format",
            "json",
            *args,
            "--config",
            str(cfg),
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC},
    )


def test_audit_of_configured_accounts_reads_only_aws_ones(tmp_path: Path, moto_endpoint: str) -> None:
    res = _audit(tmp_path, moto_endpoint)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert "laptop" not in json.dumps(report["scope"] if "scope" in report else report.get("accounts", report))
    assert not [f for f in report["findings"] if f.get("account") == "laptop"]


def test_naming_a_local_account_is_one_clear_line(tmp_path: Path, moto_endpoint: str) -> None:
    res = _audit(tmp_path, moto_endpoint, "--accounts", "laptop")
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "laptop" in lines[0] and "local" in lines[0], res.stderr
