"""Durable jobs: idempotent scheduling, every attempt recorded, backoff and a visible give-up, a killed
worker's job taken over after its lease, and two workers on PostgreSQL never running one job twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from gennaker.engine import jobs
from gennaker.engine.job_tables import jobs as jobs_table
from gennaker.engine.jobs import Done, Failed, Job, JobContext, JobRunner, JobSettings, NewJob, Retry
from gennaker.store.db import Database, open_database
from tests.conftest import fresh_postgres_database
from tests.core.conftest import wait_for


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = open_database(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield d
    d.dispose()


@pytest.fixture
def pg_db() -> Iterator[Database]:
    with fresh_postgres_database("gennaker_jobs") as d:
        yield d


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def _job(db: Database, key: str) -> dict:
    with db.read() as conn:
        row = jobs.get(conn, key)
        assert row is not None
        row["attempt_rows"] = jobs.attempts_of(conn, row["id"])
    return row


def test_schedule_is_idempotent_by_key_and_cancel_stops_a_pending_job(db: Database) -> None:
    with db.begin() as conn:
        assert jobs.schedule(conn, "echo", "k1", {"n": 1}, time.time())
        assert not jobs.schedule(conn, "echo", "k1", {"n": 2}, time.time())  # same key: nothing new
        assert jobs.schedule(conn, "echo", "k2", {"n": 3}, time.time())
        assert jobs.cancel(conn, "k2")
        assert not jobs.cancel(conn, "k2")  # already canceled
    seen: list[int] = []
    runner = JobRunner(db, {"echo": lambda job, ctx: seen.append(job.payload["n"]) or Done("ok")}, "w1")
    assert runner.run_due() == 1
    assert seen == [1]  # the first payload; the canceled job never ran
    assert _job(db, "k1")["status"] == "done" and _job(db, "k1")["note"] == "ok"
    assert _job(db, "k2")["status"] == "canceled"
    with db.begin() as conn:  # a done job's key still counts: scheduling it again is a no-op
        assert not jobs.schedule(conn, "echo", "k1", {"n": 4}, time.time())
    assert runner.run_due() == 0


def test_retry_backs_off_records_every_attempt_and_gives_up_visibly(db: Database) -> None:
    clock = Clock()
    calls: list[float] = []

    def flaky(job: Job, ctx: JobContext) -> jobs.JobOutcome:
        calls.append(ctx.now())
        if job.attempt == 2:
            raise ConnectionError("receiver went away")
        return Retry(after=30.0, error=f"HTTP 500 on attempt {job.attempt}")

    with db.begin() as conn:
        jobs.schedule(conn, "flaky", "f", {}, clock.t, max_attempts=3)
    runner = JobRunner(db, {"flaky": flaky}, "w1", clock=clock)
    assert runner.run_due() == 1
    row = _job(db, "f")
    assert row["status"] == "pending" and row["due_at"] == pytest.approx(clock.t + 30.0)
    assert runner.run_due() == 0  # not due before its backoff
    clock.t += 30.0
    assert runner.run_due() == 1  # attempt 2 raises: a retry with the default backoff (2 s after 2 tries)
    row = _job(db, "f")
    assert row["due_at"] == pytest.approx(clock.t + jobs.backoff(2))
    assert "ConnectionError: receiver went away" in row["last_error"]
    clock.t += 10.0
    assert runner.run_due() == 1
    row = _job(db, "f")
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["last_error"] == "gave up after 3 attempts: HTTP 500 on attempt 3"
    outcomes = [(a["attempt"], a["outcome"], a["worker_id"]) for a in row["attempt_rows"]]
    assert outcomes == [(1, "retry", "w1"), (2, "retry", "w1"), (3, "failed", "w1")]
    assert all(a["finished_at"] >= a["started_at"] for a in row["attempt_rows"])
    clock.t += 3600
    assert runner.run_due() == 0 and len(calls) == 3  # a failed job is kept, never run again


def test_failed_is_final_and_done_schedules_its_follow_up_atomically(db: Database) -> None:
    def tick(job: Job, ctx: JobContext) -> jobs.JobOutcome:
        n = job.payload["n"]
        if n == 3:
            return Failed("enough")
        return Done(then=[NewJob("tick", f"tick:{n + 1}", {"n": n + 1}, ctx.now())])

    with db.begin() as conn:
        jobs.schedule(conn, "tick", "tick:1", {"n": 1}, time.time())
    assert JobRunner(db, {"tick": tick}, "w").run_due() == 3  # periodic work: each run schedules the next
    assert [_job(db, f"tick:{n}")["status"] for n in (1, 2, 3)] == ["done", "done", "failed"]
    assert _job(db, "tick:3")["last_error"] == "enough"


def test_a_worker_without_a_handler_for_a_kind_leaves_its_jobs_alone(db: Database) -> None:
    with db.begin() as conn:
        jobs.schedule(conn, "other", "o", {}, time.time())
    assert JobRunner(db, {"echo": lambda j, c: Done()}, "w").run_due() == 0
    assert _job(db, "o")["status"] == "pending" and _job(db, "o")["attempts"] == 0


_HANGING_WORKER = """
import sys, time
from pathlib import Path
from gennaker.engine.jobs import JobRunner, JobSettings
from gennaker.store.db import open_database
db = open_database(sys.argv[1])
def hang(job, ctx):
    Path(sys.argv[2]).write_text(str(job.attempt))
    time.sleep(600)
