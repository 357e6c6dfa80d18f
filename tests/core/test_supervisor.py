"""A ``run`` command's whole process tree dies with its attempt: workers killed with SIGKILL while a
command has started background children (plain, in their own session, daemonized), then another
worker takes over. No process of the first attempt outlives the take-over, a retry never overlaps
it, nothing is left as a zombie, and a command that finished while its worker was dead is recorded
with its real status and outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from gennaker.runtime import Runtime
from gennaker.store.tables import stages
from tests.core.conftest import detail, finished, start, wait_for
from tests.core.test_durability import ENV, kill, stop

# Ways a command leaves a process behind: a background job, one in its own session (setsid), and a
# daemon (double fork + setsid: its parent exits at once, so it is nobody's child but the reaper's).
SPAWNS = {
    "background": "{job} &",
    "setsid": "setsid {job} &",
    "daemon": "(setsid {job} &) &",
}


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runs"
    monkeypatch.setenv("GENNAKER_RUN_DIR", str(path))
    return path


def spawn_worker(db_url: str, **extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, "GENNAKER_DB": db_url, **extra}
    return subprocess.Popen(
        [sys.executable, "-m", "gennaker.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def pipeline(command: str, retries: int = 0, extra: str = "") -> str:
    quoted = command.replace("\\", "\\\\").replace('"', '\\"')
    return f"""name: tree
application: shop
stages:
  - id: work
    type: run
    retries: {{count: {retries}, backoff: 0.1s}}
    command: "{quoted}"
{extra}"""


def command(tmp_path: Path, spawn: str) -> str:
    """Log start/end with the attempt; a background job that writes 'late' after 2 s; a heartbeat of
    the attempt's tree (a file per attempt) while it lives. The first attempt sleeps long."""
    log, beat = tmp_path / "log", tmp_path / "beat"
    late = f"sh -c 'sleep 2; echo late $GENNAKER_ATTEMPT >> {log}'"
    heartbeat = f"sh -c 'while :; do date +%s.%N >> {beat}.$GENNAKER_ATTEMPT; sleep 0.05; done'"
    return (
        f"echo start $GENNAKER_ATTEMPT $(date +%s.%N) >> {log}; "
        + SPAWNS[spawn].format(job=late)
        + " "
        + SPAWNS[spawn].format(job=heartbeat)
        + " "
        + 'if [ "$GENNAKER_ATTEMPT" = 1 ]; then sleep 30; else sleep 3; fi; '
        + f"echo end $GENNAKER_ATTEMPT >> {log}"
    )


