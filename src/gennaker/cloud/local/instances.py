"""Server groups as real processes: each instance is one detached process of the group's command.

Instances outlive Gennaker: each is started through a throw-away ``sh`` in a new session that puts
the command in the background and exits, so the instance is re-parented to init and no Gennaker
process is its parent (a kill -9 of every Gennaker process leaves it serving). The state of a group
is one JSON file (``groups/<name>.json``); a new Gennaker process re-adopts instances from it,
trusting a pid only when the start time in ``/proc/<pid>/stat`` matches the one recorded (pids are
reused). ``reconcile`` is what an ASG does: an instance that died is recorded as crashed and
replaced, and the group is brought to its desired count.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from gennaker.cloud.provider import TAG_APPLICATION, TAG_CLUSTER
from gennaker.errors import Conflict, NotFound

InstanceState = Literal["running", "crashed", "stopped"]

# Put the command ($0) in the background of a shell in its own session, its output appended to
# the log ($1), and print its pid; ``exec`` makes that pid the command itself, so SIGTERM reaches
# the application and not a shell.
_LAUNCHER = 'sh -c "exec $0" >>"$1" 2>&1 </dev/null & echo $!'


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def process_start_time(pid: int) -> int | None:
    """Clock ticks since boot when ``pid`` started; None when no live (non-zombie) process has it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of the file; fields[0] here is field 3


@dataclass(frozen=True)
class InstanceRecord:
    id: str  # <server group>-<n>: also its server name in the load balancer
    pid: int
    pgid: int
    start_time: int
    port: int
    log: str
    state: InstanceState = "running"
    launched: str = ""
    exit_detected: str = ""

    def alive(self) -> bool:
        return self.state == "running" and process_start_time(self.pid) == self.start_time


