"""Every option of every command refuses a bad value with one clear line and exit 2, before anything
starts — never a traceback, never silently accepted (issue 8, item 12). The property test walks the
real command tree, so an option added later is covered without editing this file."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gennaker.cli import app, run
from gennaker.spec.durations import parse_duration

PIPELINE = "name: p\napplication: shop\nstages:\n  - {id: a, type: run, command: 'true'}\n"


class WouldStart(Exception):
    """Raised in place of binding a port or starting threads: the command got past validation."""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run ``gennaker ARGS`` in this process exactly as ``main`` does, against a fresh database;
    long-running commands raise WouldStart instead of serving."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yml").write_text(PIPELINE)

    def would_start(*_a: Any, **_k: Any) -> Any:
        raise WouldStart

    import uvicorn

    import gennaker.runtime
    import gennaker.sandbox

    monkeypatch.setattr("gennaker.cli.core.serve", would_start, raising=False)
    monkeypatch.setattr("gennaker.cli.web.serve", would_start, raising=False)
    monkeypatch.setattr(gennaker.sandbox, "start_sandbox", would_start)
    monkeypatch.setattr("gennaker.cli.demo.start_sandbox", would_start, raising=False)
    monkeypatch.setattr(gennaker.runtime.Runtime, "worker", would_start)
    # and whatever path a command takes to serve: never block the test on a real server
    monkeypatch.setattr(uvicorn, "run", would_start)
    monkeypatch.setattr(uvicorn.Server, "run", would_start)
    env = {
        "GENNAKER_DB": f"sqlite:///{tmp_path / 'cli.db'}",
        "GENNAKER_USER": "tester",
        "GENNAKER_CONFIG": None,
        "GENNAKER_SERVER": None,
        "GENNAKER_TOKEN": None,
        "XDG_DATA_HOME": str(tmp_path / "data"),  # local credentials and the default database stay here
        "COLUMNS": "200",
    }
    runner = CliRunner()
    command = typer.main.get_command(app)  # built once: building it is most of a run's time

    def invoke(*args: str) -> Result:
        with runner.isolation(input="a long password\n", env=env) as (out, err, _):
            code = run(list(args), command)
            return Result(code, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"))

    yield invoke


def one_clear_line(r: Result) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["server", "--port", "99999"], "--port"),
        (["server", "--port", "0"], "--port"),
        (["server", "--port", "http"], "--port"),
        (["server", "--workers", "-1"], "--workers"),
        (["server", "--host", "no such host!"], "--host"),
        (["worker", "--threads", "0"], "--threads"),
        (["worker", "--threads", "100000000000"], "--threads"),
        (["sandbox", "--port", "99999"], "--port"),
        (["sandbox", "--port", "-5"], "--port"),
        (["demo", "--port", "99999"], "--port"),
        (["demo", "--soak", "abc"], "--soak"),
        (["demo", "--soak", "nan"], "--soak"),
        (["--db", "bogus://x", "executions", "list"], "bogus://x"),
        (["--db", "", "executions", "list"], "--db"),
        (["--db", "/etc/passwd", "executions", "list"], "/etc/passwd"),
        (["--db", "sqlite:////etc/passwd", "executions", "list"], "/etc/passwd"),
        (["--db", "/", "executions", "list"], "/"),
        (["--server", "not a url", "executions", "list"], "--server"),
        (["--server", "http://127.0.0.1:99999", "executions", "list"], "--server"),
        (["--server", "http://127.0.0.1:1", "--user", "zoë", "executions", "list"], "--user"),
        (["tokens", "create", ""], "name"),
        (["tokens", "create", "   "], "name"),
        (["tokens", "create", "ci", "--days", "nan"], "days"),
        (["tokens", "create", "ci", "--days", "-1"], "days"),
        (["tokens", "create", "ci", "--days", "inf"], "days"),
        (["tokens", "create", "ci", "--days", "0"], "days"),
        (["tokens", "create", "ci", "--days", "1e300"], "days"),
        (["run", "p.yml", "--param", "novalue"], "--param"),
        (["run", "p.yml", "--param", "=x"], "--param"),
        (["plan", "p.yml", "--param", "=x"], "--param"),
        (["audit", "--max-age", "nan"], "--max-age"),
        (["audit", "--max-age", "abc"], "--max-age"),
        (["audit", "--max-age", "-1"], "--max-age"),
        (["audit", "--max-age", "inf"], "--max-age"),
        (["executions", "list", "--limit", "0"], "--limit"),
        (["inventory", "snapshots", "--limit", "-1"], "--limit"),
        (["inventory", "search", "--limit", "0"], "--limit"),
        (["inventory", "snapshots", "--db", "/etc/passwd"], "/etc/passwd"),
        (["judge", "e", "s", "--choice", ""], "--choice"),
        (["users", "add", "", "--password-stdin"], "name"),
        (["tokens", "create", "ci", "--user", ""], "--user"),
        (["inventory", "export", "--format", "xml"], "xml"),
    ],
)
def test_bad_value_is_one_line_and_exit_2(cli: Any, args: list[str], says: str) -> None:
    r = cli(*args)
    assert r.code == 2, (r.code, r.stderr, r.stdout)
    assert says in one_clear_line(r)


def test_db_in_a_missing_directory_is_refused_not_created(cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "dir"
    for db in (str(missing / "x.db"), f"sqlite:///{missing / 'x.db'}"):
        r = cli("--db", db, "executions", "list")
        assert r.code == 2, r.stderr
        assert str(missing) in one_clear_line(r)
        assert not (tmp_path / "missing").exists()


def test_db_of_another_schema_is_one_line(cli: Any, tmp_path: Path) -> None:
    import sqlite3

    newer = tmp_path / "newer.db"  # as a newer Gennaker would leave it
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        conn.execute("INSERT INTO alembic_version VALUES ('9999_future')")
    foreign = tmp_path / "foreign.db"  # another program's database
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE executions (x INTEGER)")
    for db, says in ((newer, "9999_future"), (foreign, "already exists")):
        r = cli("--db", str(db), "executions", "list")
        assert r.code == 2 and says in one_clear_line(r), r.stderr


def test_db_in_an_existing_directory_is_created(cli: Any, tmp_path: Path) -> None:
    r = cli("--db", str(tmp_path / "new.db"), "executions", "list")
    assert r.code == 0, r.stderr
    assert (tmp_path / "new.db").is_file()


def test_valid_values_still_work(cli: Any) -> None:
    with pytest.raises(WouldStart):
        cli("server", "--port", "65535", "--workers", "0", "--host", "localhost")
    with pytest.raises(WouldStart):
        cli("worker", "--threads", "1")
    with pytest.raises(WouldStart):
        cli("sandbox", "--port", "1")
    made = cli("tokens", "create", "ci", "--days", "0.5", "--json")
    assert made.code == 0, made.stderr
    assert cli("run", "p.yml", "--param", "x=", "--json").code == 2  # unknown parameter, as before
    assert cli("executions", "list", "--limit", "500").code == 0
    assert cli("--user", "zoë 👩\u200d💻", "executions", "list").code == 0  # any printable name
    assert cli("cancel", "nope", "--reason", "two\nlines").code == 4  # free text may span lines


def test_usage_error_through_main_is_one_line() -> None:
    """The real process: exit 2 and one line for an out-of-range port, before anything binds."""
    r = subprocess.run(
        [sys.executable, "-m", "gennaker", "server", "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "GENNAKER_DB": "sqlite:///:memory:"},
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "--port" in r.stderr and "Traceback" not in r.stderr


# --- the property: any value for any option ------------------------------------------------------

# Positional arguments each command needs, so that the option under test is what decides.
ARGUMENTS: dict[str, list[str]] = {
    "validate": ["p.yml"],
    "run": ["p.yml"],
    "plan": ["p.yml"],
    "logs": ["nope", "a"],
    "cancel": ["nope"],
    "judge": ["nope", "a", "--choice", "approve"],
    "executions show": ["nope"],
    "pipelines register": ["p.yml"],
    "users add": ["someone", "--password-stdin"],
    "tokens create": ["ci"],
    "tokens revoke": ["nope"],
}
PATHS = ("--db", "--config", "--output", "--suppressions", "--workdir", "--pipeline")


def _options() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(command: Any, path: str) -> None:
        for p in command.params:
            if p.param_type_name == "option" and not getattr(p, "is_flag", False):
                found.append((path, p.opts[0]))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


OPTIONS = _options()
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
SPECIAL = st.sampled_from(
    ["", " ", "-1", "0", "1", "nan", "-nan", "inf", "-inf", "1e309", "65536", "99999", "1_000", "٣",
     "=x", "x=", "novalue", "[/red]", "[bold]", "bogus://x", "http://", "/", "/etc/passwd", "/dev/null",
     "p.yml", "4h", "1h30m", "-1s", "9" * 400, "é" * 300]
)  # fmt: skip
VALUES = st.one_of(
    SPECIAL,
    TEXT,
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


NOBODY = "http://127.0.0.1:1"  # a loopback address nothing listens on: refused at once
BOUNDS = {"--port": (1, 65535), "--threads": (1, 1024), "--workers": (0, 1024)}


def _every_time(test: Any) -> Any:
    """The values that broke something once are tried for every option, not left to chance."""
    for value in ("", "9" * 400, "[/red]", "nan", "-1", "a\nb"):
        test = example(value=value)(test)
    return test


def _is_duration(value: str) -> bool:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return False
    return math.isfinite(seconds) and seconds >= 0


def _relative(option: str, value: str) -> str:
    """Generated paths stay inside the test's directory; only the listed special ones point out."""
    if option in PATHS and value.startswith("/") and value not in ("/", "/etc/passwd", "/dev/null"):
        return value.lstrip("/") or "."
    return value


