"""The CLI as a user runs it: a real process, exit codes, no tracebacks, in-process engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

PIPELINE = """name: cli-demo
application: shop
parameters: [{name: version, default: "1"}]
stages:
  - {id: build, type: run, command: 'echo "built $V"', env: {V: "${trigger.params.version}"}}
  - {id: gate, type: manual_judgment, requires: [build]}
  - {id: soak, type: wait, requires: [gate], duration: 1h}
"""


def gk(db: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENNAKER_DB": db, "GENNAKER_USER": "cli-user"}
    return subprocess.run(
        [sys.executable, "-m", "gennaker", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_run_wait_judge_skip_show_logs(tmp_path: Path, db: str) -> None:
    path = tmp_path / "p.yml"
    path.write_text(PIPELINE)
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    runner = threading.Thread(
        target=lambda: result.update(r=gk(db, "run", str(path), "--param", "version=9", "--wait", "--json"))
    )
    runner.start()
    eid = None
    deadline = time.time() + 30
    while time.time() < deadline and not eid:
        listed = gk(db, "executions", "list", "--json")
        rows = json.loads(listed.stdout) if listed.returncode == 0 else []
        if rows and any(
            s["status"] == "WAITING"
            for s in json.loads(gk(db, "executions", "show", rows[0]["id"], "--json").stdout)["stages"]
        ):
            eid = rows[0]["id"]
        time.sleep(0.3)
    assert eid, "execution never reached the judgment"
    r = gk(db, "judge", eid, "gate", "--choice", "approve", "--comment", "fine")
    assert r.returncode == 0, r.stderr
    deadline = time.time() + 20
    while time.time() < deadline:
        r = gk(db, "skip", eid, "soak")
        if r.returncode == 0:
            break
        time.sleep(0.3)
    assert r.returncode == 0, r.stderr
    runner.join(60)
    final = result["r"]
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["status"] == "SUCCEEDED"
    logs = gk(db, "logs", eid, "build")
    assert "built 9" in logs.stdout
    show = gk(db, "executions", "show", eid)
    assert "SUCCEEDED" in show.stdout and "gate" in show.stdout
    ops = json.loads(gk(db, "executions", "show", eid, "--json").stdout)["operations"]
    assert [(o["action"], o["actor"]) for o in ops] == [
        ("start", "cli-user"),
        ("judge", "cli-user"),
        ("skip", "cli-user"),
    ]


def test_bad_parameter_value_exits_2(tmp_path: Path, db: str) -> None:
    path = tmp_path / "p.yml"
    path.write_text(
        "name: f\napplication: shop\nparameters: [{name: env, default: dev, options: [dev, prod]}]\n"
        "stages:\n  - {id: a, type: run, command: 'true'}\n"
    )
    r = gk(db, "run", str(path), "--param", "env=staging")
    assert r.returncode == 2 and "must be one of" in r.stderr
    r = gk(db, "run", str(path), "--param", "nope=1")
    assert r.returncode == 2 and "unknown parameter" in r.stderr


def test_failed_run_exits_1(tmp_path: Path, db: str) -> None:
    path = tmp_path / "p.yml"
    path.write_text("name: f\napplication: shop\nstages:\n  - {id: a, type: run, command: 'exit 5'}\n")
    r = gk(db, "run", str(path), "--wait")
    assert r.returncode == 1
    assert "FAILED" in r.stdout and "exit code 5" in r.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("executions", "show", "nope"), 4, "no execution 'nope'"),
        (("cancel", "nope"), 4, "no execution"),
        (("run", "/does/not/exist.yml"), 2, "file not found"),
        (("run", "unregistered-name"), 4, "no pipeline named"),
        (("run", "x.yml", "--param", "novalue"), 2, "takes name=value"),
        (("judge", "nope", "stage", "--choice", "approve"), 4, "no execution"),
        (("--db", "mysql+nothing://x", "executions", "list"), 2, "cannot use database URL"),
        (("executions", "list", "--status", "BOGUS"), 2, "unknown status BOGUS"),
    ],
)
def test_bad_input_clear_error_no_traceback(db: str, args: tuple[str, ...], code: int, fragment: str) -> None:
    r = gk(db, *args)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr


def test_markup_in_names_users_and_messages_is_text(tmp_path: Path, db: str) -> None:
    """'[/red]' in a stage name, a user name or a failure is printed as it is, not read as Rich markup."""
    path = tmp_path / "m.yml"
    path.write_text(
        "name: m\napplication: shop\nstages:\n"
        "  - {id: a, name: '[/red]', type: run, command: 'echo \"[/x]\" >&2; exit 3'}\n"
    )
    r = gk(db, "--user", "[/red]", "run", str(path), "--wait")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    listed = gk(db, "executions", "list")
    assert listed.returncode == 0 and "[/red]" in listed.stdout, listed.stderr
    eid = json.loads(gk(db, "executions", "list", "--json").stdout)[0]["id"]
    shown = gk(db, "executions", "show", eid)
    assert shown.returncode == 0 and "[/red]" in shown.stdout, shown.stderr
