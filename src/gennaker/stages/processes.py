"""Local processes started by ``run`` stages: started detached from the task loop, polled, logged.

Output is read by a thread per stream and written to the stage log in small batches, so what a
command printed is kept even if it (or the worker) dies. Children die with the worker (Linux
PDEATHSIG), and a worker that takes over a lost stage kills what is left of its process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

OUTPUT_PREFIX = "::output "
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):  # not Linux: the take-over path still kills the process group
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live process from a reused pid)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass
class Handle:
    key: tuple[str, str, int]
    proc: subprocess.Popen[bytes]
    outputs: dict[str, str] = field(default_factory=dict)
    readers: list[threading.Thread] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    def finished(self) -> int | None:
        code = self.proc.poll()
        if code is None:
            return None
        for t in self.readers:
            t.join(5.0)
        return code


class ProcessRegistry:
    """The processes this worker process holds, by (execution, stage, attempt)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[tuple[str, str, int], Handle] = {}

    def get(self, key: tuple[str, str, int]) -> Handle | None:
        with self._lock:
            return self._handles.get(key)

    def start(
        self,
        key: tuple[str, str, int],
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        write: Callable[[str, list[str]], None],
    ) -> Handle:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        handle = Handle(key, proc)
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            assert stream is not None
            t = threading.Thread(
                target=_pump, args=(stream, name, handle, write), daemon=True, name=f"gennaker-log-{name}"
            )
            t.start()
            handle.readers.append(t)
        with self._lock:
            self._handles[key] = handle
        return handle

    def forget(self, key: tuple[str, str, int]) -> None:
        with self._lock:
            self._handles.pop(key, None)

    def terminate(self, key: tuple[str, str, int], grace: float = 5.0) -> bool:
        handle = self.get(key)
        if handle is None:
            return False
        kill_group(handle.proc.pid, grace)
        return True


def kill_group(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def finish() -> None:
        deadline = time.time() + grace
        while time.time() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    threading.Thread(target=finish, daemon=True, name="gennaker-kill").start()


def _pump(stream: IO[bytes], name: str, handle: Handle, write: Callable[[str, list[str]], None]) -> None:
    """Copy a stream into the stage log: a batch at most every 0.2 s (or sooner when idle), so a line
    printed before a long silence is visible at once. Collects ``::output key=value`` lines."""
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
            for raw in lines:
                batch.append(_line(raw, name, handle))
        if batch and (not ready or len(batch) >= 200 or time.monotonic() - last > 0.2):
            write(name, batch)
            batch, last = [], time.monotonic()
    if pending:
        batch.append(_line(pending, name, handle))
    if batch:
        write(name, batch)
    stream.close()


def _line(raw: bytes, name: str, handle: Handle) -> str:
    line = raw.decode("utf-8", "replace").rstrip("\r")
    if name == "stdout" and line.startswith(OUTPUT_PREFIX):
        key, sep, value = line[len(OUTPUT_PREFIX) :].partition("=")
        if sep and key.strip():
            handle.outputs[key.strip()] = value
    return line
