"""The supervisor of one ``run`` command: the command's whole process tree lives and dies with it.

A worker starts ``python -I -S supervisor.py STATUS_FILE`` for each command (run as a file, so it needs
nothing but the standard library). The supervisor

- makes itself the child subreaper of its tree (Linux ``PR_SET_CHILD_SUBREAPER``), so every
  descendant of the command stays below it, even one that starts its own session or daemonizes;
- holds an exclusive ``flock`` on the status file for as long as any process of the tree may live:
  another worker on this host that can take the lock knows the tree is dead;
- reads one JSON line on stdin (argv, env, cwd), then waits for ``go`` (sent only once the worker has
  committed the supervisor's pid to the database), and starts the command in its own session;
- copies the command's stdout/stderr to its own (the worker's log pipes) and appends to the status
  file, as they happen, ``::output`` lines and the command's real exit status;
- kills the whole tree (SIGTERM, then SIGKILL after a grace period) when the command exits (nothing
  it started outlives it), when told ``stop`` on stdin or by SIGTERM (cancel, timeout), or when its
  worker dies (stdin closes, or the parent pid changes); reaps every process; records ``done``;
  and only then exits.

The status file is JSON lines: ``ready``, ``started``, ``output``, ``exit``, ``done`` (see
``gennaker.stages.processes.read_status``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
OUTPUT_PREFIX = "::output "
LOCK_WAIT_SECONDS = 10.0  # a supervisor of a lost worker may still be letting go of the same file
SPILL_LIMIT = 1 << 20  # output kept on disk while the worker cannot take it (it died)


def proc_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[1]), fields[0]
    except (OSError, IndexError, ValueError):
        return None


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (zombies excluded: they are dead, only waiting to be reaped)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _ppid_and_state(int(name))
            if info is not None and info[1] != "Z":
                children.setdefault(info[0], []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Status:
    """The status file: appended to, flushed and synced for the records that decide a takeover."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)  # a pruner may just have removed it
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(3) from None
                time.sleep(0.05)
        os.ftruncate(self.fd, 0)  # a previous supervisor of this attempt never started its command
        os.lseek(self.fd, 0, os.SEEK_SET)

    def write(self, record: dict[str, Any], sync: bool = False) -> None:
        os.write(self.fd, (json.dumps(record) + "\n").encode())
        if sync:
            os.fsync(self.fd)


