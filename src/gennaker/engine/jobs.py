"""Durable timed work: a job is a row with a kind, a unique key, a payload and a due time.

Anything that must happen later, and surely (send a notification, re-notify while a judgment waits,
escalate an incident), is a job. The engine knows nothing of what jobs do: the composition root
hands each worker a mapping from kind to handler (``Runtime.job_handlers``), and the worker's
``JobRunner`` claims due jobs of those kinds and calls them.

- ``schedule`` is idempotent by key (a repeat of the same work is nothing new), so a handler that
  schedules its follow-up and dies before it finishes schedules nothing twice when it runs again.
  Periodic work is a handler that schedules itself again under a new key.
- A claim takes a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer makes the
  claim atomic, as in ``queue.py``). Each attempt is a ``job_attempts`` row written with the claim,
  before the handler acts, and finished after it; an attempt whose worker died stays visible as
  ``abandoned`` and the job is claimed again when the lease runs out. Two workers never hold one job.
- A handler answers ``Done``, ``Retry(after, error)`` or ``Failed(error)``; an exception is a retry
  with backoff. After ``max_attempts`` the job is ``failed`` with its last error: kept, never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from gennaker.engine.job_tables import KEY_MAX, job_attempts, jobs
from gennaker.store.db import Database

log = logging.getLogger("gennaker.jobs")

PENDING, DONE, FAILED, CANCELED = "pending", "done", "failed", "canceled"
DEFAULT_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Job:
    """A claimed job, as its handler sees it. ``attempt`` counts from 1."""

    id: int
    key: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    due_at: float

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


@dataclass(frozen=True)
class NewJob:
    """A job to schedule in the same transaction that records a handler's ``Done``."""

    kind: str
    key: str
    payload: dict[str, Any]
    due_at: float


@dataclass(frozen=True)
class Done:
    note: str | None = None
    then: Sequence[NewJob] = ()


@dataclass(frozen=True)
class Retry:
    after: float  # seconds from now
    error: str


@dataclass(frozen=True)
class Failed:
    error: str


JobOutcome = Done | Retry | Failed


@dataclass
class JobContext:
    """What a handler may use beside its job: the database, the clock, and scheduling more work."""

    db: Database
    worker_id: str
    now: Callable[[], float] = time.time

    def schedule(self, kind: str, key: str, payload: dict[str, Any], due_at: float) -> bool:
        with self.db.begin() as conn:
            return schedule(conn, kind, key, payload, due_at)


JobHandler = Callable[[Job, JobContext], JobOutcome]


def backoff(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, 4, … up to ``cap``)."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


# ---- scheduling -------------------------------------------------------------------------------------
def schedule(
    conn: Connection,
    kind: str,
    key: str,
    payload: dict[str, Any],
    due_at: float,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> bool:
    """Insert a job unless one with ``key`` exists (whatever its status); True if it is new."""
    if not key or len(key) > KEY_MAX:
        raise ValueError(f"a job key must be 1 to {KEY_MAX} characters, got {len(key)}")
    dialect: Any = sqlite if conn.dialect.name == "sqlite" else postgresql  # both have ON CONFLICT
    stmt = dialect.insert(jobs).values(
        key=key,
        kind=kind,
        payload=payload,
        status=PENDING,
        due_at=due_at,
        attempts=0,
        max_attempts=max(1, max_attempts),
        created_at=time.time(),
    )
    # RETURNING, not rowcount: on PostgreSQL rowcount is -1 here (SQLAlchemy returns the primary key)
    inserted = conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]).returning(jobs.c.id)).first()
    return inserted is not None


