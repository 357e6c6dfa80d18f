"""HAProxy as the local provider's load balancer: Gennaker owns one haproxy process.

The controller keeps a model (``haproxy.json``: load balancers and their servers with state and
weight) in its state directory, writes ``haproxy.cfg`` from it, and applies every change through
the runtime API on the admin socket *and* to the model and the config file, so that a reload or a
restart keeps the state (runtime changes alone are lost on reload: haproxy/haproxy#199, #953).

One frontend per load balancer (``fe:<name>``) listens where the account says, with one backend
named after the load balancer (balance roundrobin, ``option httpchk GET <path>``); a server is an
instance named ``<server group>-<n>``. New servers enter in ``drain``: health checks run but no
request is sent until the caller sets ``ready`` — HAProxy would otherwise assume a server leaving
maintenance is up and send it requests before its first check.

Mutations take an exclusive lock on the state directory, so several Gennaker processes (workers,
the API) may share one haproxy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from gennaker.errors import Conflict, GennakerError, NotFound

ServerState = Literal["ready", "drain", "maint"]
SERVER_STATES: tuple[ServerState, ...] = ("ready", "drain", "maint")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_OK_ANSWERS = ("New server registered", "Server deleted")
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m)?$")


class HAProxyNotInstalled(GennakerError):
    exit_code = 2


class HAProxyError(GennakerError):
    """haproxy refused a config or a runtime command, or is not running."""


def parse_duration(value: str | float | int) -> float:
    """``1s``, ``500ms``, ``2m`` or plain seconds, as seconds."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 1s, 2m)")
    n = float(match["n"])
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[match["unit"]]


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/up"
    interval: float = 1.0  # seconds between checks
    timeout: float = 5.0  # seconds for one check to answer
    rise: int = 1  # consecutive successes to be UP
    fall: int = 2  # consecutive failures to be DOWN

    @classmethod
    def from_dict(cls, d: dict[str, object] | None) -> HealthCheck:
        d = d or {}
        path = str(d.get("path", "/up"))
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ValueError(f"health check path must start with / and have no spaces, got {path!r}")
        return cls(
            path=path,
            interval=parse_duration(d.get("interval", 1.0)),  # type: ignore[arg-type]
            timeout=parse_duration(d.get("timeout", 5.0)),  # type: ignore[arg-type]
            rise=int(d.get("rise", 1)),  # type: ignore[call-overload]
            fall=int(d.get("fall", 2)),  # type: ignore[call-overload]
        )

    def server_options(self) -> str:
        return f"check inter {_ms(self.interval)} rise {self.rise} fall {self.fall}"


@dataclass(frozen=True)
class LoadBalancerSpec:
    """A declared load balancer: where it listens and how it checks its servers."""

    name: str
    listen: str  # "127.0.0.1:8088"
    health: HealthCheck = field(default_factory=HealthCheck)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"load balancer name {self.name!r} may contain only letters, digits, '.', '_', '-'")
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"load balancer {self.name}: listen must be HOST:PORT, got {self.listen!r}")

    @classmethod
    def from_dict(cls, name: str, d: dict[str, object]) -> LoadBalancerSpec:
        """From an account's declaration: ``{listen: "127.0.0.1:8088", health: {path, interval, timeout}}``."""
        listen = d.get("listen")
        if not isinstance(listen, str):
            raise ValueError(f"load balancer {name}: listen (HOST:PORT) is required")
        health = d.get("health")
        if health is not None and not isinstance(health, dict):
            raise ValueError(f"load balancer {name}: health must be a mapping (path, interval, timeout)")
        return cls(name, listen, HealthCheck.from_dict(health))

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True)
class Server:
    name: str
    address: str
    port: int
    state: ServerState = "drain"
    weight: int = 1