def test_every_option_is_found() -> None:
    assert ("server", "--port") in OPTIONS and ("tokens create", "--days") in OPTIONS
    assert ("", "--db") in OPTIONS and ("audit", "--max-age") in OPTIONS and len(OPTIONS) > 40


@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=[f"{c or 'gennaker'} {o}" for c, o in OPTIONS])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES)
@_every_time
def test_any_value_no_traceback(cli: Any, command: str, option: str, value: str) -> None:
    value = _relative(option, value)
    if command:
        args = [*command.split(), option, value, *ARGUMENTS.get(command, [])]
    elif option == "--server":
        args = [option, value, "executions", "list"]
    else:  # a global option: with a command that opens the database, and one that calls a server
        r = cli(option, value, "--server", NOBODY, "executions", "list")
        assert "Traceback" not in r.stdout + r.stderr and r.code in {0, 1, 2, 3, 4, 5, 6}, (value, r.stderr)
        args = [option, value, "executions", "list"]
    try:
        r = cli(*args)
    except WouldStart:  # the command accepted the value: it must be one that is valid
        if option in BOUNDS and command in ("server", "worker", "sandbox", "demo"):
            low, high = BOUNDS[option]
            assert re.fullmatch(r"\s*\+?[0-9]+\s*", value) and low <= int(value) <= high, (args, "started")
        if option == "--soak":
            assert _is_duration(value), (args, "started")
        return
    assert "Traceback" not in r.stdout + r.stderr, (args, r.stderr)
    assert r.code in {0, 1, 2, 3, 4, 5, 6}, (args, r.code, r.stderr)
    if r.code == 2:  # bad input: error lines only (one per problem; a bad value is one problem)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert lines and all(line.startswith("error") for line in lines), (args, r.stderr)


