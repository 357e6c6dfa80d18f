"""A worker: claims due messages, hands them to a small thread pool, beats its heart, repairs zombies.

Any number of workers may run against one database; none is special. A worker that dies stops
beating: its leases run out and its pinned messages become claimable by the others.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from gennaker.engine import counters, logcontext, queue
from gennaker.engine.jobs import JobHandler, JobRunner, JobSettings
from gennaker.engine.messages import Message, RunTask, StartExecution, StartStage, stage_of
from gennaker.engine.model import STAGE_ACTIVE, STAGE_LETS_THROUGH, Status, new_id
from gennaker.engine.queue import Delivery
from gennaker.engine.runner import Engine, LeaseLost, final_status
from gennaker.engine.views import CAPABILITIES
from gennaker.store.tables import executions, messages, stages, workers

log = logging.getLogger("gennaker.worker")

# How many messages in a row a task thread takes straight from the handler before it claims from the
# queue again (oldest due first): a long chain must not keep a thread from the other executions.
MAX_STREAK = 16


class Worker:
    def __init__(
        self,
        engine: Engine,
        threads: int = 4,
        worker_id: str | None = None,
        upkeep: Callable[[], None] | None = None,
        upkeep_every: float = 2.0,
        job_handlers: Mapping[str, JobHandler] | None = None,
        job_settings: JobSettings | None = None,
    ):
        self.engine = engine
        # Work the host asks to be done every few seconds beside the queue (the runtime passes the
        # clouds' upkeep: replacing crashed local instances); the engine does not know what it is.
        self.upkeep = upkeep
        self.upkeep_every = upkeep_every
        self.db = engine.db
        self.settings = engine.settings
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{new_id()[-6:]}"
        self.threads = threads
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._inflight: dict[int, Delivery[Message]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gennaker-task")
        self._loops: list[threading.Thread] = []
        engine.on_push = self._wake.set
        # Durable jobs (notifications, timers) run beside the queue on threads of their own; the
        # composition root says which kinds this worker handles. None: no job thread at all.
        self.jobs = (
            JobRunner(engine.db, dict(job_handlers), self.id, job_settings or JobSettings()) if job_handlers else None
        )

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._beat()
        self.self_check()
        # The heartbeat beats alone on its thread: a slow self-check must not let a running task's lease
        # run out.
        loops: list[tuple[Callable[[], None], str]] = [
            (self._claim_loop, "claim"),
            (partial(self._every, self.settings.heartbeat, self._beat, "heartbeat"), "heartbeat"),
            (partial(self._every, self.settings.self_check_every, self.self_check, "self-check"), "self-check"),
        ]
        if self.upkeep is not None:
            loops.append((partial(self._every, self.upkeep_every, self.upkeep, "upkeep"), "upkeep"))
        for target, name in loops:
            t = threading.Thread(target=target, name=f"gennaker-{name}", daemon=True)
            t.start()
            self._loops.append(t)
        if self.jobs is not None:
            self.jobs.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._loops:
            t.join(timeout)
        if self.jobs is not None:
            self.jobs.stop(timeout)
        self._pool.shutdown(wait=True, cancel_futures=False)
        with self.db.begin() as conn:
            conn.execute(delete(workers).where(workers.c.id == self.id))

    def wake(self) -> None:
        self._wake.set()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    # ---- claiming -------------------------------------------------------------------------------
    def _claim_loop(self) -> None:
        s = self.settings
        while not self._stop.is_set():
            with self._lock:
                free = self.threads - len(self._inflight)
            batch: list[Delivery[Message]] = []
            if free > 0:
                try:
                    batch = queue.claim(self.db, self.id, time.time(), s.lease, free, s.worker_ttl)
                except DBAPIError as exc:  # database unreachable for a moment: say so, retry
                    log.warning("claiming messages failed: %s", exc.orig)
                    self._stop.wait(1.0)
                    continue
                except Exception:  # a bug: logged whole; the loop must not die of it (nothing would run)
                    log.exception("claiming messages failed")
                    self._stop.wait(1.0)
                    continue
            for msg in batch:
                if self._adopt(msg):
                    self._pool.submit(self._handle_and_continue, msg).add_done_callback(self._done)
            if not batch:
                self._wake.wait(s.poll)
                self._wake.clear()

    def _adopt(self, msg: Delivery[Message]) -> bool:
        """Take a claimed message in hand, unless one of our threads handles it already: its lease ran
        out while it ran (a late heartbeat) and a claim of ours found it due again. Running it a second
        time beside the first would repeat its work at once; the lease is ours again either way, the
        heartbeat extends it and the first handling acks it. From here its lease is extended too.

        The same message claimed again has its attempts counted up by the claim. An id in hand with no
        more attempts than that is a new row under an id the database reused (SQLite gives a deleted
        row's id to the next insert): the handler of the old one has committed and is letting go."""
        with self._lock:
            held = self._inflight.get(msg.id)
            if held is not None and msg.attempts > held.attempts:
                log.warning("message %s is still being handled here; not starting it a second time", msg.id)
                return False
            self._inflight[msg.id] = msg
            return True

    def _let_go(self, msg: Delivery[Message]) -> None:
        """Its handling is over: no more lease extensions (unless the id is a new message's by now)."""
        with self._lock:
            if self._inflight.get(msg.id) is msg:
                del self._inflight[msg.id]

    def _done(self, f: Future[None]) -> None:
        exc = None if f.cancelled() else f.exception()
        if exc is not None:  # the handlers' own errors are handled inside: this is a bug, never to be lost
            log.error("a task thread stopped on an error", exc_info=exc)
        self._wake.set()

    def _handle_and_continue(self, msg: Delivery[Message]) -> None:
        """Handle a message, then keep claiming and handling the next due one on this same thread
        while there is one: a chain of stages then costs no hand-off between threads per step."""
        current: Delivery[Message] | None = msg
        streak = 0  # messages taken straight from the previous handler: bounded, so chains stay fair
        while current is not None:
            taken = self._handle(current, take_next=streak < MAX_STREAK)
            current = None
            if taken is not None and self._adopt(taken):
                if self._stop.is_set():
                    self._give_back(taken)
                    return
                current, streak = taken, streak + 1
                continue
            streak = 0
            if self._stop.is_set():
                return
            s = self.settings
            try:
                nxt = queue.claim(self.db, self.id, time.time(), s.lease, 1, s.worker_ttl)
            except DBAPIError as exc:
                log.warning("claiming messages failed: %s", exc.orig)
                return
            if nxt and self._adopt(nxt[0]):
                current = nxt[0]

    def _give_back(self, msg: Delivery[Message]) -> None:
        """A message taken while stopping: due now for the other workers instead of after its lease."""
        try:
            queue.release(self.db, msg, self.id, time.time())
        except DBAPIError as exc:
            log.warning("could not give back message %s (its lease will expire): %s", msg.id, exc.orig)
        finally:
            self._let_go(msg)

    def _handle(self, msg: Delivery[Message], take_next: bool = False) -> Delivery[Message] | None:
        with logcontext.bound(msg.message.execution_id, stage_of(msg.message)):
            return self._handle_bound(msg, take_next)

    def _handle_bound(self, msg: Delivery[Message], take_next: bool) -> Delivery[Message] | None:
        """Handle a message; returns the next one its handler pushed leased to us, if it did."""
        try:
            if msg.attempts > 1:
                self._count(counters.REDELIVERIES)
            if msg.attempts > self.settings.max_message_attempts:
                self.engine.dead_letter(msg, self.id, "giving up")
            else:
                return self.engine.handle(msg, self.id, take_next=take_next)
        except LeaseLost as exc:
            log.info("%s", exc)
        except Exception as exc:
            log.exception("handling %s %s failed (attempt %s)", msg.kind, msg.id, msg.attempts)
            backoff = min(30.0, 0.5 * 2**msg.attempts)
            try:
                if msg.attempts >= self.settings.max_message_attempts:
                    self.engine.dead_letter(msg, self.id, f"{type(exc).__name__}: {exc}")
                else:
                    queue.release(self.db, msg, self.id, time.time() + backoff)
            except Exception:
                log.exception("could not release message %s; its lease will expire", msg.id)
        finally:
            self._let_go(msg)
        return None

    def _count(self, name: str) -> None:
        try:
            with self.db.begin() as conn:
                counters.increment(conn, name)
        except DBAPIError as exc:  # a total is worth a warning, never a lost message
            log.warning("could not count %s: %s", name, exc.orig)

    # ---- heartbeat and repair -------------------------------------------------------------------
    def _beat(self) -> None:
        now = time.time()
        values = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": now,
            "heartbeat_at": now,
        }
        with self._lock:
            ids = list(self._inflight)
        with self.db.begin() as conn:
            dialect: Any = sqlite if self.db.is_sqlite else postgresql  # both have INSERT … ON CONFLICT
            stmt = dialect.insert(workers).values(**values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now}))
            queue.extend_leases(conn, self.id, ids, now + self.settings.lease)

    def _every(self, seconds: float, work: Callable[[], object], what: str) -> None:
        """Do ``work`` every ``seconds`` until the worker stops. A round that fails is logged (a database
        that cannot be reached in a line, anything else with its traceback) and the next one tries
        again: the thread never dies of it."""
        while not self._stop.wait(seconds):
            try:
                work()
            except DBAPIError as exc:
                log.warning("%s failed: %s", what, exc.orig)
            except Exception:
                log.exception("%s failed", what)

    def self_check(self) -> int:
        """Repair executions that are RUNNING (or queued) with no message left: zombies. Returns count."""
        record_missing_capabilities(self.engine)
        return repair_zombies(self.engine)