def cancel(conn: Connection, key: str) -> bool:
    """Cancel a pending job (one being run finishes its attempt, but its outcome is not applied)."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.key == key, jobs.c.status == PENDING)
        .values(status=CANCELED, finished_at=time.time(), lease_owner=None, lease_until=None)
    )
    return result.rowcount == 1


# ---- claiming and finishing --------------------------------------------------------------------------
def _claim_statement(for_update: bool, by_key: bool = False) -> Any:
    due = (
        select(jobs.c.id)
        .where(
            jobs.c.status == PENDING,
            jobs.c.due_at <= bindparam("now"),
            or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < bindparam("now")),
            jobs.c.kind.in_(bindparam("kinds", expanding=True)),
            # The claimer's own jobs still running: a lease that ran out while one ran is no reason to
            # start it again beside itself (the runner extends it again, and the running one finishes it).
            jobs.c.id.not_in(bindparam("busy", expanding=True)),
        )
        .order_by(jobs.c.due_at)
        .limit(bindparam("lim"))
    )
    if by_key:
        due = due.where(jobs.c.key == bindparam("only_key"))
    if for_update:
        due = due.with_for_update(skip_locked=True, of=jobs)
    return (
        update(jobs)
        .where(jobs.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=bindparam("me"), lease_until=bindparam("until"), attempts=jobs.c.attempts + 1)
        .returning(
            jobs.c.id,
            jobs.c.key,
            jobs.c.kind,
            jobs.c.payload,
            jobs.c.attempts,
            jobs.c.max_attempts,
            jobs.c.due_at,
        )
    )


_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}


def claim(
    db: Database,
    worker_id: str,
    kinds: Sequence[str],
    now: float,
    lease: float,
    limit: int,
    key: str | None = None,
    busy: Sequence[int] = (),
) -> list[Job]:
    """Lease up to ``limit`` due jobs of ``kinds`` (or the one job ``key``, if due) and record an
    attempt of each before it runs. ``busy``: ids of jobs the caller is running, never claimed."""
    if not kinds or limit <= 0:
        return []
    params = {"now": now, "me": worker_id, "until": now + lease, "lim": limit, "kinds": list(kinds), "busy": list(busy)}
    statement = _CLAIM[not db.is_sqlite]
    if key is not None:  # not a hot path: built when asked
        statement = _claim_statement(not db.is_sqlite, by_key=True)
        params["only_key"] = key
    out: list[Job] = []
    with db.begin() as conn:
        rows = conn.execute(statement, params).all()
        for r in rows:
            # an attempt still open belonged to a worker that died or lost its lease
            conn.execute(
                update(job_attempts)
                .where(job_attempts.c.job_id == r.id, job_attempts.c.finished_at.is_(None))
                .values(outcome="abandoned", finished_at=now, error="its worker stopped before finishing")
            )
            if r.attempts > r.max_attempts:
                started = r.attempts - 1
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == r.id)
                    .values(
                        status=FAILED,
                        finished_at=now,
                        lease_owner=None,
                        lease_until=None,
                        attempts=started,
                        last_error=f"gave up: {started} attempt(s) started and none finished",
                    )
                )
                log.warning("job %s (%s) gave up after %d abandoned attempts", r.key, r.kind, started)
                continue
            conn.execute(
                insert(job_attempts).values(job_id=r.id, attempt=r.attempts, worker_id=worker_id, started_at=now)
            )
            out.append(Job(r.id, r.key, r.kind, dict(r.payload or {}), r.attempts, r.max_attempts, r.due_at))
    out.sort(key=lambda j: (j.due_at, j.id))
    return out


_ANY_DUE = (
    select(jobs.c.id)
    .where(
        jobs.c.status == PENDING,
        jobs.c.due_at <= bindparam("now"),
        or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < bindparam("now")),
        jobs.c.kind.in_(bindparam("kinds", expanding=True)),
    )
    .limit(1)
)


def any_due(db: Database, kinds: Sequence[str], now: float) -> bool:
    """Whether a claim would find work: a read, so an idle poll never takes SQLite's write lock."""
    with db.read() as conn:
        return conn.execute(_ANY_DUE, {"now": now, "kinds": list(kinds)}).first() is not None


def finish(db: Database, job: Job, worker_id: str, outcome: JobOutcome, now: float) -> bool:
    """Record how an attempt ended and apply it to the job; False if the job was no longer ours (its
    lease ran out and another worker has it, or it was canceled): the attempt is recorded, the job
    left as the other party made it."""
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
    if isinstance(outcome, Done):
        label, error = "done", None
        values.update(status=DONE, finished_at=now, note=outcome.note)
    elif isinstance(outcome, Retry) and not job.last_attempt:
        label, error = "retry", outcome.error
        values.update(due_at=now + max(0.0, outcome.after), last_error=outcome.error)
    elif isinstance(outcome, Retry):
        label, error = "failed", outcome.error
        values.update(
            status=FAILED, finished_at=now, last_error=f"gave up after {job.attempt} attempts: {outcome.error}"
        )
    else:
        label, error = "failed", outcome.error
        values.update(status=FAILED, finished_at=now, last_error=outcome.error)
    with db.begin() as conn:
        applied = (
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.lease_owner == worker_id, jobs.c.status == PENDING)
                .values(**values)
            ).rowcount
            == 1
        )
        if not applied:
            error = f"{error + '; ' if error else ''}not applied: the job was taken over or canceled meanwhile"
        conn.execute(
            update(job_attempts)
            .where(
                job_attempts.c.job_id == job.id,
                job_attempts.c.attempt == job.attempt,
                job_attempts.c.worker_id == worker_id,
            )
            .values(finished_at=now, outcome=label, error=error)
        )
        if applied and isinstance(outcome, Done):
            for nxt in outcome.then:
                schedule(conn, nxt.kind, nxt.key, nxt.payload, nxt.due_at)
    return applied


def extend_leases(db: Database, worker_id: str, ids: Sequence[int], until: float) -> None:
    if ids:
        with db.begin() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(list(ids)), jobs.c.lease_owner == worker_id, jobs.c.status == PENDING)
                .values(lease_until=until)
            )


def run_one(job: Job, handler: JobHandler, ctx: JobContext) -> JobOutcome:
    """Call a handler; an exception is a retry with backoff (logged with its traceback, recorded)."""
    try:
        outcome = handler(job, ctx)
    except Exception as exc:
        log.exception("job %s (%s) attempt %d raised", job.key, job.kind, job.attempt)
        return Retry(backoff(job.attempt), f"{type(exc).__name__}: {exc}")
    if not isinstance(outcome, Done | Retry | Failed):
        return Failed(f"handler of {job.kind} returned {outcome!r}, not Done, Retry or Failed")
    return outcome


