"""Benchmark alarm → incident → first notification: an alarm transition taken in by
``record_transition`` (the path SNS, the poller and local conditions share), the incident stored and
its first notification delivered by a worker's job runner to a local webhook receiver. Reports the
median and p99 from the transition to the receiver's receipt, with the job runner's default idle
poll (0.2 s) and a short one (0.02 s). Goal: ≤ 1 s on loopback.

    python bench/incidents.py [--count 100] [--db URL] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine_line, write_section

from gennaker.engine.jobs import JobRunner, JobSettings
from gennaker.ops.incidents.intake import AlarmTransition, record_transition
from gennaker.runtime import build_runtime
from gennaker.spec.config import config_from_text


def receiver() -> tuple[ThreadingHTTPServer, dict[str, float]]:
    """A webhook receiver noting when each incident's first notice arrived (by incident id)."""
    import json

    seen: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            at = time.perf_counter()
            incident = json.loads(body)["fields"].get("incident", "")
            seen.setdefault(incident, at)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def measure(db_url: str, count: int, poll: float) -> tuple[list[float], list[float]]:
    server, seen = receiver()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    cfg = config_from_text(
        f"notifications:\n  channels:\n    hook: {{type: webhook, url: '{url}'}}\nincidents:\n  channels: [hook]\n"
    )
    rt = build_runtime(db_url, config=cfg)
    runner = JobRunner(rt.db, rt.job_handlers, f"bench-{poll}", JobSettings(poll=poll, threads=2))
    runner.start()
    stored: list[float] = []
    delivered: list[float] = []
    try:
        for i in range(count):
            t = AlarmTransition(
                source="sns",
                account="bench",
                region="us-east-1",
                alarm=f"bench-{poll}-{i}",
                state="ALARM",
                previous="OK",
                reason="bench",
                at=time.time(),
                tags={"application": "shop"},
            )
            start = time.perf_counter()
            with rt.db.begin() as conn:
                result = record_transition(conn, t, rt.incidents)
            stored.append(time.perf_counter() - start)
            assert result.outcome == "created" and result.incident_id
            deadline = time.monotonic() + 10
            while result.incident_id not in seen:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no notification for incident {result.incident_id} within 10 s")
                time.sleep(0.001)
            delivered.append(seen[result.incident_id] - start)
    finally:
        runner.stop()
        server.shutdown()
        rt.db.dispose()
    return stored, delivered


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--db", default=None, help="Database URL (default: a new SQLite file)")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for poll in (0.2, 0.02):
            db = args.db or f"sqlite:///{Path(tmp) / f'bench-{poll}.db'}"
            stored, delivered = measure(db, args.count, poll)
            kind = "PostgreSQL" if db.startswith("postgres") else "SQLite"
            rows.append(
                f"| {kind}, job poll {poll:g} s, {args.count} alarms one after another | "
                f"median {statistics.median(stored) * 1000:.1f} ms, p99 {p99(stored) * 1000:.1f} ms | "
                f"median {statistics.median(delivered) * 1000:.0f} ms, p99 {p99(delivered) * 1000:.0f} ms |"
            )
            print(rows[-1], flush=True)
    body = "\n".join(
        [
            machine_line(),
            "",
            "An ALARM transition through `record_transition` (rules, incident row, timeline, notification",
            "delivery and escalation job in one transaction), then a worker's job runner sending the first",
            "notification to a webhook receiver on loopback. Goal: first notification ≤ 1 s.",
            "",
            "| setup | transition → incident stored | transition → first notification received |",
            "|---|---|---|",
            *rows,
        ]
    )
    if not args.no_write:
        write_section("Incidents: alarm to first notification (bench/incidents.py)", body)


if __name__ == "__main__":
    main()