def record_missing_capabilities(engine: Engine) -> int:
    """Stages of unfinished executions that were started before the engine recorded capabilities (an
    upgrade) get them now: a manual judgment waiting since then stays judgeable. Returns how many."""
    with engine.db.read() as conn:
        rows = conn.execute(
            select(stages.c.execution_id, stages.c.stage_id)
            .join(executions, executions.c.id == stages.c.execution_id)
            .where(
                executions.c.status.in_([Status.RUNNING, Status.PAUSED]),
                stages.c.context[CAPABILITIES].as_string().is_(None),
            )
        ).all()
    for r in rows:
        with engine.db.begin() as conn:
            engine._lock_execution(conn, r.execution_id)  # the runner writes contexts under this lock too
            st = engine._stage(conn, r.execution_id, r.stage_id)
            stype = engine.registry.get(st.type) if st is not None else None
            if st is None or stype is None or CAPABILITIES in (st.context or {}):
                continue
            context = {**(st.context or {}), CAPABILITIES: stype.capabilities.as_dict()}
            engine._set_stage(conn, r.execution_id, r.stage_id, context=context)
    return len(rows)


def repair_zombies(engine: Engine) -> int:
    db = engine.db
    now = time.time()
    no_message = ~exists().where(messages.c.execution_id == executions.c.id)
    with db.read() as conn:
        ids = [
            r.id
            for r in conn.execute(
                select(executions.c.id).where(executions.c.status.in_([Status.RUNNING, Status.NOT_STARTED]), no_message)
            )
        ]
    repaired = 0
    for execution_id in ids:
        with db.begin() as conn:
            ex = engine._lock_execution(conn, execution_id)
            if ex is None or ex.status not in (Status.RUNNING, Status.NOT_STARTED) or queue.pending_for(conn, ex.id):
                continue
            if ex.status == Status.NOT_STARTED:
                queue.push(conn, StartExecution(ex.id), due_at=now)
                counters.increment(conn, counters.REPAIRED)
                repaired += 1
                continue
            rows = conn.execute(
                select(
                    stages.c.stage_id, stages.c.status, stages.c.requires, stages.c.task_index, stages.c.attempt
                ).where(stages.c.execution_id == ex.id)
            ).all()
            status = {r.stage_id: r.status for r in rows}
            pushed = 0
            for r in rows:
                if r.status in STAGE_ACTIVE:
                    queue.push(conn, RunTask(ex.id, r.stage_id, task=r.task_index, attempt=r.attempt), due_at=now)
                    pushed += 1
                elif r.status == Status.NOT_STARTED and all(status.get(q) in STAGE_LETS_THROUGH for q in r.requires):
                    queue.push(conn, StartStage(ex.id, r.stage_id), due_at=now)
                    pushed += 1
            if not pushed:
                final, why = final_status(dict(Counter(status.values())))
                conn.execute(
                    update(executions)
                    .where(executions.c.id == ex.id)
                    .values(status=final, ended_at=now, message=f"completed by self-check{': ' + why if why else ''}")
                )
            counters.increment(conn, counters.REPAIRED)
            log.warning("self-check repaired execution %s (%d messages)", ex.id, pushed)
            repaired += 1
    return repaired
