"""A bounded loopback load generator, and the summaries a deploy under load is judged on.

``LoadGenerator`` runs a few threads sending ``GET`` requests to one loopback address and records
every answer: its status, the version that served it (the sample application answers its version
on ``GET /`` and in ``X-App-Version``), its latency and when it was sent. It is bounded twice, by a
request budget and a time budget, and stops by itself when either runs out: a forgotten generator
can neither flood two shared cores nor run forever.

The summaries read those records: ``summarize`` (sent, failures, p50/p99, rps over a window),
``timeline`` (requests and errors per version per second), ``GroupRates`` (requests and errors per
second per server group, from the load balancer's counters sampled over time).
"""

from __future__ import annotations

import http.client
import ipaddress
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

MAX_RATE = 2000.0  # requests/s: a paced generator on two shared cores, never a flood
NO_VERSION = "-"  # an answer no instance gave (connection refused, or the balancer's own 503)


@dataclass(frozen=True)
class Response:
    sent: float  # time.monotonic() when the request was sent
    latency: float  # seconds until the whole answer was read
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    version: str  # the version that answered, NO_VERSION when none did
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def done(self) -> float:
        return self.sent + self.latency


def _loopback(host: str) -> str:
    """Load goes to this machine only: refuse anything but a 127.0.0.0/8 address (or localhost)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"the load generator sends to loopback addresses only, not {host!r}")


class LoadGenerator:
    """``threads`` threads, each sending a request, reading the answer, pausing ``pause`` seconds.

    Stops by itself after ``max_requests`` answers or ``max_seconds``, whichever comes first.
    ``keep_alive`` reuses one connection per thread (as browsers do) instead of one per request.
    ``rate`` (requests per second, all threads together) paces the requests instead of ``pause``:
    a steady, known load, such as a canary analysis needs to have enough requests in every step
    (a thread that falls behind does not burst to catch up).
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str = "/",
        threads: int = 4,
        max_requests: int = 20_000,
        max_seconds: float = 60.0,
        pause: float = 0.005,
        keep_alive: bool = False,
        timeout: float = 10.0,
        rate: float | None = None,
    ):
        if threads < 1 or max_requests < 1 or max_seconds <= 0:
            raise ValueError("the load generator needs at least one thread, one request and some time")
        if rate is not None and not 0 < rate <= MAX_RATE:
            raise ValueError(f"the load generator's rate is 0 < rate <= {MAX_RATE:g} requests/s, not {rate:g}")
        self.host = _loopback(host)
        self.port = port
        self.path = path
        self.threads = threads
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause = pause
        self.keep_alive = keep_alive
        self.timeout = timeout
        self.rate = rate
        self.started = 0.0
        self._responses: list[Response] = []
        self._issued = 0  # requests taken from the budget (answered or in flight)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    # --- running -------------------------------------------------------------------------------
    def _take(self) -> bool:
        """One request from the budget; False once it is spent."""
        with self._lock:
            if self._issued >= self.max_requests:
                return False
            self._issued += 1
            return True

    def _one(self, kept: http.client.HTTPConnection | None) -> tuple[Response, http.client.HTTPConnection | None]:
        """One request; hands back the connection to reuse (None: open a new one next time)."""
        conn = kept or http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        sent = time.monotonic()
        try:
            conn.request("GET", self.path, headers={} if self.keep_alive else {"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace").strip()
            version = resp.getheader("X-App-Version") or (body if resp.status == 200 else "") or NO_VERSION
            answer = Response(sent, time.monotonic() - sent, resp.status, version)
            if self.keep_alive and not resp.will_close:
                return answer, conn
        except (OSError, http.client.HTTPException) as exc:
            answer = Response(sent, time.monotonic() - sent, 0, NO_VERSION, f"{type(exc).__name__}: {exc}")
        conn.close()
        return answer, None

    def _run(self, index: int) -> None:
        deadline = self.started + self.max_seconds
        conn: http.client.HTTPConnection | None = None
        # Paced: each thread sends every threads/rate seconds, the threads spread over one period.
        period = self.threads / self.rate if self.rate else 0.0
        due = self.started + period * index / self.threads
        try:
            while not self._stop.is_set() and time.monotonic() < deadline and self._take():
                answer, conn = self._one(conn)
                with self._lock:
                    self._responses.append(answer)
                if period:
                    due = max(due + period, time.monotonic())  # behind: no burst to catch up
                    self._stop.wait(max(0.0, due - time.monotonic()))
                elif self.pause:
                    self._stop.wait(self.pause)
        finally:
            if conn is not None:
                conn.close()

    def start(self) -> LoadGenerator:
        if self._workers:
            raise RuntimeError("this load generator was already started")
        self.started = time.monotonic()
        self._workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True, name=f"loadgen-{i}") for i in range(self.threads)
        ]
        for w in self._workers:
            w.start()
        return self

    def stop(self) -> list[Response]:
        """Stop sending; requests in flight finish (each bounded by ``timeout``)."""
        self._stop.set()
        for w in self._workers:
            w.join(timeout=self.timeout + 5)
        return self.snapshot()

    @property
    def running(self) -> bool:
        return any(w.is_alive() for w in self._workers)

    def snapshot(self) -> list[Response]:
        with self._lock:
            return list(self._responses)

    def count(self) -> int:
        with self._lock:
            return len(self._responses)

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        """Until ``count`` more answers arrived (False if the time or the budget ran out first)."""
        target = self.count() + count
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if time.monotonic() > deadline or not self.running:
                return False
            time.sleep(0.02)
        return True

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- summaries -----------------------------------------------------------------------------------
def failures(responses: Iterable[Response]) -> list[Response]:
    return [r for r in responses if not r.ok]


