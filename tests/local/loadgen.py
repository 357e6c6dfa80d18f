"""A bounded loopback load generator: a few threads sending GET requests, recording every answer.

Bounded in count and in time; ``keep_alive`` reuses one connection per thread (as browsers and
HAProxy's clients do) or opens one per request.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request was sent
    latency: float
    status: int  # 0: no HTTP answer (connection refused/reset, timeout)
    body: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Traffic:
    host: str
    port: int
    path: str = "/"
    threads: int = 4
    keep_alive: bool = False
    max_requests: int = 20_000
    max_seconds: float = 60.0
    pause: float = 0.005  # between requests of one thread: load, not a flood on 2 shared cores
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.answers) >= self.max_requests:
                    return
            if conn is None:
                conn = self._connection()
            started = time.monotonic()
            try:
                conn.request("GET", self.path, headers={} if self.keep_alive else {"Connection": "close"})
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace").strip()
                answer = Answer(started, time.monotonic() - started, resp.status, body)
                if not self.keep_alive or resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                answer = Answer(started, time.monotonic() - started, 0, "", f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = None
            with self._lock:
                self.answers.append(answer)
            time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def start(self) -> Traffic:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for w in self._workers:
            w.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for w in self._workers:
            w.join(timeout=15)
        return self.snapshot()

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        """Until at least ``count`` more answers arrived (steady traffic before an operation)."""
        target = len(self.snapshot()) + count
        deadline = time.monotonic() + timeout
        while len(self.snapshot()) < target and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def failures(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if not a.ok]
