"""Engine benchmarks: orchestration overhead per no-op stage, memory of 1,000 waiting executions,
and throughput with 1, 2 and 4 workers on PostgreSQL. Writes a section of docs/benchmarks.md.

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
from pathlib import Path

from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.engine.runner import EngineSettings
from gennaker.runtime import Runtime, build_runtime
from gennaker.spec.config import Config

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
    c = run_one(rt, chain(n_chain))
    starts = sorted(s["started_at"] for s in c["stages"])
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    f = run_one(rt, fan(width))
    return [
        f"| {n_chain}-stage chain, SQLite, 1 process | median {statistics.median(gaps) * 1000:.2f} ms per stage "
        f"(p95 {sorted(gaps)[int(len(gaps) * 0.95)] * 1000:.2f} ms); total {c['total']:.2f} s |",
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
    for n in worker_counts:
        name = f"gennaker_bench_{uuid.uuid4().hex[:8]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        url = PG.rsplit("/", 1)[0] + f"/{name}"
        rt = build_runtime(url, config=Config())
        pipeline = rt.pipeline_from_text(
            "name: t\napplication: bench\nstages:\n  - {id: a, type: wait, duration: 0s}\n"
            "  - {id: b, type: wait, duration: 0s, requires: [a]}\n"
            "  - {id: c, type: wait, duration: 0s, requires: [b]}\n"
        )
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
        time.sleep(2.0)  # let the workers start
        t0 = time.perf_counter()
        for _ in range(executions):
            ops.start_execution(rt.db, pipeline, {}, "bench")
        while True:
            with rt.db.read() as conn:
                c = views.status_counts(conn)
            if c.get("SUCCEEDED", 0) >= executions:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        for p in procs:
            p.terminate()
            p.wait(20)
        rt.db.dispose()
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        rows.append(
            f"| {executions} no-op executions (3 stages each), PostgreSQL, {n} worker process(es) | "
            f"{executions / elapsed:.1f} executions/s ({executions * 3 / elapsed:.0f} stages/s); {elapsed:.1f} s |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = overhead(tmp, 100 if args.quick else 1000, 100)
        rows += waiting(tmp, 100 if args.quick else 1000)
        rows += throughput(tmp, 50 if args.quick else 200, [1, 2, 4])
    body = [machine_line(), "", "| measurement | result |", "|---|---|", *rows]
    print("\n".join(body))
    if not args.quick:
        write_section("Engine (bench/engine.py)", "\n".join(body))


if __name__ == "__main__":
    main()