# ---- reading --------------------------------------------------------------------------------------
def get(conn: Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(select(jobs).where(jobs.c.key == key)).first()
    return dict(row._mapping) if row is not None else None


def attempts_of(conn: Connection, job_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(job_attempts).where(job_attempts.c.job_id == job_id).order_by(job_attempts.c.attempt, job_attempts.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


# ---- the runner a worker hosts ---------------------------------------------------------------------
@dataclass
class JobSettings:
    lease: float = 30.0  # a handler's network calls time out well within this
    poll: float = 0.2  # idle poll of due jobs
    threads: int = 2  # jobs run on threads of their own: a slow channel never delays a stage
    extend_every: float = 5.0

    @classmethod
    def from_env(cls) -> JobSettings:
        """Timings overridable for tests and tuning (GENNAKER_JOB_LEASE_SECONDS, …_POLL_SECONDS, …_THREADS)."""
        import os

        s = cls()
        if os.environ.get("GENNAKER_JOB_LEASE_SECONDS"):
            s.lease = float(os.environ["GENNAKER_JOB_LEASE_SECONDS"])
            s.extend_every = min(s.extend_every, s.lease / 3)
        if os.environ.get("GENNAKER_JOB_POLL_SECONDS"):
            s.poll = float(os.environ["GENNAKER_JOB_POLL_SECONDS"])
        if os.environ.get("GENNAKER_JOB_THREADS"):
            s.threads = max(1, int(os.environ["GENNAKER_JOB_THREADS"]))
        return s


@dataclass
class JobRunner:
    """Claims due jobs of the kinds it has handlers for and runs them on a small pool of its own."""

    db: Database
    handlers: Mapping[str, JobHandler]
    worker_id: str
    settings: JobSettings = field(default_factory=JobSettings)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._inflight: dict[int, Job] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    def context(self) -> JobContext:
        return JobContext(db=self.db, worker_id=self.worker_id, now=self.clock)

    def run_due(self, limit: int = 100) -> int:
        """Claim and run due jobs on this thread until none is due (tests, one-shot commands)."""
        ran = 0
        while ran < limit and self._run_one_claimed():
            ran += 1
        return ran

    def run_key(self, key: str) -> bool:
        """Run the one job ``key`` now if it is due and nobody holds it (``notifications test``)."""
        return self._run_one_claimed(key)

    def _run_one_claimed(self, key: str | None = None) -> bool:
        """Claim one due job (``key``'s, if given) and run it on this thread; False if none was due."""
        with self._lock:
            busy = list(self._inflight)
        batch = claim(self.db, self.worker_id, list(self.handlers), self.clock(), self.settings.lease, 1, key, busy)
        for job in batch:
            with self._lock:
                self._inflight[job.id] = job  # extended by the runner's loop, if it runs, and never claimed again
            self._run(job)
        return bool(batch)

    def _run(self, job: Job) -> None:
        try:
            outcome = run_one(job, self.handlers[job.kind], self.context())
            finish(self.db, job, self.worker_id, outcome, self.clock())
        except DBAPIError as exc:  # not recorded: the lease runs out and the job is tried again
            log.warning("finishing job %s failed: %s", job.key, exc.orig)
        except Exception:  # a bug outside the handler (which run_one guards): logged whole, tried again likewise
            log.exception("finishing job %s failed", job.key)
        finally:
            with self._lock:
                self._inflight.pop(job.id, None)
            self._wake.set()

    # ---- as a thread of a worker -------------------------------------------------------------------
    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.settings.threads, thread_name_prefix="gennaker-job")
        self._thread = threading.Thread(target=self._loop, name="gennaker-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        assert self._pool is not None
        s = self.settings
        last_extend = self.clock()
        while not self._stop.is_set():
            with self._lock:
                free = s.threads - len(self._inflight)
            batch: list[Job] = []
            try:
                if free > 0 and any_due(self.db, list(self.handlers), self.clock()):
                    with self._lock:
                        busy = list(self._inflight)
                    batch = claim(self.db, self.worker_id, list(self.handlers), self.clock(), s.lease, free, busy=busy)
                if self.clock() - last_extend >= s.extend_every:
                    last_extend = self.clock()
                    with self._lock:
                        ids = list(self._inflight)
                    extend_leases(self.db, self.worker_id, ids, last_extend + s.lease)
            except DBAPIError as exc:
                log.warning("claiming jobs failed: %s", exc.orig)
                self._stop.wait(1.0)
                continue
            except Exception:  # a bug: logged whole; the loop must not die of it (no job would run)
                log.exception("claiming jobs failed")
                self._stop.wait(1.0)
                continue
            for job in batch:
                with self._lock:
                    self._inflight[job.id] = job
                self._pool.submit(self._run, job)
            if not batch:
                self._wake.wait(s.poll)
                self._wake.clear()
