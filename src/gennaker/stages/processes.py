"""Local processes started by ``run`` stages, each under its own supervisor (``supervisor.py``).

The worker starts the supervisor, which starts the command once told ``go``; the supervisor's stdout
and stderr (copies of the command's) are read by a thread per stream and written to the stage log in
small batches, so what a command printed is kept even if it (or the worker) dies.

What decides whether an attempt may still be running is the supervisor's status file on this host,
``<run dir>/<execution>/<stage>.<attempt>.jsonl``: the supervisor holds a lock on it for as long as
any process of the command's tree may live, and records there the command's ``::output`` lines and
real exit status. A worker taking over a lost attempt reads it; a new attempt of a stage first makes
sure no earlier attempt of it still holds its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from gennaker.stages.supervisor import proc_start_time

SUPERVISOR = str(Path(__file__).with_name("supervisor.py"))
STOP_GRACE_SECONDS = 5.0  # SIGTERM to SIGKILL, for the command's tree
KEEP_STATUS_SECONDS = 7 * 86400  # a take-over happens within minutes; a week leaves room for a long outage
Key = tuple[str, str, int]


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live process from a reused pid)."""
    return proc_start_time(pid)


def run_dir() -> Path:
    """Where this host's supervisors keep their status files (shared by every worker of this user)."""
    explicit = os.environ.get("GENNAKER_RUN_DIR")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "gennaker" / "runs"


def status_path(key: Key) -> Path:
    execution_id, stage_id, attempt = key
    return run_dir() / quote(execution_id, safe="") / f"{quote(stage_id, safe='')}.{attempt}.jsonl"


@dataclass
class RunStatus:
    """What a supervisor recorded about its command."""

    supervisor_pid: int | None = None
    supervisor_start: str | None = None
    started: bool = False
    command_pid: int | None = None
    started_at: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    done: bool = False
    reason: str | None = None  # exited | stopped | worker lost | not started
    error: str | None = None  # the command could not be started

    @property
    def exited_on_its_own(self) -> bool:
        return self.done and self.reason == "exited" and self.exit_code is not None


def read_status(path: Path) -> RunStatus | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    status = RunStatus()
    for line in text.splitlines():
        try:
            rec: dict[str, Any] = json.loads(line)
        except ValueError:  # a record cut short by a crash: everything before it stands
            break
        event = rec.get("event")
        if event == "ready":
            status.supervisor_pid, status.supervisor_start = rec.get("pid"), rec.get("start")
        elif event == "started":
            status.started, status.command_pid, status.started_at = True, rec.get("pid"), rec.get("at")
        elif event == "output":
            status.outputs[str(rec["key"])] = str(rec.get("value", ""))
        elif event == "exit":
            status.exit_code = rec.get("code")
        elif event == "done":
            status.done, status.reason, status.error = True, rec.get("reason"), rec.get("error")
    return status


def spilled_output(path: Path) -> dict[str, list[str]]:
    """Output the supervisor kept on disk because its worker was gone, by stream."""
    spilled: dict[str, list[str]] = {}
    for name in ("stdout", "stderr"):
        with contextlib.suppress(FileNotFoundError):
            text = Path(f"{path}.{name}").read_bytes().decode("utf-8", "replace")
            spilled[name] = [line.rstrip("\r") for line in text.splitlines()]
    return spilled