JobRunner(db, {"slow": hang}, "doomed", JobSettings(lease=1.0)).run_due()
"""


def test_a_killed_workers_job_is_taken_over_after_its_lease(db: Database, tmp_path: Path) -> None:
    with db.begin() as conn:
        jobs.schedule(conn, "slow", "s", {}, time.time())
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_WORKER, str(db.engine.url), str(marker)])
    try:
        wait_for(marker.exists, timeout=30)
        survivor = JobRunner(db, {"slow": lambda j, c: Done(f"finished by {c.worker_id}")}, "survivor")
        assert survivor.run_due() == 0  # the dead worker's lease still holds: nobody runs it twice
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: survivor.run_due() == 1, timeout=10, every=0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    row = _job(db, "s")
    assert row["status"] == "done" and row["note"] == "finished by survivor"
    attempts = [(a["attempt"], a["worker_id"], a["outcome"]) for a in row["attempt_rows"]]
    assert attempts == [(1, "doomed", "abandoned"), (2, "survivor", "done")]


def test_a_job_whose_workers_keep_dying_gives_up_visibly(db: Database) -> None:
    clock = Clock()
    with db.begin() as conn:
        jobs.schedule(conn, "slow", "s", {}, clock.t, max_attempts=2)
    for n in range(2):  # two workers claim it and die (never finish)
        assert len(jobs.claim(db, f"dead{n}", ["slow"], clock.t, 1.0, 10)) == 1
        clock.t += 2.0
    assert jobs.claim(db, "third", ["slow"], clock.t, 1.0, 10) == []
    row = _job(db, "s")
    assert row["status"] == "failed" and row["last_error"] == "gave up: 2 attempt(s) started and none finished"
    assert [a["outcome"] for a in row["attempt_rows"]] == ["abandoned", "abandoned"]


def test_two_workers_on_postgres_never_run_one_job_twice(pg_db: Database) -> None:
    count = 60
    with pg_db.begin() as conn:
        for i in range(count):
            jobs.schedule(conn, "count", f"c{i}", {"i": i}, time.time())
    runs: list[tuple[str, str]] = []
    lock = threading.Lock()
    running: set[str] = set()
    overlaps: list[str] = []

    def count_job(job: Job, ctx: JobContext) -> jobs.JobOutcome:
        with lock:
            if job.key in running:
                overlaps.append(job.key)
            running.add(job.key)
        time.sleep(0.01)
        with lock:
            running.discard(job.key)
            runs.append((job.key, ctx.worker_id))
        return Done()

    settings = JobSettings(lease=10.0, poll=0.02, threads=3)
    runners = [JobRunner(pg_db, {"count": count_job}, f"w{n}", settings) for n in range(2)]
    for r in runners:
        r.start()
    try:
        wait_for(lambda: len(runs) >= count, timeout=30)
        time.sleep(0.2)  # a duplicate would show up now
    finally:
        for r in runners:
            r.stop()
    keys = [k for k, _ in runs]
    assert sorted(keys) == sorted(f"c{i}" for i in range(count)) and overlaps == []
    assert {w for _, w in runs} == {"w0", "w1"}  # both took part
    with pg_db.read() as conn:
        statuses = {jobs.get(conn, f"c{i}")["status"] for i in range(count)}  # type: ignore[index]
    assert statuses == {"done"}


def test_a_job_whose_lease_ran_out_is_not_started_again_beside_itself(db: Database) -> None:
    """A lease can run out while the job still runs (the loop that extends it was held up); the
    runner's own claim then finds it due again, and must not start it a second time beside the first
    (a notification sent twice), nor count the first attempt as abandoned."""
    entered, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def slow(job: Job, ctx: JobContext) -> jobs.JobOutcome:
        runs.append(job.attempt)
        entered.set()
        release.wait(10)
        return Done("sent")

    with db.begin() as conn:
        jobs.schedule(conn, "slow", "s1", {}, time.time())
    runner = JobRunner(db, {"slow": slow}, "w1", JobSettings(lease=30.0, poll=0.02, threads=2))
    runner.start()
    try:
        assert entered.wait(10)
        with db.begin() as conn:  # as if the extension were late: the lease is over
            conn.execute(update(jobs_table).where(jobs_table.c.key == "s1").values(lease_until=time.time() - 1))
        time.sleep(0.5)  # the loop polls every 20 ms
        release.set()
        wait_for(lambda: _job(db, "s1")["status"] == "done", timeout=10)
    finally:
        runner.stop()
    row = _job(db, "s1")
    assert runs == [1]
    assert [a["outcome"] for a in row["attempt_rows"]] == ["done"]


def test_an_error_recording_a_job_s_outcome_is_logged_and_the_job_tried_again(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with db.begin() as conn:
        jobs.schedule(conn, "echo", "e1", {}, time.time())
    clock = Clock()
    runner = JobRunner(db, {"echo": lambda job, ctx: Done()}, "w1", JobSettings(lease=5.0), clock=clock)

    def broken_finish(*_a: object) -> bool:
        raise RuntimeError("a bug recording the outcome")

    monkeypatch.setattr(jobs, "finish", broken_finish)
    assert runner.run_due() == 1
    assert "a bug recording the outcome" in caplog.text
    monkeypatch.undo()
    clock.t += 6  # the lease ran out: claimed and run again
    assert runner.run_due() == 1 and _job(db, "e1")["status"] == "done"
