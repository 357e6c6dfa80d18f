"""Engine benchmarks: orchestration overhead per no-op stage, memory of 1,000 waiting executions,
and throughput with 1, 2 and 4 workers on PostgreSQL. Writes a section of docs/benchmarks.md.

Beside each figure it records the limit it reads against: the raw cost of one commit
(``BEGIN; UPDATE one row; COMMIT`` through the same Database/engine settings Gennaker uses) on each
database, and how many transactions, commits and statements one no-op stage costs (counted with
SQLAlchemy events on the engine that runs it).

Run: python bench/engine.py [--quick]
A no-op stage is a ``wait`` of 0 s: StartStage, one RunTask, completion — the engine's own work only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.engine.runner import EngineSettings
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config
from gennaker.store.db import Database

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_line, write_section

PG = os.environ.get("GENNAKER_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def chain(n: int) -> str:
    lines = ["name: chain", "application: bench", "stages:"]
    for i in range(n):
        req = f", requires: [s{i - 1}]" if i else ""
        lines.append(f"  - {{id: s{i}, type: wait, duration: 0s{req}}}")
    return "\n".join(lines) + "\n"


def fan(width: int) -> str:
    lines = ["name: fan", "application: bench", "stages:", "  - {id: start, type: wait, duration: 0s}"]
    for i in range(width):
        lines.append(f"  - {{id: b{i}, type: wait, duration: 0s, requires: [start]}}")
    lines.append(f"  - {{id: end, type: wait, duration: 0s, requires: [{', '.join(f'b{i}' for i in range(width))}]}}")
    return "\n".join(lines) + "\n"


def _status(rt: Runtime, eid: str) -> str:
    from sqlalchemy import select

    from gennaker.store.tables import executions

    with rt.db.read() as conn:
        return str(conn.execute(select(executions.c.status).where(executions.c.id == eid)).scalar_one())


def commit_cost(db: Database, n: int) -> dict[str, float]:
    """The floor under every state change: one committed one-row UPDATE, timed n times."""
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_commit (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("DELETE FROM bench_commit"))
        conn.execute(text("INSERT INTO bench_commit (id, n) VALUES (1, 0)"))
    bump = text("UPDATE bench_commit SET n = n + 1 WHERE id = 1")
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with db.begin() as conn:
            conn.execute(bump)
        times.append(time.perf_counter() - t0)
    with db.begin() as conn:
        conn.execute(text("DROP TABLE bench_commit"))
    times.sort()
    return {"median": statistics.median(times), "p95": times[int(len(times) * 0.95)], "per_s": n / sum(times)}


@contextmanager
def counting(db: Database) -> Iterator[Counter[str]]:
    """Count transactions, commits and statements (by their first word) on db's engine meanwhile."""
    seen: Counter[str] = Counter()

    def on_begin(_conn: Any) -> None:
        seen["transactions"] += 1

    def on_commit(_conn: Any) -> None:
        seen["commits"] += 1

    def on_statement(_conn: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen["statements"] += 1
        seen[statement.lstrip().split(None, 1)[0].upper()] += 1

    hooks: list[tuple[str, Callable[..., None]]] = [
        ("begin", on_begin),
        ("commit", on_commit),
        ("before_cursor_execute", on_statement),
    ]
    for name, fn in hooks:
        event.listen(db.engine, name, fn)
    try:
        yield seen
    finally:
        for name, fn in hooks:
            event.remove(db.engine, name, fn)


def per_stage(seen: Counter[str], n: int) -> str:
    kinds = ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(seen.items()) if k.isupper() and v / n >= 0.05)
    return (
        f"{seen['transactions'] / n:.1f} transactions ({seen['commits'] / n:.1f} commits), "
        f"{seen['statements'] / n:.1f} statements per stage ({kinds})"
    )