@dataclass(frozen=True)
class ServerStat:
    """One server's row of ``show stat``."""

    backend: str
    server: str
    status: str  # UP, DOWN, DRAIN, MAINT, NOLB, "UP 1/2" (going down), ...
    weight: int
    check_status: str  # L7OK, L7STS, L4CON, INI, ...
    stot: int  # sessions since start
    scur: int  # current sessions
    hrsp_2xx: int
    hrsp_3xx: int
    hrsp_4xx: int
    hrsp_5xx: int
    rtime: int  # mean response time, ms, over the last 1024 requests
    req_tot: int
    rate: int = 0  # sessions per second over the last second

    @property
    def healthy(self) -> bool:
        """The last checks passed and haproxy counts the server up (serving, or ready to serve)."""
        return self.check_status.startswith("L7OK") and self.status in ("UP", "DRAIN", "NOLB")

    @property
    def serving(self) -> bool:
        """Healthy and taking new requests."""
        return self.status == "UP" and self.check_status.startswith("L7OK") and self.weight > 0


def _int(value: str) -> int:
    return int(value) if value.strip().lstrip("-").isdigit() else 0


def parse_show_stat(text: str) -> list[ServerStat]:
    """Server rows (not FRONTEND/BACKEND) of ``show stat`` CSV, by column name."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise HAProxyError(f"unexpected 'show stat' output: {text[:200]!r}")
    header = lines[0][2:].split(",")
    rows = []
    for line in lines[1:]:
        values = dict(zip(header, line.split(","), strict=False))
        if values.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        rows.append(
            ServerStat(
                backend=values["pxname"],
                server=values["svname"],
                status=values.get("status", ""),
                weight=_int(values.get("weight", "")),
                # "* L7OK": the last result, with a check in progress right now.
                check_status=values.get("check_status", "").removeprefix("* "),
                stot=_int(values.get("stot", "")),
                scur=_int(values.get("scur", "")),
                hrsp_2xx=_int(values.get("hrsp_2xx", "")),
                hrsp_3xx=_int(values.get("hrsp_3xx", "")),
                hrsp_4xx=_int(values.get("hrsp_4xx", "")),
                hrsp_5xx=_int(values.get("hrsp_5xx", "")),
                rtime=_int(values.get("rtime", "")),
                req_tot=_int(values.get("req_tot", "")),
                rate=_int(values.get("rate", "")),
            )
        )
    return rows


def find_haproxy(binary: str = "haproxy") -> str:
    path = shutil.which(binary)
    if path is None:
        raise HAProxyNotInstalled(
            f"HAProxy is not installed ({binary!r} not found on PATH); install it with: apt-get install haproxy"
        )
    return path


def _frontend(name: str) -> str:
    return f"fe:{name}"


# A Unix socket's path must fit in 108 bytes, and haproxy binds "<path>.<pid>.tmp" first.
MAX_SOCKET_PATH = 90


def admin_socket_path(state_dir: Path) -> Path:
    """``state_dir/admin.sock``, or, when that path is too long for a Unix socket (a deep state
    directory), the same name in a private directory of our own under the temporary directory,
    named after the state directory so that every process finds the same one."""
    near = Path(state_dir) / "admin.sock"
    if len(str(near)) <= MAX_SOCKET_PATH:
        return near
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    private = Path(tempfile.gettempdir()) / f"gennaker-{os.getuid()}-{digest}"
    private.mkdir(mode=0o700, exist_ok=True)
    info = private.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise HAProxyError(f"{private} is not a private directory of this user: refusing to put the admin socket there")
    return private / "admin.sock"


class HAProxy:
    """The haproxy process Gennaker owns, in ``state_dir``."""

    def __init__(self, state_dir: Path, binary: str = "haproxy", start_timeout: float = 10.0):
        self.state_dir = Path(state_dir)
        self.binary = binary
        self.start_timeout = start_timeout
        self.config_path = self.state_dir / "haproxy.cfg"
        self.model_path = self.state_dir / "haproxy.json"
        self.socket_path = admin_socket_path(self.state_dir)
        self.pid_path = self.state_dir / "haproxy.pid"
        self.server_state_path = self.state_dir / "haproxy.servers-state"
        self._lock_path = self.state_dir / "haproxy.lock"

    # --- the model -----------------------------------------------------------------------------
    def _load(self) -> tuple[dict[str, LoadBalancerSpec], dict[str, dict[str, Server]]]:
        if not self.model_path.exists():
            return {}, {}
        raw = json.loads(self.model_path.read_text())
        lbs: dict[str, LoadBalancerSpec] = {}
        servers: dict[str, dict[str, Server]] = {}
        for name, lb in raw.get("load_balancers", {}).items():
            lbs[name] = LoadBalancerSpec(name, lb["listen"], HealthCheck(**lb["health"]))
            servers[name] = {s["name"]: Server(**s) for s in lb.get("servers", [])}
        return lbs, servers

    def _save(self, lbs: dict[str, LoadBalancerSpec], servers: dict[str, dict[str, Server]]) -> None:
        raw = {
            "load_balancers": {
                name: {
                    "listen": lb.listen,
                    "health": asdict(lb.health),
                    "servers": [asdict(s) for s in servers.get(name, {}).values()],
                }
                for name, lb in sorted(lbs.items())
            }
        }
        tmp = self.model_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, indent=2))
        tmp.replace(self.model_path)
        self._write_config(lbs, servers)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load_balancers(self) -> list[LoadBalancerSpec]:
        return list(self._load()[0].values())

    def servers(self, lb: str) -> list[Server]:
        lbs, servers = self._load()
        if lb not in lbs:
            raise NotFound(f"load balancer {lb} is not declared")
        return list(servers.get(lb, {}).values())

    # --- the config file -----------------------------------------------------------------------
    def render_config(self, lbs: dict[str, LoadBalancerSpec], servers: dict[str, dict[str, Server]]) -> str:
        lines = [
            "# Written by Gennaker: edits are overwritten. State lives in haproxy.json.",
            "global",
            f"    stats socket {self.socket_path} mode 600 level admin expose-fd listeners",
            f"    pidfile {self.pid_path}",
            f"    server-state-file {self.server_state_path}",
            "",
            "defaults",
            "    mode http",
            "    load-server-state-from-file global",
            "    option redispatch",  # a connection refused by one instance is retried on another
            "    retries 3",
            "    timeout connect 2s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    timeout http-keep-alive 5s",
            "",
        ]
        for name, lb in sorted(lbs.items()):
            lines += [
                f"frontend {_frontend(name)}",
                f"    bind {lb.listen}",
                f"    default_backend {name}",
                "",
                f"backend {name}",
                "    balance roundrobin",
                f"    option httpchk GET {lb.health.path}",
                "    http-check expect status 200-299",
                f"    timeout check {_ms(lb.health.timeout)}",
            ]
            for s in servers.get(name, {}).values():
                # drain has no config keyword: weight 0 takes no new requests until the runtime
                # state (drain, real weight) is re-applied right after start.
                weight = 0 if s.state == "drain" else s.weight
                disabled = " disabled" if s.state == "maint" else ""
                lines.append(
                    f"    server {s.name} {s.address}:{s.port} {lb.health.server_options()} weight {weight}{disabled}"
                )
            lines.append("")
        return "\n".join(lines)

    def _write_config(self, lbs: dict[str, LoadBalancerSpec], servers: dict[str, dict[str, Server]]) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(self.render_config(lbs, servers))
        tmp.replace(self.config_path)

    def check_config(self) -> None:
        result = subprocess.run(
            [find_haproxy(self.binary), "-c", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            said = detail[-1] if detail else f"it exited with status {result.returncode} and said nothing"
            raise HAProxyError(f"haproxy rejected {self.config_path}: {said}")

    # --- the process ---------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The running haproxy's pid from the pidfile (re-attaching after a Gennaker restart)."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if stat.rpartition(")")[2].split()[0] == "Z" or b"haproxy" not in cmdline:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def _launch(self, extra: list[str]) -> None:
        self.check_config()
        cmd = [find_haproxy(self.binary), "-D", "-f", str(self.config_path), "-p", str(self.pid_path), *extra]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=self.start_timeout)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise HAProxyError(f"haproxy did not start: {detail[-1] if detail else f'exit {result.returncode}'}")

    def _wait_socket(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                self.command("show info")
                return
            except HAProxyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _sync_runtime(self) -> None:
        """Re-apply drain and weights (the config file can only say maint and a weight)."""
        _, servers = self._load()
        for lb, group in servers.items():
            for s in group.values():
                self.command(f"set server {lb}/{s.name} weight {s.weight}")
                self.command(f"set server {lb}/{s.name} state {s.state}")

    def start(self) -> None:
        """Start haproxy unless it is already running (then this only re-attaches)."""
        find_haproxy(self.binary)
        with self._locked():
            if self.is_running():
                return
            lbs, servers = self._load()
            self._write_config(lbs, servers)
            for lb in lbs.values():
                self._check_port_free(lb)
            # A stale socket or server state from a dead haproxy must not be mistaken for live state.
            self.socket_path.unlink(missing_ok=True)
            self.server_state_path.unlink(missing_ok=True)
            self._launch([])
            self._wait_socket()
            self._sync_runtime()

    @staticmethod
    def _check_port_free(lb: LoadBalancerSpec) -> None:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((lb.host, lb.port))
            except OSError as exc:
                raise Conflict(f"load balancer {lb.name} cannot listen on {lb.listen}: {exc.strerror or exc}") from None

    def reload(self) -> None:
        """Graceful reload (-sf: the old process finishes its connections), keeping server state."""
        with self._locked():
            self._reload_locked()

    def _reload_locked(self) -> None:
        old = self.pid()
        lbs, servers = self._load()
        self._write_config(lbs, servers)
        if old is None:
            for lb in lbs.values():
                self._check_port_free(lb)
            self.socket_path.unlink(missing_ok=True)
            self.server_state_path.unlink(missing_ok=True)
            self._launch([])
        else:
            # Health state survives the reload through the server-state file.
            self.server_state_path.write_text(self.command("show servers state"))
            self._launch(["-x", str(self.socket_path), "-sf", str(old)])
        self._wait_new_pid(old)
        self._wait_socket()
        self._sync_runtime()

    def _wait_new_pid(self, old: int | None) -> None:
        deadline = time.monotonic() + self.start_timeout
        while (pid := self.pid()) is None or pid == old:
            if time.monotonic() > deadline:
                raise HAProxyError("haproxy did not come back after a reload")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGUSR1 (soft stop: finish connections), SIGTERM then SIGKILL after ``timeout``."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(HAProxyError):
            self.server_state_path.write_text(self.command("show servers state"))
        for sig, wait in ((signal.SIGUSR1, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.pid() != pid:
                    return
                time.sleep(0.05)

    # --- the runtime API -----------------------------------------------------------------------
    def command(self, line: str, timeout: float = 5.0) -> str:
        """One runtime API command; an answer that is an error raises HAProxyError."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise HAProxyError(f"haproxy admin socket {self.socket_path}: {exc.strerror or exc}") from None
        answer = b"".join(chunks).decode(errors="replace")
        first = answer.strip().splitlines()[0] if answer.strip() else ""
        if line.startswith("show"):
            failed = first.lower().startswith(("unknown command", "no such", "permission denied"))
        else:
            # Changes answer nothing on success, except these two; anything else is haproxy saying no.
            failed = bool(first) and not first.startswith(_OK_ANSWERS)
        if failed:
            raise HAProxyError(f"haproxy refused {line!r}: {first}")
        return answer

    def show_stat(self) -> list[ServerStat]:
        return parse_show_stat(self.command("show stat"))

    def stat(self, lb: str, server: str) -> ServerStat | None:
        return next((r for r in self.show_stat() if r.backend == lb and r.server == server), None)

    def show_servers_state(self) -> list[dict[str, str]]:
        lines = [line for line in self.command("show servers state").splitlines() if line.strip()]
        header = next((line[2:].split() for line in lines if line.startswith("# ")), [])
        return [dict(zip(header, line.split(), strict=False)) for line in lines if not line.startswith("#")][1:]

    # --- changes: runtime API and file, in step ------------------------------------------------
    def declare(self, lb: LoadBalancerSpec) -> None:
        """Add or update a load balancer; a running haproxy is reloaded to pick it up."""
        with self._locked():
            lbs, servers = self._load()
            if lbs.get(lb.name) == lb:
                return
            for other in lbs.values():
                if other.name != lb.name and other.listen == lb.listen:
                    raise Conflict(f"load balancers {other.name} and {lb.name} both listen on {lb.listen}")
            previous = lbs.get(lb.name)
            if self.is_running() and (previous is None or previous.listen != lb.listen):
                # Checked before the model changes: a failed reload must not leave a config that
                # can never start again.
                self._check_port_free(lb)
            lbs[lb.name] = lb
            servers.setdefault(lb.name, {})
            self._save(lbs, servers)
            if self.is_running():
                self._reload_locked()

    def _require(self, lb: str) -> tuple[dict[str, LoadBalancerSpec], dict[str, dict[str, Server]]]:
        lbs, servers = self._load()
        if lb not in lbs:
            raise NotFound(f"load balancer {lb} is not declared")
        return lbs, servers

    def add_server(
        self, lb: str, name: str, address: str, port: int, state: ServerState = "drain", weight: int = 1
    ) -> None:
        """A dynamic server with health checks enabled, in ``state`` (drain: checked, no traffic)."""
        if not _NAME.match(name):
            raise ValueError(f"server name {name!r} may contain only letters, digits, '.', '_', '-'")
        with self._locked():
            lbs, servers = self._require(lb)
            existing = servers[lb].get(name)
            if existing is not None and (existing.address, existing.port) != (address, port):
                raise Conflict(f"server {lb}/{name} already exists at {existing.address}:{existing.port}")
            servers[lb][name] = Server(name, address, port, state, weight)
            self._save(lbs, servers)
            if not self.is_running():
                return
            if self.stat(lb, name) is None:
                opts = lbs[lb].health.server_options()
                self.command(f"add server {lb}/{name} {address}:{port} {opts} weight {weight}")
                self.command(f"enable health {lb}/{name}")
            self.command(f"set server {lb}/{name} weight {weight}")
            self.command(f"set server {lb}/{name} state {state}")

    def _update(self, lb: str, name: str, **changes: object) -> Server:
        lbs, servers = self._require(lb)
        server = servers[lb].get(name)
        if server is None:
            raise NotFound(f"load balancer {lb} has no server {name}")
        servers[lb][name] = replace(server, **changes)  # type: ignore[arg-type]
        self._save(lbs, servers)
        return servers[lb][name]

    def set_state(self, lb: str, name: str, state: ServerState) -> None:
        if state not in SERVER_STATES:
            raise ValueError(f"server state must be one of {', '.join(SERVER_STATES)}, got {state!r}")
        with self._locked():
            self._update(lb, name, state=state)
            if self.is_running():
                self.command(f"set server {lb}/{name} state {state}")

    def set_weight(self, lb: str, name: str, weight: int) -> None:
        if not 0 <= weight <= 256:
            raise ValueError(f"weight must be 0..256, got {weight}")
        with self._locked():
            self._update(lb, name, weight=weight)
            if self.is_running():
                self.command(f"set server {lb}/{name} weight {weight}")

    def del_server(self, lb: str, name: str) -> None:
        """Remove a server (put in maint first; haproxy refuses while connections remain)."""
        with self._locked():
            lbs, servers = self._require(lb)
            if name not in servers[lb]:
                return
            if self.is_running() and self.stat(lb, name) is not None:
                self.command(f"set server {lb}/{name} state maint")
                self.command(f"shutdown sessions server {lb}/{name}")
                deadline = time.monotonic() + 5
                while True:
                    try:
                        self.command(f"del server {lb}/{name}")
                        break
                    except HAProxyError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
            del servers[lb][name]
            self._save(lbs, servers)

    def drain(self, lb: str, name: str, timeout: float = 30.0) -> bool:
        """No new requests; wait until in-flight ones finish (scur == 0) or ``timeout``; then maint.

        Returns True when the server drained before the timeout.
        """
        self.set_state(lb, name, "drain")
        deadline = time.monotonic() + timeout
        drained = False
        while self.is_running():
            row = self.stat(lb, name)
            if row is None or row.scur == 0:
                drained = True
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.set_state(lb, name, "maint")
        return drained

    def wait_healthy(self, lb: str, names: list[str], timeout: float) -> list[str]:
        """Wait until haproxy sees every server healthy; returns those still not healthy."""
        deadline = time.monotonic() + timeout
        while True:
            rows = {r.server: r for r in self.show_stat() if r.backend == lb}
            pending = [n for n in names if n not in rows or not rows[n].healthy]
            if not pending or time.monotonic() > deadline:
                return pending
            time.sleep(0.1)