def marked(marker: str) -> list[int]:
    """Live processes whose command line names ``marker`` (this test's files)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(name))
    return found


def state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def context(runtime: Runtime, eid: str) -> dict[str, Any]:
    with runtime.db.read() as conn:
        row = conn.execute(select(stages.c.context).where(stages.c.execution_id == eid)).first()
    assert row is not None
    return dict(row.context or {})


def lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def started(log: Path, attempt: int = 1) -> bool:
    return any(w[:2] == ["start", str(attempt)] for w in lines(log))


def assert_tree_gone(tree: list[int], supervisor: int) -> None:
    """Every process of the killed attempt is gone: not running, and not left as a zombie (<defunct>)."""
    for pid in [*tree, supervisor]:
        wait_for(lambda pid=pid: state(pid) is None, timeout=10)


@pytest.mark.parametrize("spawn", list(SPAWNS))
def test_retry_never_overlaps_the_killed_attempt(runtime: Runtime, tmp_path: Path, run_dir: Path, spawn: str) -> None:
    log = tmp_path / "log"
    eid = start(runtime, tmp_path, pipeline(command(tmp_path, spawn), retries=1))
    url = str(runtime.db.engine.url)
    first = spawn_worker(url)
    try:
        wait_for(lambda: started(log) and Path(f"{tmp_path}/beat.1").exists(), timeout=30)
        time.sleep(0.3)
        tree = marked(str(tmp_path))
        assert len(tree) >= 3, tree  # the command, its late job and its heartbeat (at least)
        supervisor = context(runtime, eid)["supervisor"]["pid"]
        kill(first)
        second = spawn_worker(url)
        try:
            d = finished(runtime, eid, timeout=60)
        finally:
            stop(second)
    finally:
        if first.poll() is None:
            kill(first)
    assert d["status"] == "SUCCEEDED", d
    assert d["stages"][0]["attempt"] == 2
    time.sleep(2.5)  # long enough for the first attempt's late job, had it survived
    words = lines(log)
    assert ["late", "1"] not in words, words
    assert ["end", "1"] not in [w[:2] for w in words], words
    assert ["late", "2"] in words and ["end", "2"] in words, words
    # the first attempt's tree had stopped beating before the second attempt started
    last_beat_1 = max(float(x) for x in Path(f"{tmp_path}/beat.1").read_text().split())
    start_2 = next(float(w[2]) for w in words if w[:2] == ["start", "2"])
    assert last_beat_1 < start_2
    assert_tree_gone(tree, supervisor)
    assert marked(str(tmp_path)) == []


@pytest.mark.parametrize("spawn", list(SPAWNS))
def test_without_retries_fails_worker_lost_and_kills_the_tree(
    runtime: Runtime, tmp_path: Path, run_dir: Path, spawn: str
) -> None:
    log = tmp_path / "log"
    eid = start(runtime, tmp_path, pipeline(command(tmp_path, spawn)))
    url = str(runtime.db.engine.url)
    first = spawn_worker(url)
    try:
        wait_for(lambda: started(log) and Path(f"{tmp_path}/beat.1").exists(), timeout=30)
        time.sleep(0.3)
        tree = marked(str(tmp_path))
        supervisor = context(runtime, eid)["supervisor"]["pid"]
        kill(first)
        # no worker runs now: the supervisor alone stops the tree when its worker dies
        wait_for(lambda: marked(str(tmp_path)) == [], timeout=10)
        second = spawn_worker(url)
        try:
            d = finished(runtime, eid, timeout=60)
        finally:
            stop(second)
    finally:
        if first.poll() is None:
            kill(first)
    assert d["status"] == "FAILED", d
    stage = d["stages"][0]
    assert stage["status"] == "FAILED" and stage["attempt"] == 1
    assert "worker lost" in stage["message"] and "every process it started" in stage["message"], stage
    time.sleep(2.5)
    assert ["late", "1"] not in lines(log)
    assert_tree_gone(tree, supervisor)
    assert marked(str(tmp_path)) == []


@pytest.mark.parametrize(("code", "status"), [(0, "SUCCEEDED"), (3, "FAILED")])
def test_command_that_finished_while_its_worker_was_dead_keeps_its_real_status(
    runtime: Runtime, tmp_path: Path, run_dir: Path, code: int, status: str
) -> None:
    log = tmp_path / "log"
    text = f"echo start 1 >> {log}; sleep 1; echo '::output answer=42'; echo done >> {log}; exit {code}"
    # with a retry left, a success taken for "worker lost" would run again (a real failure is retried)
    eid = start(runtime, tmp_path, pipeline(text, retries=0 if code else 1))
    url = str(runtime.db.engine.url)
    first = spawn_worker(url)
    try:
        wait_for(lambda: started(log), timeout=30)
        time.sleep(0.2)
        status_file = Path(context(runtime, eid)["supervisor"]["status"])
        first.send_signal(signal.SIGSTOP)  # the worker can no longer see its command end...
        wait_for(lambda: '"event": "done"' in status_file.read_text(), timeout=10)
        kill(first)  # ...and dies without having seen it
        second = spawn_worker(url)
        try:
            d = finished(runtime, eid, timeout=60)
        finally:
            stop(second)
    finally:
        if first.poll() is None:
            kill(first)
    stage = d["stages"][0]
    assert stage["status"] == status, stage
    assert stage["attempt"] == 1  # recorded, not re-run
    assert stage["outputs"] == {"answer": "42", "exit_code": code}
    if code:
        assert stage["message"] == "command failed: exit code 3"
    assert lines(log) == [["start", "1"], ["done"]]


def test_supervisor_that_does_not_finish_in_time_fails_without_retry(
    runtime: Runtime, tmp_path: Path, run_dir: Path
) -> None:
    log = tmp_path / "log"
    eid = start(runtime, tmp_path, pipeline(command(tmp_path, "setsid"), retries=2))
    url = str(runtime.db.engine.url)
    first = spawn_worker(url)
    supervisor = 0
    try:
        wait_for(lambda: started(log), timeout=30)
        time.sleep(0.3)
        supervisor = context(runtime, eid)["supervisor"]["pid"]
        os.kill(supervisor, signal.SIGSTOP)  # it cannot stop its tree, nor let go of its lock
        kill(first)
        second = spawn_worker(url, GENNAKER_TAKEOVER_WAIT_SECONDS="1")
        try:
            d = finished(runtime, eid, timeout=60)
        finally:
            stop(second)
    finally:
        if supervisor:
            os.kill(supervisor, signal.SIGCONT)  # now it sees its worker gone and kills its tree
        if first.poll() is None:
            kill(first)
    stage = d["stages"][0]
    assert stage["status"] == "FAILED" and stage["attempt"] == 1, stage  # not re-run
    assert stage["message"].startswith(f"an earlier attempt may still be running on {os.uname().nodename}"), stage
    # the frozen supervisor's tree did run on ("late 1"): it was never joined by a second copy
    assert [w[:2] for w in lines(log) if w[0] == "start"] == [["start", "1"]]
    wait_for(lambda: marked(str(tmp_path)) == [], timeout=15)


@pytest.mark.parametrize("timeout", ["", "    timeout: 2s\n"], ids=["no-timeout", "timed-out-meanwhile"])
def test_attempt_from_another_host_is_not_rerun(runtime: Runtime, tmp_path: Path, run_dir: Path, timeout: str) -> None:
    log = tmp_path / "log"
    # with a timeout that passes before the take-over, the time-out must not retry it either
    eid = start(runtime, tmp_path, pipeline(command(tmp_path, "background"), retries=2, extra=timeout))
    url = str(runtime.db.engine.url)
    first = spawn_worker(url)
    try:
        wait_for(lambda: started(log), timeout=30)
        time.sleep(0.3)
        kill(first)
        # as if the lost worker had run on another machine
        ctx = context(runtime, eid)
        ctx["supervisor"] = {**ctx["supervisor"], "host": "build-7.example"}
        with runtime.db.begin() as conn:
            conn.execute(update(stages).where(stages.c.execution_id == eid).values(context=ctx))
        second = spawn_worker(url)
        try:
            d = finished(runtime, eid, timeout=60)
        finally:
            stop(second)
    finally:
        if first.poll() is None:
            kill(first)
    stage = d["stages"][0]
    assert stage["status"] == "FAILED" and stage["attempt"] == 1, stage
    assert stage["message"].startswith("an earlier attempt may still be running on build-7.example"), stage
    assert detail(runtime, eid)["status"] == "FAILED"


def test_timed_out_attempt_is_dead_before_its_retry_starts(
    runtime: Runtime, worker: object, tmp_path: Path, run_dir: Path
) -> None:
    log, beat = tmp_path / "log", tmp_path / "beat"
    # the first attempt's tree (in its own session) takes a while to die after SIGTERM, writing as it
    # goes (shell builtins only: a new child would be killed at once)
    busy = "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); [ $((i % 2000)) = 0 ] && echo $i >> BEAT; done"
    dying = f"trap '{busy}; exit' TERM; while :; do echo . >> BEAT; sleep 0.05; done".replace("BEAT", str(beat))
    dying = dying.replace("$", "\\$")  # it stands in double quotes below: for the inner shell to expand
    text = (
        f"echo start $GENNAKER_ATTEMPT $(date +%s.%N) >> {log}; "
        f'if [ "$GENNAKER_ATTEMPT" = 1 ]; then setsid sh -c "{dying}" & sleep 30; fi'
    )
    eid = start(runtime, tmp_path, pipeline(text, retries=1, extra="    timeout: 6s\n"))
    d = finished(runtime, eid, timeout=60)
    assert d["status"] == "SUCCEEDED", d
    assert d["stages"][0]["attempt"] == 2
    assert "150000" in beat.read_text()  # it did die slowly
    start_2 = next(float(w[2]) for w in lines(log) if w[:2] == ["start", "2"])
    assert beat.stat().st_mtime < start_2
    wait_for(lambda: marked(str(tmp_path)) == [], timeout=10)


def test_cancel_kills_the_whole_tree(runtime: Runtime, worker: object, tmp_path: Path, run_dir: Path) -> None:
    from gennaker.engine import operations as ops

    log = tmp_path / "log"
    eid = start(runtime, tmp_path, pipeline(command(tmp_path, "daemon")))
    wait_for(lambda: started(log) and Path(f"{tmp_path}/beat.1").exists(), timeout=30)
    tree = marked(str(tmp_path))
    supervisor = context(runtime, eid)["supervisor"]["pid"]
    ops.cancel(runtime.db, eid, "tester")
    assert finished(runtime, eid)["status"] == "CANCELED"
    assert_tree_gone(tree, supervisor)
    assert marked(str(tmp_path)) == []
    time.sleep(2.5)
    assert ["late", "1"] not in lines(log)