def commit_row(name: str, c: dict[str, float]) -> str:
    return (
        f"| raw commit, {name} (`BEGIN; UPDATE one row; COMMIT`, Gennaker's engine settings) | "
        f"median {c['median'] * 1000:.2f} ms (p95 {c['p95'] * 1000:.2f} ms); {c['per_s']:.0f} commits/s "
        f"on one connection; {load()} |"
    )


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def yardstick() -> str:
    """The machine's speed in this run, for comparing runs: this VM's speed moves by 2x over a day.
    A fixed piece of Python (JSON in and out, as a stage's rows are) and a no-op round trip to
    PostgreSQL (``SELECT 1``), each the median CPU time of several tries on one thread."""
    import json

    import psycopg

    row = {"context": {"resolved": {"duration": 0.0, "when": None}, "base": 0}, "tasks": [{"name": "wait"}]}

    def python() -> None:
        for _ in range(2000):
            json.loads(json.dumps(row))

    conn = psycopg.connect(PG.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def round_trips() -> None:
        for _ in range(500):
            conn.execute("SELECT 1").fetchall()

    def cpu(work: Callable[[], None], n: int) -> float:
        tries = []
        for _ in range(5):
            t0 = time.thread_time()
            work()
            tries.append((time.thread_time() - t0) / n)
        return statistics.median(tries)

    try:
        py, rt = cpu(python, 2000), cpu(round_trips, 500)
    finally:
        conn.close()
    return (
        f"| the machine's speed in this run (yardstick) | {py * 1e6:.1f} µs of CPU per JSON round trip of a "
        f"stage-like row in Python; {rt * 1e6:.0f} µs of client CPU per `SELECT 1` round trip to PostgreSQL; "
        f"{load()} |"
    )


def run_one(rt: Runtime, text: str, threads: int = 4) -> dict:
    pipeline = rt.pipeline_from_text(text)
    w = rt.worker(threads=threads)
    w.start()
    try:
        t0 = time.perf_counter()
        eid = ops.start_execution(rt.db, pipeline, {}, "bench")
        while not views.is_done(_status(rt, eid)):  # one row, not the whole execution: the harness
            time.sleep(0.02)  # must not compete with the engine it measures
        total = time.perf_counter() - t0
    finally:
        w.stop()
    with rt.db.read() as conn:
        d = views.execution_detail(conn, eid)
    assert d["status"] == "SUCCEEDED", d["status"]
    return {"total": total, "stages": d["stages"]}


def overhead(tmp: Path, n_chain: int, width: int) -> list[str]:
    rt = build_runtime(f"sqlite:///{tmp / 'overhead.db'}", config=Config(), settings=EngineSettings(poll=0.01))
    rows = [commit_row("SQLite (WAL, synchronous=NORMAL)", commit_cost(rt.db, 2000))]
    # Timed without the counting listeners (any listener makes SQLAlchemy dispatch events around
    # every statement), then counted on a second run of the same chain.
    c = run_one(rt, chain(n_chain))
    with counting(rt.db) as seen:
        run_one(rt, chain(n_chain))
    starts = sorted(s["started_at"] for s in c["stages"])
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    f = run_one(rt, fan(width))
    return [
        *rows,
        f"| {n_chain}-stage chain, SQLite, 1 process | median {statistics.median(gaps) * 1000:.2f} ms per stage "
        f"(p95 {sorted(gaps)[int(len(gaps) * 0.95)] * 1000:.2f} ms); total {c['total']:.2f} s; {load()} |",
        f"| same chain: database work | {per_stage(seen, n_chain)} (the harness's own status reads included) |",
        f"| {width}-wide fan-out/fan-in, SQLite, 1 process | {f['total'] / (width + 2) * 1000:.2f} ms per stage; "
        f"total {f['total']:.2f} s |",
    ]


def waiting(tmp: Path, n: int) -> list[str]:
    rt = build_runtime(f"sqlite:///{tmp / 'waiting.db'}", config=Config())
    pipeline = rt.pipeline_from_text(
        "name: w\napplication: bench\nstages:\n  - {id: a, type: wait, duration: 1h}\n"
        "  - {id: b, type: manual_judgment, requires: [a]}\n"
    )
    before = threading.active_count()
    w = rt.worker(threads=4)
    w.start()
    t0 = time.perf_counter()
    for _ in range(n):
        ops.start_execution(rt.db, pipeline, {}, "bench")
    while True:
        with rt.db.read() as conn:
            counts = views.status_counts(conn)
        from sqlalchemy import func, select

        from gennaker.store.tables import stages

        with rt.db.read() as conn:
            waiting_n = conn.execute(select(func.count()).where(stages.c.status == "WAITING")).scalar_one()
        if waiting_n >= n:
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - t0
    threads = threading.active_count()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    w.stop()
    return [
        f"| {n} executions waiting at once (wait stage), 1 process | threads {threads} (before worker: {before}); "
        f"peak RSS {rss:.0f} MB; all waiting after {elapsed:.1f} s; statuses {counts} |"
    ]


def throughput(tmp: Path, executions: int, worker_counts: list[int]) -> list[str]:
    import psycopg

    rows = []
    admin = psycopg.connect(PG.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    name = f"gennaker_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    rt = build_runtime(PG.rsplit("/", 1)[0] + f"/{name}", config=Config(), settings=EngineSettings(poll=0.01))
    cost = commit_cost(rt.db, 2000)
    rows.append(commit_row("PostgreSQL (loopback, synchronous_commit on)", cost))
    n_chain = 200
    c = run_one(rt, chain(n_chain), threads=1)  # timed; then counted on a second run (see overhead)
    with counting(rt.db) as seen:
        run_one(rt, chain(n_chain), threads=1)
    starts = sorted(s["started_at"] for s in c["stages"])
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    rows.append(
        f"| {n_chain}-stage chain, PostgreSQL, 1 process, 1 task thread | "
        f"median {statistics.median(gaps) * 1000:.2f} ms per stage "
        f"(p95 {sorted(gaps)[int(len(gaps) * 0.95)] * 1000:.2f} ms) = "
        f"{statistics.median(gaps) / cost['median']:.1f} times a raw commit; {per_stage(seen, n_chain)}; {load()} |"
    )
    rt.db.dispose()
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    for n in worker_counts:
        rows.append(drain(admin, executions, n, cost))
    return rows


THREE = (
    "name: t\napplication: bench\nstages:\n  - {id: a, type: wait, duration: 0s}\n"
    "  - {id: b, type: wait, duration: 0s, requires: [a]}\n"
    "  - {id: c, type: wait, duration: 0s, requires: [b]}\n"
)


def cpu_seconds(pids: list[int] | None = None) -> float:
    """User + system CPU of these processes, or of every PostgreSQL process (from /proc)."""
    total = 0
    for pid in pids if pids is not None else [int(d) for d in os.listdir("/proc") if d.isdigit()]:
        try:
            name, rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        if pids is not None or name.endswith("(postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def drain(admin: Any, executions: int, n: int, cost: dict[str, float]) -> str:
    """``executions`` no-op executions queued first, then ``n`` worker processes started: the engine's
    rate is read from the stored times (first execution started → last ended), so neither the
    workers' start-up nor the harness creating executions is in it. CPU is read from /proc."""
    from sqlalchemy import func, select

    from gennaker.store.tables import executions as executions_table
    from gennaker.store.tables import workers

    name = f"gennaker_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG.rsplit("/", 1)[0] + f"/{name}"
    rt = build_runtime(url, config=Config())
    pipeline = rt.pipeline_from_text(THREE)
    for _ in range(executions):
        ops.start_execution(rt.db, pipeline, {}, "bench")
    env = {**os.environ, "GENNAKER_DB": url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gennaker", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    # CPU from the moment the workers have registered (their imports and start-up are not counted)
    while True:
        with rt.db.read() as conn:
            if conn.execute(select(func.count()).select_from(workers)).scalar_one() >= n:
                break
        time.sleep(0.05)
    workers_before = cpu_seconds([p.pid for p in procs])
    pg_before = cpu_seconds()
    while True:
        with rt.db.read() as conn:
            c = views.status_counts(conn)
        if c.get("SUCCEEDED", 0) >= executions:
            break
        time.sleep(0.2)
    workers_cpu = cpu_seconds([p.pid for p in procs]) - workers_before
    pg_cpu = cpu_seconds() - pg_before
    with rt.db.read() as conn:
        first, last = conn.execute(
            select(func.min(executions_table.c.started_at), func.max(executions_table.c.ended_at))
        ).one()
    for p in procs:
        p.terminate()
        p.wait(20)
    rt.db.dispose()
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    stages_n = executions * 3
    elapsed = last - first
    return (
        f"| {executions} queued no-op executions (3 stages each), PostgreSQL, {n} worker process(es) | "
        f"**{stages_n / elapsed:.0f} stages/s** ({executions / elapsed:.1f} executions/s; {elapsed:.1f} s); "
        f"CPU per stage: workers {workers_cpu / stages_n * 1000:.2f} ms, "
        f"PostgreSQL {pg_cpu / stages_n * 1000:.2f} ms; {stages_n / elapsed / cost['per_s']:.2f} stages per raw "
        f"single-connection commit time; {load()} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--section", default="Engine (bench/engine.py)", help="the docs/benchmarks.md section to write")
    ap.add_argument("--print-only", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = [yardstick()]
        rows += overhead(tmp, 100 if args.quick else 1000, 100)
        rows += waiting(tmp, 100 if args.quick else 1000)
        rows += throughput(tmp, 200 if args.quick else 1000, [1, 2, 4])
    body = [machine_line(), "", "| measurement | result |", "|---|---|", *rows]
    print("\n".join(body))
    if not args.quick and not args.print_only:
        write_section(args.section, "\n".join(body))


if __name__ == "__main__":
    main()