def locked(path: Path) -> bool:
    """True while a supervisor holds ``path``: some process of its command's tree may be alive."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock, if we got it


def live_earlier_attempts(execution_id: str, stage_id: str, attempt: int) -> list[int]:
    """Earlier attempts of this stage whose supervisor on this host still holds its status file."""
    folder = run_dir() / quote(execution_id, safe="")
    prefix = quote(stage_id, safe="") + "."
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            name = entry.name
            if name.startswith(prefix) and name.endswith(".jsonl"):
                number = name[len(prefix) : -len(".jsonl")]
                if number.isdigit() and int(number) < attempt and locked(Path(entry.path)):
                    found.append(int(number))
    return sorted(found)


def stop_supervisor(pid: int | None, start: str | None) -> bool:
    """Ask a supervisor (if it is still that process) to kill its tree. True if it was there."""
    if not pid or not start or process_start_time(pid) != start:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        return True
    return False


def kill_group(pgid: int) -> None:
    """SIGKILL a process group, if any of it is left (the last resort when a supervisor is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def prune(older_than: float = KEEP_STATUS_SECONDS) -> None:
    """Remove status files nobody holds that have not changed for ``older_than`` seconds."""
    cutoff = time.time() - older_than
    with contextlib.suppress(FileNotFoundError):
        for folder in os.scandir(run_dir()):
            if not folder.is_dir():
                continue
            with contextlib.suppress(OSError):
                for entry in os.scandir(folder.path):
                    path = Path(entry.path)
                    if entry.stat().st_mtime < cutoff and not (path.suffix == ".jsonl" and locked(path)):
                        path.unlink(missing_ok=True)
                os.rmdir(folder.path)  # fails while anything is left in it


@dataclass
class Handle:
    key: Key
    proc: subprocess.Popen[bytes]
    status_path: Path
    readers: list[threading.Thread] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    go_sent: bool = False

    def finished(self) -> int | None:
        """The supervisor's exit code once it has exited (its tree is dead by then), else None."""
        code = self.proc.poll()
        if code is None:
            return None
        for t in self.readers:
            t.join(5.0)
        return code

    def status(self) -> RunStatus:
        return read_status(self.status_path) or RunStatus()


class ProcessRegistry:
    """The supervisors this worker process holds, by (execution, stage, attempt)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[Key, Handle] = {}
        self._pruned = 0.0

    def get(self, key: Key) -> Handle | None:
        with self._lock:
            return self._handles.get(key)

    def start(
        self,
        key: Key,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        write: Callable[[str, list[str]], None],
    ) -> Handle:
        """Start the supervisor of a command; the command itself starts on ``go``."""
        if time.monotonic() - self._pruned > 3600 or not self._pruned:
            self._pruned = time.monotonic()
            prune()
        path = status_path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", SUPERVISOR, str(path), str(STOP_GRACE_SECONDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches the worker, which then stops it
        )
        assert proc.stdin is not None
        proc.stdin.write((json.dumps({"argv": argv, "env": env, "cwd": cwd}) + "\n").encode())
        proc.stdin.flush()
        handle = Handle(key, proc, path)
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            assert stream is not None
            t = threading.Thread(target=_pump, args=(stream, name, write), daemon=True, name=f"gennaker-log-{name}")
            t.start()
            handle.readers.append(t)
        with self._lock:
            self._handles[key] = handle
        return handle

    def go(self, key: Key) -> None:
        handle = self.get(key)
        assert handle is not None and handle.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            handle.proc.stdin.write(b"go\n")
            handle.proc.stdin.flush()
        handle.go_sent = True

    def forget(self, key: Key) -> None:
        with self._lock:
            handle = self._handles.pop(key, None)
        if handle is not None and handle.proc.stdin is not None:
            with contextlib.suppress(OSError):
                handle.proc.stdin.close()

    def terminate(self, key: Key) -> bool:
        """Have the supervisor kill the command's tree and wait until it has (bounded): a retry after
        a time-out may start on another host, where the status file cannot be seen."""
        handle = self.get(key)
        if handle is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            handle.proc.send_signal(signal.SIGTERM)
        try:
            handle.proc.wait(STOP_GRACE_SECONDS + 5)
        except subprocess.TimeoutExpired:

            def reap() -> None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    handle.proc.wait(300)
                self.forget(key)

            threading.Thread(target=reap, daemon=True, name="gennaker-reap").start()
            return True
        self.forget(key)
        return True


def _pump(stream: IO[bytes], name: str, write: Callable[[str, list[str]], None]) -> None:
    """Copy a stream into the stage log: a batch at most every 0.2 s (or sooner when idle), so a line
    printed before a long silence is visible at once."""
    fd = stream.fileno()
    pending = b""
    batch: list[str] = []
    last = time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        chunk = os.read(fd, 65536) if ready else None
        if chunk == b"":
            break
        if chunk:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            batch.extend(_line(raw) for raw in lines)
        if batch and (not ready or len(batch) >= 200 or time.monotonic() - last > 0.2):
            write(name, batch)
            batch, last = [], time.monotonic()
    if pending:
        batch.append(_line(pending))
    if batch:
        write(name, batch)
    stream.close()


def _line(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")
