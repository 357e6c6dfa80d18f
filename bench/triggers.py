"""Trigger benchmarks: cron firing accuracy with many schedules, and webhook delivery → execution.

Run: python bench/triggers.py [--schedules 1000] [--deliveries 200] [--backends sqlite,postgresql]

- cron: N registered pipelines, each ``* * * * *``, and two ``gennaker worker`` processes. The workers
  reconcile at start (one job per next firing), then their job runners claim each firing when due.
  Measured for the first whole minute after the workers start: scheduled time → ``trigger_firings``
  row (the execution created, in the same transaction) and → the execution's ``started_at``.
  The bench starts the workers 20-35 s before a minute, so a run waits at most about a minute.
- webhook: a real ``gennaker server`` (uvicorn, its in-process worker) on loopback, one pipeline with a
  GitHub git trigger; D signed pushes, one after another: the HTTP answer (the execution is created
  before the 202), and delivery sent → the execution's ``started_at`` (a worker took it).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from gennaker.engine import operations as ops
from gennaker.runtime import build_runtime
from gennaker.spec.config import Config
from gennaker.store.tables import executions
from gennaker.triggers.tables import trigger_firings

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_line

PG = os.environ.get("GENNAKER_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-webhook-secret"


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh database URL of the backend, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'triggers-{uuid.uuid4().hex[:6]}.db'}"
        return
    import psycopg

    admin = psycopg.connect(PG.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    name = f"gennaker_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"p50 {statistics.median(ms):.0f} ms, p99 {pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def workers(url: str, n: int, extra: dict[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "GENNAKER_DB": url, **(extra or {})}
    cmd = [sys.executable, "-m", "gennaker", "worker"]
    return [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---- cron ---------------------------------------------------------------------------------------------
def cron(backend: str, tmp: Path, n: int, n_workers: int) -> str:
    with database(backend, tmp) as url:
        rt = build_runtime(url, config=Config())
        with rt.db.begin() as conn:
            for i in range(n):
                doc = (
                    f"name: cron-{i:04d}\napplication: bench\n"
                    "triggers:\n  - {type: cron, schedule: '* * * * *', timezone: UTC}\n"
                    "stages:\n  - {id: a, type: wait, duration: 0s}\n"
                )
                ops.save_pipeline(conn, rt.pipeline_from_text(doc), "bench", registered=True)
        # start 20-35 s before a minute: the reconcile at start schedules that minute's firings
        while not 25 <= time.time() % 60 <= 40:
            time.sleep(0.5)
        started = time.time()
        minute = (started // 60 + 1) * 60
        procs = workers(url, n_workers)
        try:
            deadline = minute + 600
            while time.time() < deadline:
                with rt.db.read() as conn:
                    rows = conn.execute(
                        select(trigger_firings.c.fired_at, executions.c.started_at)
                        .join(executions, executions.c.id == trigger_firings.c.execution_id)
                        .where(trigger_firings.c.key.like(f"cron:%:{int(minute)}"))
                    ).all()
                if len(rows) >= n and all(r.started_at is not None for r in rows):
                    break
                time.sleep(0.5)
            the_load = load()
        finally:
            stop(procs)
            rt.db.dispose()
    created = [r.fired_at - minute for r in rows]
    begun = [r.started_at - minute for r in rows if r.started_at is not None]
    if not created:
        return f"| cron, {backend}, {n} schedules, {n_workers} workers | nothing fired in 10 min |"
    return (
        f"| cron, {backend}, {n} schedules `* * * * *`, {n_workers} worker processes | fired {len(created)}/{n}; "
        f"scheduled → execution created: {summary(created)}; → execution started: "
        f"{summary(begun) if begun else 'none'}; workers started {minute - started:.0f} s before; {the_load} |"
    )


# ---- webhook --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def push(i: int) -> bytes:
    sha = hashlib.sha1(str(i).encode()).hexdigest()
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "after": sha,
            "deleted": False,
            "repository": {"full_name": "acme/shop"},
            "head_commit": {"id": sha, "message": f"change {i}", "author": {"username": "bench"}},
            "commits": [{"added": [], "modified": ["src/app.py"], "removed": []}],
            "pusher": {"name": "bench"},
        }
    ).encode()


def webhook(backend: str, tmp: Path, n: int) -> str:
    with database(backend, tmp) as url:
        rt = build_runtime(url, config=Config())
        doc = (
            "name: shop-ci\napplication: shop\ntriggers:\n"
            "  - {type: git, provider: github, repository: acme/shop, branches: [main], secret_env: BENCH_SECRET}\n"
            "stages:\n  - {id: a, type: wait, duration: 0s}\n"
        )
        with rt.db.begin() as conn:
            ops.save_pipeline(conn, rt.pipeline_from_text(doc), "bench", registered=True)
        port = free_port()
        env = {**os.environ, "GENNAKER_DB": url, "BENCH_SECRET": SECRET}
        server = subprocess.Popen(
            [sys.executable, "-m", "gennaker", "server", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{base}/api/health", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            answers, sent_at, ids, statuses = [], {}, [], []
            for i in range(n):
                body = push(i)
                sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                req = urllib.request.Request(
                    f"{base}/hooks/git/github",
                    data=body,
                    method="POST",
                    headers={
                        "X-GitHub-Event": "push",
                        "X-GitHub-Delivery": f"bench-{uuid.uuid4().hex}",
                        "X-Hub-Signature-256": sig,
                        "Content-Type": "application/json",
                    },
                )
                t0 = time.time()
                with urllib.request.urlopen(req, timeout=30) as r:
                    reply = json.loads(r.read())
                    statuses.append(r.status)
                answers.append(time.time() - t0)
                for e in reply["executions"]:
                    ids.append(e["execution_id"])
                    sent_at[e["execution_id"]] = t0
            deadline = time.time() + 300
            while time.time() < deadline:
                with rt.db.read() as conn:
                    rows = conn.execute(
                        select(executions.c.id, executions.c.created_at, executions.c.started_at).where(
                            executions.c.id.in_(ids)
                        )
                    ).all()
                if len(rows) == len(ids) and all(r.started_at is not None for r in rows):
                    break
                time.sleep(0.2)
            the_load = load()
        finally:
            server.terminate()
            server.wait(20)
            rt.db.dispose()
    created = [r.created_at - sent_at[r.id] for r in rows]
    begun = [r.started_at - sent_at[r.id] for r in rows if r.started_at is not None]
    codes = ",".join(sorted({str(s) for s in statuses}))
    return (
        f"| webhook (GitHub push, signed), {backend}, {n} deliveries one after another, `gennaker server` "
        f"(4 task threads) | HTTP {codes}; answer {summary(answers)}; delivery → execution created "
        f"{summary(created)}; → execution started {summary(begun) if begun else 'none'} "
        f"({len(begun)}/{len(ids)}); {the_load} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=1000)
    ap.add_argument("--deliveries", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--only", choices=["cron", "webhook"], default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for backend in args.backends.split(","):
            if args.only in (None, "webhook"):
                rows.append(webhook(backend, Path(d), args.deliveries))
                print(rows[-1], flush=True)
            if args.only in (None, "cron"):
                rows.append(cron(backend, Path(d), args.schedules, args.workers))
                print(rows[-1], flush=True)
    print("\n".join([machine_line(), "", "| measurement | result |", "|---|---|", *rows]))


if __name__ == "__main__":
    main()