def window(responses: Iterable[Response], start: float | None = None, end: float | None = None) -> list[Response]:
    """The responses whose request was sent in [start, end)."""
    return [r for r in responses if (start is None or r.sent >= start) and (end is None or r.sent < end)]


def versions(responses: Iterable[Response]) -> set[str]:
    return {r.version for r in responses}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    sent: int
    failures: int
    p50: float  # seconds
    p99: float
    rps: float
    seconds: float

    def line(self) -> str:
        return (
            f"{self.sent} requests, {self.failures} failed, p50 {self.p50 * 1000:.1f} ms, "
            f"p99 {self.p99 * 1000:.1f} ms, {self.rps:.0f} req/s over {self.seconds:.1f} s"
        )


def summarize(responses: Iterable[Response], start: float | None = None, end: float | None = None) -> Summary:
    picked = window(responses, start, end)
    lo = start if start is not None else min((r.sent for r in picked), default=0.0)
    hi = end if end is not None else max((r.done for r in picked), default=lo)
    seconds = max(hi - lo, 0.0)
    latencies = [r.latency for r in picked]
    return Summary(
        sent=len(picked),
        failures=len(failures(picked)),
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        rps=len(picked) / seconds if seconds > 0 else 0.0,
        seconds=seconds,
    )


@dataclass
class Counts:
    requests: int = 0
    errors: int = 0


@dataclass(frozen=True)
class Bucket:
    start: float  # seconds since the timeline's origin
    by_version: dict[str, Counts] = field(default_factory=dict)


def timeline(responses: Iterable[Response], origin: float, step: float = 1.0) -> list[Bucket]:
    """Requests and errors per version in consecutive ``step``-second buckets from ``origin``."""
    buckets: dict[int, Bucket] = {}
    for r in responses:
        if r.sent < origin:
            continue
        index = int((r.sent - origin) // step)
        bucket = buckets.setdefault(index, Bucket(index * step))
        counts = bucket.by_version.setdefault(r.version, Counts())
        counts.requests += 1
        counts.errors += 0 if r.ok else 1
    last = max(buckets, default=-1)
    return [buckets.get(i, Bucket(i * step)) for i in range(last + 1)]


@dataclass(frozen=True)
class GroupRate:
    group: str
    rps: float
    errors_per_second: float
    in_flight: int


class GroupRates:
    """Requests and errors per second per server group, from the load balancer's cumulative
    counters (``LocalProvider.traffic_by_server_group``: ``stot``, ``scur``, ``2xx`` … ``5xx``)
    read twice: each ``sample()`` gives the rates since the previous one."""

    def __init__(self, read: Callable[[], Mapping[str, Mapping[str, int]]]):
        self._read = read
        self._last = (time.monotonic(), {g: dict(c) for g, c in read().items()})

    def sample(self) -> list[GroupRate]:
        now, current = time.monotonic(), {g: dict(c) for g, c in self._read().items()}
        then, before = self._last
        self._last = (now, current)
        seconds = max(now - then, 1e-6)
        rates = []
        for group, c in sorted(current.items()):
            b = before.get(group, {})
            answered = sum(c.get(k, 0) - b.get(k, 0) for k in ("2xx", "3xx", "4xx", "5xx"))
            errors = c.get("5xx", 0) - b.get("5xx", 0)
            rates.append(GroupRate(group, max(answered, 0) / seconds, max(errors, 0) / seconds, c.get("scur", 0)))
        return rates


def rates_line(rates: Iterable[GroupRate]) -> str:
    """``shop-web-v001 48 req/s 0 err/s | shop-web-v002 …``; groups with no traffic left out."""
    shown = [r for r in rates if r.rps >= 0.5 or r.errors_per_second > 0 or r.in_flight]
    if not shown:
        return "no traffic reaching any server group"
    return " | ".join(f"{r.group} {r.rps:.0f} req/s {r.errors_per_second:.0f} err/s" for r in shown)