@dataclass
class GroupRecord:
    name: str
    command: str
    cwd: str
    env: dict[str, str]
    desired: int
    created: str
    next_index: int = 1
    instances: list[InstanceRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # what the provider keeps with the group

    def running(self) -> list[InstanceRecord]:
        return [i for i in self.instances if i.state == "running"]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroupRecord:
        instances = [InstanceRecord(**i) for i in d.pop("instances", [])]
        return cls(**d, instances=instances)


@dataclass(frozen=True)
class Changes:
    """What a reconcile or resize did, for the caller to mirror in the load balancer."""

    started: list[InstanceRecord] = field(default_factory=list)
    stopped: list[InstanceRecord] = field(default_factory=list)
    crashed: list[InstanceRecord] = field(default_factory=list)
    # Replacements held back: the group's instances keep dying right after they start.
    crash_looping: bool = False


def _now() -> str:
    return datetime.now(UTC).isoformat()


class InstanceManager:
    """The server groups (and their instances) kept in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        stop_timeout: float = 10.0,
        keep_crashed: int = 10,
        crash_window: float = 30.0,
        max_crashes: int = 5,
    ):
        self.state_dir = Path(state_dir)
        self.groups_dir = self.state_dir / "groups"
        self.logs_dir = self.state_dir / "logs"
        # Prometheus file-based service discovery: one file per group, one target per running
        # instance with a server_group label (point a file_sd_config at targets_dir/*.json).
        self.targets_dir = self.state_dir / "prometheus"
        self.stop_timeout = stop_timeout
        self.keep_crashed = keep_crashed  # crashed instances kept in the record, to show their logs
        # More than max_crashes crashes within crash_window seconds: stop replacing (a command that
        # exits at once would otherwise be restarted on every read, forever).
        self.crash_window = crash_window
        self.max_crashes = max_crashes

    # --- records -------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad server group name {name!r}")
        return self.groups_dir / f"{name}.json"

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.groups_dir.mkdir(parents=True, exist_ok=True)
        with open(self.groups_dir / f".{name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, name: str) -> GroupRecord | None:
        path = self._path(name)
        if not path.exists():
            return None
        return GroupRecord.from_dict(json.loads(path.read_text()))

    def _write(self, group: GroupRecord) -> None:
        path = self._path(group.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(group), indent=2))
        tmp.replace(path)
        self._write_targets(group)

    def _write_targets(self, group: GroupRecord) -> None:
        """What Prometheus scrapes of this group, rewritten with every change to the group (atomically:
        Prometheus may read the file at any moment)."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        targets = [
            {
                "targets": [f"127.0.0.1:{i.port}"],
                "labels": {
                    "server_group": group.name,
                    "instance_id": i.id,
                    **{
                        label: str(tags[tag])
                        for label, tag in (("application", TAG_APPLICATION), ("cluster", TAG_CLUSTER))
                        if tag in (tags := group.meta.get("tags") or {})
                    },
                },
            }
            for i in group.running()
        ]
        path = self.targets_dir / f"{group.name}.json"
        tmp = self.targets_dir / f".{group.name}.json.tmp"
        tmp.write_text(json.dumps(targets))
        tmp.replace(path)

    def get(self, name: str) -> GroupRecord | None:
        """The group as recorded (no liveness check; ``reconcile`` for that)."""
        return self._read(name)

    def require(self, name: str) -> GroupRecord:
        group = self._read(name)
        if group is None:
            raise NotFound(f"server group {name} not found")
        return group

    def groups(self) -> list[GroupRecord]:
        if not self.groups_dir.exists():
            return []
        names = sorted(p.stem for p in self.groups_dir.glob("*.json"))
        return [g for n in names if (g := self._read(n)) is not None]

    def set_meta(self, name: str, **values: Any) -> GroupRecord:
        with self._locked(name):
            group = self.require(name)
            group.meta.update(values)
            self._write(group)
            return group

    # --- processes -----------------------------------------------------------------------------
    def _launch(self, group: GroupRecord) -> InstanceRecord:
        instance_id = f"{group.name}-{group.next_index}"
        group.next_index += 1
        port = free_port()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.logs_dir / f"{instance_id}.log"
        env = {**os.environ, **group.env, "PORT": str(port), "GENNAKER_INSTANCE": instance_id}
        with open(log, "ab") as out:
            out.write(f"--- {_now()} starting {instance_id} on port {port}: {group.command}\n".encode())
        launcher = subprocess.Popen(
            ["/bin/sh", "-c", _LAUNCHER, group.command, str(log)],
            cwd=group.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out_bytes, err_bytes = launcher.communicate(timeout=10)
        text = out_bytes.decode().strip()
        if not text.isdigit():
            raise RuntimeError(f"could not start {instance_id}: {err_bytes.decode().strip() or text!r}")
        pid = int(text)
        start_time = process_start_time(pid) or 0
        return InstanceRecord(
            id=instance_id,
            pid=pid,
            pgid=launcher.pid,  # the launcher led the new session; the instance stays in its group
            start_time=start_time,
            port=port,
            log=str(log),
            launched=_now(),
        )

    def _terminate(self, instances: list[InstanceRecord], timeout: float) -> None:
        """SIGTERM every instance (its process group), SIGKILL what is left after ``timeout``."""
        live = [i for i in instances if i.alive()]
        for inst in live:
            _signal(inst, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while live and time.monotonic() < deadline:
            time.sleep(0.05)
            live = [i for i in live if process_start_time(i.pid) == i.start_time]
        for inst in live:
            _signal(inst, signal.SIGKILL)
        # SIGKILL is not instant: wait (briefly) until init has reaped them, so callers may rely
        # on the port and the pid being free when this returns.
        deadline = time.monotonic() + 5
        while live and time.monotonic() < deadline:
            time.sleep(0.02)
            live = [i for i in live if process_start_time(i.pid) == i.start_time]

    # --- groups --------------------------------------------------------------------------------
    def create(
        self, name: str, command: str, cwd: Path, env: dict[str, str], desired: int, meta: dict[str, Any] | None = None
    ) -> GroupRecord:
        """Record the group and start ``desired`` instances; an existing group is returned as is."""
        if not Path(cwd).is_dir():
            raise NotFound(f"server group {name}: directory {cwd} does not exist")
        with self._locked(name):
            existing = self._read(name)
            if existing is not None:
                if existing.command != command or existing.cwd != str(cwd):
                    raise Conflict(f"server group {name} already exists with another command or artifact")
                return existing
            group = GroupRecord(name, command, str(cwd), dict(env), desired, _now(), meta=dict(meta or {}))
            self._write(group)  # first, so a crash half-way leaves a record that owns what started
            for _ in range(desired):
                group.instances.append(self._launch(group))
                self._write(group)
            return group

    def reconcile(self, name: str) -> tuple[GroupRecord, Changes]:
        """Mark dead instances crashed, replace them, and bring the group to its desired count."""
        with self._locked(name):
            group = self.require(name)
            return group, self._reconcile_locked(group)

    def _reconcile_locked(self, group: GroupRecord) -> Changes:
        crashed: list[InstanceRecord] = []
        for n, inst in enumerate(group.instances):
            if inst.state == "running" and not inst.alive():
                group.instances[n] = replace(inst, state="crashed", exit_detected=_now())
                crashed.append(group.instances[n])
        started: list[InstanceRecord] = []
        stopped: list[InstanceRecord] = []
        running = group.running()
        looping = self.crash_looping(group)
        while len(running) < group.desired and not looping:
            inst = self._launch(group)
            group.instances.append(inst)
            running.append(inst)
            started.append(inst)
            self._write(group)
        if len(running) > group.desired:
            # Newest last in, first out, as an ASG's default termination policy roughly does.
            stopped = running[group.desired :]
            self._terminate(stopped, self.stop_timeout)
            gone = {i.id for i in stopped}
            group.instances = [replace(i, state="stopped") if i.id in gone else i for i in group.instances]
            group.instances = [i for i in group.instances if i.state != "stopped"]
        # Keep only the latest crashed records: enough to show what happened, bounded on disk.
        dead = [i for i in group.instances if i.state == "crashed"]
        if len(dead) > self.keep_crashed:
            drop = {i.id for i in dead[: len(dead) - self.keep_crashed]}
            group.instances = [i for i in group.instances if i.id not in drop]
        self._write(group)
        return Changes(started, stopped, crashed, looping and len(running) < group.desired)

    def crash_looping(self, group: GroupRecord) -> bool:
        """Whether the group's instances died ``max_crashes`` times within ``crash_window``."""
        now = datetime.now(UTC)
        recent = [
            i
            for i in group.instances
            if i.state == "crashed"
            and i.exit_detected
            and (now - datetime.fromisoformat(i.exit_detected)).total_seconds() < self.crash_window
        ]
        return len(recent) >= self.max_crashes

    def last_crash(self, name: str, lines: int = 20) -> str:
        """ "<instance> exited; its log ends with: ..." for the newest crashed instance, or ""."""
        group = self.require(name)
        crashed = [i for i in group.instances if i.state == "crashed"]
        if not crashed:
            return ""
        inst = crashed[-1]
        return f"{inst.id} exited (log {inst.log}); its log ends with:\n{self.tail(inst, lines)}"

    def resize(self, name: str, desired: int) -> tuple[GroupRecord, Changes]:
        if desired < 0:
            raise ValueError(f"desired must be >= 0, got {desired}")
        with self._locked(name):
            group = self.require(name)
            group.desired = desired
            return group, self._reconcile_locked(group)

    def stop_instances(self, name: str, instance_ids: list[str], timeout: float | None = None) -> None:
        """Stop some instances without replacing them: the desired count goes down by as many."""
        with self._locked(name):
            group = self.require(name)
            targets = [i for i in group.running() if i.id in set(instance_ids)]
            self._terminate(targets, self.stop_timeout if timeout is None else timeout)
            gone = {i.id for i in targets}
            group.instances = [i for i in group.instances if i.id not in gone]
            group.desired = max(0, group.desired - len(targets))
            self._write(group)

    def destroy(self, name: str, timeout: float | None = None) -> None:
        """Stop every instance (SIGTERM, then SIGKILL after the timeout) and forget the group."""
        with self._locked(name):
            group = self._read(name)
            if group is None:
                return
            group.desired = 0
            self._write(group)
            self._terminate(group.running(), self.stop_timeout if timeout is None else timeout)
            (self.targets_dir / f"{name}.json").unlink(missing_ok=True)
            self._path(name).unlink(missing_ok=True)

    def tail(self, instance: InstanceRecord | str, lines: int = 20) -> str:
        """The last ``lines`` lines of an instance's log (for error messages and the console)."""
        path = Path(instance.log) if isinstance(instance, InstanceRecord) else self.logs_dir / f"{instance}.log"
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])


def _signal(inst: InstanceRecord, sig: int) -> None:
    # The whole process group, so that a command run through a script stops too; never our own.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if inst.pgid > 1 and inst.pgid != os.getpgid(0):
            os.killpg(inst.pgid, sig)
        else:
            os.kill(inst.pid, sig)