def _arguments() -> list[tuple[str, int, int]]:
    """(command, index, count) for each positional argument of each command."""
    found: list[tuple[str, int, int]] = []

    def walk(command: Any, path: str) -> None:
        positional = [p for p in command.params if p.param_type_name == "argument"]
        found.extend((path, i, len(positional)) for i in range(len(positional)))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


POSITIONAL = _arguments()


@pytest.mark.parametrize(("command", "index", "count"), POSITIONAL, ids=[f"{c} #{i}" for c, i, _ in POSITIONAL])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES)
@_every_time
def test_any_argument_no_traceback(cli: Any, command: str, index: int, count: int, value: str) -> None:
    """The same for positional arguments (ids, stage names, files), the others kept sensible."""
    defaults = [a for a in ARGUMENTS.get(command, []) if not a.startswith("-")][:count]
    defaults += ["x"] * (count - len(defaults))
    extra = [a for a in ARGUMENTS.get(command, []) if a not in defaults]
    defaults[index] = _relative("--output", value)  # a file argument stays inside the test's directory
    args = [*command.split(), *extra, "--", *defaults]
    r = cli(*args)
    assert "Traceback" not in r.stdout + r.stderr, (args, r.stderr)
    assert r.code in {0, 1, 2, 3, 4, 5, 6}, (args, r.code, r.stderr)
    if r.code == 2:
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert lines and all(line.startswith("error") for line in lines), (args, r.stderr)


def test_sandbox_on_a_busy_port_is_one_line() -> None:
    """Before moto starts (its server thread would die quietly and seeding would hang or trace)."""
    import socket

    pytest.importorskip("moto", reason="moto (gennaker[sandbox]) is not installed")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "gennaker", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port}" in r.stderr, r.stderr


def test_a_group_without_its_command_shows_its_help(cli: Any) -> None:
    r = cli("executions")
    assert r.code == 2 and "list" in r.stdout + r.stderr and "error" not in r.stderr, r.stderr
