"""Global options (--db, --config, --server, --user, --token, -v) are accepted after the command too,
as a user types them (`gennaker run demo.yml --config ci.yml`); a command's own option of the same
name keeps its meaning, and option values are never mistaken for options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
PIPELINE = """\
name: late-options
application: shop
parameters:
  - {name: v, default: "1"}
stages:
  - {id: hi, type: run, command: "echo v=${trigger.params.v}"}
"""


def gennaker(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gennaker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": SRC},
    )


def test_global_options_after_the_command(tmp_path: Path) -> None:
    doc = tmp_path / "p.yml"
    doc.write_text(PIPELINE)
    db = tmp_path / "late.db"
    res = gennaker("run", str(doc), "--param", "v=--db", "--db", str(db), "--user", "carol", "--wait", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert db.exists()  # the database named after the command, not the default one
    listed = gennaker("executions", "list", "--json", "--db", str(db), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [execution] = json.loads(listed.stdout)
    shown = json.loads(gennaker("executions", "show", execution["id"], "--json", f"--db={db}", cwd=tmp_path).stdout)
    assert shown["trigger"]["user"] == "carol" and shown["trigger"]["params"]["v"] == "--db"


def test_config_after_validate_is_read(tmp_path: Path) -> None:
    doc = tmp_path / "p.yml"
    doc.write_text(
        "name: p\napplication: shop\nstages:\n"
        "  - {id: d, type: deploy, account: laptop, stack: web, image: i, instance_type: t3.micro,"
        " capacity: {min: 1, max: 1, desired: 1}}\n"
    )
    cfg = tmp_path / "g.yml"
    cfg.write_text("accounts:\n  laptop:\n    kind: local\n    load_balancers: {}\n")
    res = gennaker("validate", str(doc), "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 2 and "instance_type" in res.stderr, res.stderr


def test_after_the_double_dash_nothing_moves(tmp_path: Path) -> None:
    res = gennaker("validate", "--", "--db", cwd=tmp_path)
    assert res.returncode == 2 and "--db" in res.stderr, res.stderr