class Supervisor:
    def __init__(self, status_path: str) -> None:
        self.status = Status(status_path)
        self.spill_path = status_path  # + .stdout / .stderr
        self.spilled = 0
        self.parent = os.getppid()
        self.stop_reason: str | None = None
        self.cmd_pid: int | None = None
        self.exit_code: int | None = None
        self.forward = True
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    # ---- control --------------------------------------------------------------------------------
    def _on_term(self, signum: int, frame: Any) -> None:
        self.stop_reason = self.stop_reason or "stopped"

    def parent_lost(self) -> bool:
        return os.getppid() != self.parent

    def read_control(self, line: bytes) -> None:
        if line == b"":
            self.stop_reason = self.stop_reason or "worker lost"
        elif line.strip() == b"stop":
            self.stop_reason = self.stop_reason or "stopped"

    # ---- output ---------------------------------------------------------------------------------
    def copy(self, name: str, chunk: bytes) -> None:
        out = 1 if name == "stdout" else 2
        if self.forward:
            try:
                os.write(out, chunk)
            except OSError:  # the worker is gone: keep what follows on disk for the one taking over
                self.forward = False
        if not self.forward and self.spilled < SPILL_LIMIT:
            with open(f"{self.spill_path}.{name}", "ab") as fh:
                fh.write(chunk[: SPILL_LIMIT - self.spilled])
            self.spilled += len(chunk)
        if name == "stdout":
            lines = (self.partial[name] + chunk).split(b"\n")
            self.partial[name] = lines.pop()
            for raw in lines:
                self.output_line(raw)

    def output_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if line.startswith(OUTPUT_PREFIX):
            key, sep, value = line[len(OUTPUT_PREFIX) :].partition("=")
            if sep and key.strip():
                self.status.write({"event": "output", "key": key.strip(), "value": value})

    # ---- the tree -------------------------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.cmd_pid and self.exit_code is None:
                self.exit_code = os.waitstatus_to_exitcode(wstatus)
                # the command's own status, recorded before anything else is killed
                self.status.write({"event": "exit", "code": self.exit_code, "stopping": self.stop_reason}, sync=True)

    def kill_tree(self, grace: float) -> None:
        """SIGTERM every descendant, SIGKILL what is left after ``grace``; return when none is left."""
        me = os.getpid()
        termed: set[int] = set()
        deadline = time.monotonic() + grace
        while True:
            self.reap()
            alive = descendants(me)
            if not alive:
                return
            hard = time.monotonic() > deadline
            for pid in alive:
                if hard or pid not in termed:
                    _signal(pid, signal.SIGKILL if hard else signal.SIGTERM)
                    if not hard:
                        _signal(pid, signal.SIGCONT)  # a stopped process would never see the SIGTERM
                    termed.add(pid)
            time.sleep(0.02)

    # ---- main loop ------------------------------------------------------------------------------
    def run(self, spec: dict[str, Any], control: Any, grace: float) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        try:
            proc = subprocess.Popen(
                spec["argv"],
                env=spec["env"],
                cwd=spec["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self.status.write({"event": "done", "error": f"cannot start {spec['argv'][0]}: {exc.strerror or exc}"})
            return 0
        self.cmd_pid = proc.pid
        self.status.write({"event": "started", "pid": proc.pid, "at": time.time()}, sync=True)
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        sel.register(control, selectors.EVENT_READ, "control")
        while self.exit_code is None and self.stop_reason is None:
            for key, _ in sel.select(0.1):
                data = os.read(key.fd, 65536)
                if key.data == "control":
                    self.read_control(data)
                    if data == b"":
                        sel.unregister(control)
                elif data:
                    self.copy(key.data, data)
                else:
                    sel.unregister(key.fileobj)
            if self.parent_lost():
                self.stop_reason = self.stop_reason or "worker lost"
            self.reap()
        reason = "exited" if self.exit_code is not None else self.stop_reason
        self.kill_tree(grace if reason != "exited" else min(grace, 2.0))
        self.reap()
        # every writer of the pipes is dead: take what is left in them
        for key in list(sel.get_map().values()):
            if key.data != "control":
                os.set_blocking(key.fd, False)  # never wait on a writer outside the tree
                with contextlib.suppress(BlockingIOError):
                    while data := os.read(key.fd, 65536):
                        self.copy(key.data, data)
        for name, rest in self.partial.items():
            if rest and name == "stdout":
                self.output_line(rest)
        proc.returncode = self.exit_code  # reaped above, by pid
        self.status.write({"event": "done", "reason": reason, "tree_dead": True, "at": time.time()}, sync=True)
        return 0


def _signal(pid: int, sig: int) -> None:
    # a pidfd names this process, not whatever reuses its pid once it is gone
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # a kernel without pidfds (before 5.3)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        return
    try:
        signal.pidfd_send_signal(fd, sig)
    except OSError:
        pass
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    status_path, grace = argv[1], float(argv[2]) if len(argv) > 2 else 5.0
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no subreaper, the process group still dies
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    sup = Supervisor(status_path)
    sup.status.write({"event": "ready", "pid": os.getpid(), "start": proc_start_time(os.getpid())}, sync=True)
    control = os.fdopen(0, "rb", buffering=0)  # unbuffered: the "go" line must not be read ahead
    spec_line = _read_line(control)
    go = _read_line(control) if spec_line else b""
    if go.strip() != b"go" or sup.parent_lost():
        sup.status.write({"event": "done", "reason": "not started", "tree_dead": True}, sync=True)
        return 0
    return sup.run(json.loads(spec_line), control, grace)


def _read_line(stream: Any) -> bytes:
    """One line from an unbuffered pipe, byte by byte: nothing after it is consumed."""
    line = b""
    while not line.endswith(b"\n"):
        b = stream.read(1)
        if not b:
            return b""
        line += b
    return line


if __name__ == "__main__":
    sys.exit(main(sys.argv))
