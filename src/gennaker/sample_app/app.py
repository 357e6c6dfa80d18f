"""The sample application: a tiny HTTP service that can be made to misbehave on purpose.

Standard library only, and importable from nothing else, so that the file alone can be baked into
an artifact and run with ``python3 app.py``. Environment:

- ``PORT`` (default 8000), ``HOST`` (default 127.0.0.1)
- ``APP_VERSION``: what ``GET /`` answers
- ``ERROR_RATE``: fraction (0..1) of ``GET /`` answered with 500 (a "bad version")
- ``LATENCY_MS``: added to every ``GET /``
- ``UNHEALTHY``: when set, ``GET /up`` answers 503 (a version that never becomes healthy)

A ``release.env`` beside this file (``KEY=value`` lines, ``#`` comments) sets the same variables for
the release it is baked with: a version's own number and misbehaviour travel in its artifact, so a
canary's baseline and canary, started with one environment, still run different releases. The
process environment wins over the file.

``GET /up`` is the health check, ``GET /metrics`` is Prometheus text. SIGTERM stops accepting
connections and lets requests in flight finish (up to ``SHUTDOWN_TIMEOUT`` seconds, default 30).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

RELEASE_FILE = "release.env"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Request counts by status and a latency histogram, safe across request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_status: dict[int, int] = {}
        self.bucket_counts = [0] * len(BUCKETS)
        self.count = 0
        self.total = 0.0
        self.in_flight = 0

    def observe(self, status: int, seconds: float) -> None:
        with self._lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[i] += 1
            self.count += 1
            self.total += seconds

    def render(self, version: str) -> str:
        with self._lock:
            lines = [
                "# HELP app_info The running version.",
                "# TYPE app_info gauge",
                f'app_info{{version="{version}"}} 1',
                "# HELP http_requests_total Requests answered, by status.",
                "# TYPE http_requests_total counter",
            ]
            lines += [f'http_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.by_status.items())]
            lines += [
                "# HELP http_request_duration_seconds Time to answer GET /.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            lines += [
                f'http_request_duration_seconds_bucket{{le="{b}"}} {n}'
                for b, n in zip(BUCKETS, self.bucket_counts, strict=True)
            ]
            lines += [
                f'http_request_duration_seconds_bucket{{le="+Inf"}} {self.count}',
                f"http_request_duration_seconds_sum {self.total:.6f}",
                f"http_request_duration_seconds_count {self.count}",
                "# HELP http_requests_in_flight Requests being answered.",
                "# TYPE http_requests_in_flight gauge",
                f"http_requests_in_flight {self.in_flight}",
            ]
        return "\n".join(lines) + "\n"


class Config:
    def __init__(self, env: dict[str, str]) -> None:
        self.version = env.get("APP_VERSION", "0.0.0")
        self.error_rate = float(env.get("ERROR_RATE", "0") or 0)
        self.latency = float(env.get("LATENCY_MS", "0") or 0) / 1000
        self.unhealthy = bool(env.get("UNHEALTHY"))
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"ERROR_RATE must be between 0 and 1, got {self.error_rate}")


def make_handler(config: Config, metrics: Metrics, stopping: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real service behind a load balancer

        def _send(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-App-Version", config.version)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            with metrics._lock:
                metrics.in_flight += 1
            try:
                self._answer()
            finally:
                with metrics._lock:
                    metrics.in_flight -= 1

        def _answer(self) -> None:
            if stopping.is_set():
                self.close_connection = True  # no keep-alive past a SIGTERM
            path = self.path.split("?", 1)[0]
            if path == "/up":
                self._send(503 if config.unhealthy else 200, "down\n" if config.unhealthy else "up\n")
            elif path == "/metrics":
                self._send(200, metrics.render(config.version), "text/plain; version=0.0.4")
            elif path == "/":
                started = time.monotonic()
                if config.latency:
                    time.sleep(config.latency)
                status = 500 if random.random() < config.error_rate else 200
                self._send(status, f"{config.version}\n" if status == 200 else "injected error\n")
                metrics.observe(status, time.monotonic() - started)
            else:
                self._send(404, "not found\n")

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # Passing health checks every second would bury everything else in the log.
            if self.path == "/up" and str(code).startswith("2"):
                return
            super().log_request(code, size)

        def log_message(self, format: str, *args: object) -> None:
            # One line per request on stdout: the instance log the console shows.
            sys.stdout.write(f"{self.address_string()} {format % args}\n")
            sys.stdout.flush()

    return Handler


class Server(ThreadingHTTPServer):
    # Idle keep-alive connections must not hold the shutdown: in-flight requests are counted
    # instead, and waited for.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client gone before the answer (HAProxy closes health checks early) is no error of ours.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def release_settings(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of a release file (none when there is no file)."""
    if not path.is_file():
        return {}
    settings = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path.name} line {number}: expected KEY=value, got {line[:60]!r}")
        settings[key.strip()] = value.strip()
    return settings


def main(env: dict[str, str] | None = None) -> int:
    try:
        release = release_settings(Path(__file__).resolve().parent / RELEASE_FILE)
    except ValueError as exc:
        print(f"sample app: {exc}", file=sys.stderr)
        return 2
    env = {**release, **(os.environ if env is None else env)}
    try:
        config = Config(env)
        port = int(env.get("PORT", "8000"))
    except ValueError as exc:
        print(f"sample app: {exc}", file=sys.stderr)
        return 2
    metrics = Metrics()
    stopping = threading.Event()
    try:
        server = Server((env.get("HOST", "127.0.0.1"), port), make_handler(config, metrics, stopping))
    except OSError as exc:
        print(f"sample app: cannot listen on port {port}: {exc.strerror}", file=sys.stderr)
        return 1

    def on_term(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever to return: call it from another thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(f"sample app {config.version} listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    # No longer accepting; let requests in flight finish (bounded by SHUTDOWN_TIMEOUT).
    server.server_close()
    deadline = time.monotonic() + float(env.get("SHUTDOWN_TIMEOUT", "30"))
    while metrics.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    print("sample app stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
