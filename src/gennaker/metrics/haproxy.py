"""HAProxy as a metric source: per server group request rate, 5xx rate and response time.

HAProxy only has counters since it started (``show stat``: responses by status class per server,
and ``rtime``, the mean response time of the server's last 1,024 requests), so the source samples
them and answers a window with the differences between samples, one point per ``step``:

- ``request_rate``: responses per second;
- ``http_5xx_rate``: 5xx responses ÷ all responses (2xx..5xx) in the step;
- ``response_time``: the mean ``rtime`` (ms) of the group's servers, weighted by their responses.

A server group's servers are named ``<server group>-<n>`` (see the local provider); its counters
are the sum of its servers' in every backend. A step in which the group answered nothing has no
point at all (Nodata, not "0 errors"). A server that appears between two samples counts from 0; one
whose counters went down (deleted and added again) counts from its new value.

Samples are appended to a file (JSON lines) so that every process judging the canary (another worker
after a restart, ``gennaker canary analyze`` later) sees the same history. Whoever watches a canary
calls ``sample()`` at least once per step; ``fetch`` also takes one, so a window's end is covered.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

from gennaker.metrics.sources import Fetched, MetricError, MetricQuery, Scope, Series, errors_for

QUERIES = ("request_rate", "http_5xx_rate", "response_time")
RETENTION = 6 * 3600.0  # seconds of samples kept in the file
PRUNE_AT_BYTES = 8 * 1024 * 1024  # a file this large is cut to RETENTION (it stays bounded)
MAX_POINTS = 100_000  # steps in one window; more is refused, not a memory blow-up


class StatRow(Protocol):
    """What the source reads of one ``show stat`` server row (``ServerStat`` has these)."""

    @property
    def backend(self) -> str: ...
    @property
    def server(self) -> str: ...
    @property
    def hrsp_2xx(self) -> int: ...
    @property
    def hrsp_3xx(self) -> int: ...
    @property
    def hrsp_4xx(self) -> int: ...
    @property
    def hrsp_5xx(self) -> int: ...
    @property
    def rtime(self) -> int: ...


# backend/server -> [2xx, 3xx, 4xx, 5xx, rtime]
Counters = dict[str, list[int]]


@dataclass(frozen=True)
class Sample:
    at: float
    counters: Counters


def check_query(query: str) -> str | None:
    if query not in QUERIES:
        return f"haproxy has no measure '{query}' (one of: {', '.join(QUERIES)})"
    return None


def group_of(server: str) -> str:
    """``shop-web-v003-2`` → ``shop-web-v003``."""
    return server.rpartition("-")[0] or server


class HAProxySource:
    name = "haproxy"

    def __init__(
        self,
        read_stats: Callable[[], Sequence[StatRow]],
        log_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.read_stats = read_stats
        self.log_path = log_path
        self.clock = clock
        self._memory: list[Sample] = []  # used when there is no file

    def check(self, query: str) -> str | None:
        return check_query(query)

    # --- sampling --------------------------------------------------------------------------------
    def sample(self) -> Sample:
        """Read ``show stat`` now and keep it. Raises what reading HAProxy raises."""
        rows = self.read_stats()
        counters = {f"{r.backend}/{r.server}": [r.hrsp_2xx, r.hrsp_3xx, r.hrsp_4xx, r.hrsp_5xx, r.rtime] for r in rows}
        taken = Sample(self.clock(), counters)
        if self.log_path is None:
            self._memory.append(taken)
            self._memory = [s for s in self._memory if s.at >= taken.at - RETENTION]
            return taken
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"t": taken.at, "c": counters}, separators=(",", ":")) + "\n"
        # One write of one line in append mode: concurrent samplers never interleave within a line.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        # Sources are made per poll, so the file's size (not a count in memory) says when to prune.
        if self.log_path.stat().st_size > PRUNE_AT_BYTES:
            self._prune(taken.at - RETENTION)
        return taken

    def _prune(self, before: float) -> None:
        """Keep the samples since ``before``, and at most half the size limit of the newest ones.
        (A sample another process appends while this rewrites the file may be lost: a gap, judged as
        one, never a wrong value.)"""
        assert self.log_path is not None
        lines = [
            json.dumps({"t": s.at, "c": s.counters}, separators=(",", ":")) + "\n"
            for s in self.samples()
            if s.at >= before
        ]
        kept: list[str] = []
        size = 0
        for line in reversed(lines):
            size += len(line)
            if size > PRUNE_AT_BYTES // 2:
                break
            kept.append(line)
        tmp = self.log_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("".join(reversed(kept)))
        tmp.replace(self.log_path)

    def samples(self) -> list[Sample]:
        """Every kept sample, oldest first (a torn or foreign line is skipped)."""
        if self.log_path is None:
            return sorted(self._memory, key=lambda s: s.at)
        try:
            text = self.log_path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                d = json.loads(line)
                out.append(Sample(float(d["t"]), {str(k): [int(x) for x in v] for k, v in d["c"].items()}))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return sorted(out, key=lambda s: s.at)

    # --- answering a window ----------------------------------------------------------------------
    def fetch(
        self, queries: Sequence[MetricQuery], scopes: Sequence[Scope], start: datetime, end: datetime, step: float
    ) -> Fetched:
        t0, t1 = start.timestamp(), end.timestamp()
        if step <= 0 or (t1 - t0) / step > MAX_POINTS:
            return errors_for(queries, scopes, f"a window of {t1 - t0:g}s in steps of {step:g}s has too many points")
        try:
            if self.clock() >= t1 - step:  # the window ends about now: make sure its last step is seen
                self.sample()
        except Exception as exc:  # any failure to read HAProxy makes the metrics Error
            return errors_for(queries, scopes, f"cannot read HAProxy's statistics: {exc}")
        points = steps(self.samples(), t0, t1, step)
        if not points:
            return errors_for(queries, scopes, f"no HAProxy samples between {start.isoformat()} and {end.isoformat()}")
        out: Fetched = {}
        for scope in scopes:
            per_query: dict[str, Series | MetricError] = {}
            for q in queries:
                problem = check_query(q.query)
                per_query[q.name] = MetricError(problem) if problem else _series(points, scope.server_group, q.query)
            out[scope.server_group] = per_query
        return out


@dataclass(frozen=True)
class Step:
    at: float  # the end of the step
    seconds: float  # between the two samples compared
    groups: dict[str, list[float]]  # server group -> [responses, 5xx, rtime x responses]


def steps(samples: Sequence[Sample], start: float, end: float, step: float) -> list[Step]:
    """Per-group deltas between samples about ``step`` apart within the window.

    The first sample compared is the last one taken at or before ``start`` (when it is recent: at
    most two steps older), else the first one inside the window; then every sample at least
    ``0.9 x step`` after the previous one chosen (sampling jitters), and the last one of the window
    when it closes at least half a step more.
    """
    eps = 1e-6
    inside = [s for s in samples if start - 2 * step <= s.at <= end + eps]
    before = [s for s in inside if s.at <= start + eps]
    chosen = [before[-1]] if before else inside[:1]
    if not chosen:
        return []
    rest = [s for s in inside if s.at > chosen[0].at]
    for s in rest:
        if s.at - chosen[-1].at >= 0.9 * step:
            chosen.append(s)
    if rest and rest[-1] is not chosen[-1] and rest[-1].at - chosen[-1].at >= 0.5 * step:
        chosen.append(rest[-1])
    return [Step(b.at, b.at - a.at, _deltas(a.counters, b.counters)) for a, b in pairwise(chosen)]


def _deltas(before: Counters, after: Counters) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {}
    for key, now in after.items():
        then = before.get(key)
        # Absent before (a new server) or counters that went down (re-added): count from zero.
        if then is None or any(n < t for n, t in zip(now[:4], then[:4], strict=False)):
            then = [0, 0, 0, 0, 0]
        d2, d3, d4, d5 = (now[j] - then[j] for j in range(4))
        answered = d2 + d3 + d4 + d5
        g = groups.setdefault(group_of(key.partition("/")[2]), [0.0, 0.0, 0.0])
        g[0] += answered
        g[1] += d5
        g[2] += now[4] * answered
    return groups


def _series(points: Sequence[Step], group: str, query: str) -> Series:
    times: list[float] = []
    values: list[float] = []
    for p in points:
        answered, errors, weighted = p.groups.get(group, (0.0, 0.0, 0.0))
        if answered <= 0:
            continue  # no requests in this step: no data point, not "no errors"
        if query == "request_rate":
            value = answered / p.seconds
        elif query == "http_5xx_rate":
            value = errors / answered
        else:
            value = weighted / answered
        times.append(p.at)
        values.append(value)
    return Series(tuple(times), tuple(values))


def from_settings(haproxy: Any) -> HAProxySource:
    """The source over what ``SourceSettings.haproxy`` holds: a local provider (``server_stats()`` and
    its ``state_dir``), or a source already built."""
    if isinstance(haproxy, HAProxySource):
        return haproxy
    state_dir = getattr(haproxy, "state_dir", None)
    log = Path(state_dir) / "metrics" / "haproxy-samples.jsonl" if state_dir is not None else None
    return HAProxySource(haproxy.server_stats, log)
