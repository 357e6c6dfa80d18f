"""Message handlers: how an execution moves from one committed state to the next.

Each handler reads what it needs, does its work (a task may call the outside world), then in one
transaction re-checks the state, writes the new state, pushes the next messages and deletes the one
it handled. A handler that finds its message stale (the stage moved on, the execution ended) just
deletes it, which is what makes redelivery after a lost lease safe.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    ARRAY,
    JSON,
    Connection,
    String,
    any_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.exc import DBAPIError

from gennaker.engine import counters, queue, secrets, views
from gennaker.engine import logs as stage_logs
from gennaker.engine.events import EventHook, ExecutionEvent
from gennaker.engine.messages import (
    CancelStage,
    Message,
    RunTask,
    StartExecution,
    StartStage,
    Unreadable,
    stage_of,
)
from gennaker.engine.model import EXECUTION_DONE, STAGE_ACTIVE, STAGE_LETS_THROUGH, Status
from gennaker.engine.queue import Delivery
from gennaker.engine.views import CAPABILITIES
from gennaker.errors import GennakerError
from gennaker.spec import expressions
from gennaker.spec.durations import format_duration
from gennaker.stages.base import StageType, TaskContext, TaskResult
from gennaker.store import hot
from gennaker.store.db import Database
from gennaker.store.tables import executions, messages, pipelines, stages

log = logging.getLogger("gennaker.engine")

# Hot statements, built once (see queue.py). The execution's pipeline text is never loaded here.
_EXEC_COLS = [
    executions.c.id,
    executions.c.pipeline,
    executions.c.application,
    executions.c.status,
    executions.c.trigger,
    executions.c.concurrency_limit,
]
_SEL_EXEC = select(*_EXEC_COLS).where(executions.c.id == bindparam("eid"))
_SEL_EXEC_LOCK = _SEL_EXEC.with_for_update()
_SEL_STAGE = select(stages).where(stages.c.execution_id == bindparam("eid"), stages.c.stage_id == bindparam("sid"))
# by id: ``IN json_each(array)`` on SQLite, ``= ANY(array)`` on PostgreSQL: one statement for any count
# of ids (an expanding IN is another per count), which store/hot.py runs on the driver directly
_SQLITE_IDS = func.json_each(bindparam("ids", type_=JSON)).table_valued("value")
_SEL_STAGES = {
    True: select(stages).where(
        stages.c.execution_id == bindparam("eid"), stages.c.stage_id.in_(select(_SQLITE_IDS.c.value))
    ),
    False: select(stages).where(
        stages.c.execution_id == bindparam("eid"), stages.c.stage_id == any_(bindparam("ids", type_=ARRAY(String)))
    ),
}
_SEL_STATUSES = select(stages.c.stage_id, stages.c.status).where(
    stages.c.execution_id == bindparam("eid"), stages.c.stage_id.in_(bindparam("ids", expanding=True))
)
_UPD_STAGE = update(stages).where(stages.c.execution_id == bindparam("_eid"), stages.c.stage_id == bindparam("_sid"))
# PostgreSQL: a stage row's update and its first task pushed leased to this thread, in one statement
_UPD_STAGE_PUSHING = _UPD_STAGE.add_cte(queue.LEASED_CTE).returning(
    select(queue.LEASED_CTE.c.id).scalar_subquery().label("message_id")
)
# A stage row as a transition wrote it (the row it read under the execution's lock, with the values it
# set), carried to the stage's first task: not read back (RETURNING the row decoded its six JSON
# columns again, a tenth of a no-op stage on SQLite).
_StageRow = hot.row_class([c.key for c in stages.c])


def _as_written(row: Any, values: Mapping[str, Any]) -> Any:
    return _StageRow._make([values[k] if k in values else getattr(row, k) for k in _StageRow._fields])


_START_EXEC = (
    update(executions)
    .where(executions.c.id == bindparam("eid"))
    .values(status=Status.RUNNING, started_at=bindparam("now"))
    .returning(*_EXEC_COLS)
)
_END_EXEC = (
    update(executions)
    .where(executions.c.id == bindparam("eid"))
    .values(status=bindparam("status"), ended_at=bindparam("now"), message=bindparam("message"))
)
_UNSTARTED = stages.c.execution_id == bindparam("eid"), stages.c.started_at.is_(None)


def _ack_and_lock_statement(drop_polls: bool) -> Any:
    """PostgreSQL: the ack (``queue.ack_statement``) and the execution's row lock in one statement, one
    round trip less per handling. The lock is a MATERIALIZED CTE outer-joined to the ack's count, so a
    missing execution still says whether the ack held; the row comes back locked and current (a row
    lock waits for, then re-reads, the newest version), and the next statement takes a new snapshot."""
    acked = queue.ack_statement(drop_polls).cte("acked")
    locked = _SEL_EXEC_LOCK.cte("locked").prefix_with("MATERIALIZED")
    n = select(func.count().label("acked")).select_from(acked).where(acked.c.id == bindparam("mid")).subquery("n")
    return select(n.c.acked, *locked.c).select_from(n.outerjoin(locked, true()))


_ACK_AND_LOCK = {False: _ack_and_lock_statement(False), True: _ack_and_lock_statement(True)}
# An execution's stages by status, and whether a message is queued for it, in one read.
_QUEUED = "_queued"
_SEL_COUNTS_AND_QUEUED = union_all(
    select(stages.c.status, func.count()).where(stages.c.execution_id == bindparam("eid")).group_by(stages.c.status),
    select(literal(_QUEUED), func.count()).select_from(
        select(messages.c.id).where(messages.c.execution_id == bindparam("eid")).limit(1).subquery()
    ),
)


@dataclass
class _Start:
    """How a stage starts: ``stype`` set, it runs (``status`` RUNNING or WAITING); else it ends at once
    with ``status`` (SKIPPED, FAILED) and ``message``."""

    status: Status
    message: str | None = None
    started: bool = True  # whether it counts as started (a skipped stage has; an unknown type has not)
    stype: StageType[Any] | None = None
    config: Any = None
    task_names: list[str] = field(default_factory=list)


class LeaseLost(Exception):
    """Our lease on a message expired and another worker took it; our changes are rolled back."""

    @classmethod
    def of(cls, delivery: Delivery[Message]) -> LeaseLost:
        return cls(f"message {delivery.id} was taken over by another worker")


@dataclass
class EngineSettings:
    lease: float = 15.0  # how long a claimed message is ours without a heartbeat extending it
    heartbeat: float = 2.0
    worker_ttl: float = 10.0  # a worker silent this long is dead; its pinned messages move on
    poll: float = 0.05  # idle poll of the queue (Orca: 50 ms)
    max_message_attempts: int = 8  # then the message is dead-lettered and its stage fails
    self_check_every: float = 15.0


class Engine:
    """Runs messages. Holds the database, the stage types and the services tasks may use."""

    def __init__(
        self,
        db: Database,
        registry: Mapping[str, StageType[Any]],
        services: Any,
        settings: EngineSettings | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.db = db
        self.registry = registry
        self.services = services
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.on_push: Callable[[], None] = lambda: None  # wakes an in-process worker
        # Told of each execution and stage event inside the transaction that commits it (runtime.py
        # wires notifications here); None: nobody listens and nothing is built.
        self.on_event: EventHook | None = None
        # Per handling thread: the worker that asked to take the next message itself, and the one it
        # took (see handle). A thread-local because one Engine serves all of a worker's task threads.
        self._next = threading.local()
        # The capabilities statement (see _record_capabilities), built again only if the registry changed.
        self._capabilities: tuple[tuple[Any, ...], Any] = ((), None)

    # ---- dispatch -------------------------------------------------------------------------------
    def handle(self, delivery: Delivery[Message], worker_id: str, take_next: bool = False) -> Delivery[Message] | None:
        """Handle one message. With ``take_next``, the first due, unpinned message the handler pushes is
        pushed already leased to ``worker_id`` and returned: the caller handles it next on this thread
        (a chain of stages then costs no claim transaction per step). The lease is committed with the
        state change, so a worker that dies before handling it loses nothing: the lease runs out."""
        self._next.worker = worker_id if take_next else None
        self._next.taken = None
        self._next.pushed = False
        try:
            HANDLERS[type(delivery.message)](self, delivery, worker_id)
            taken: Delivery[Message] | None = self._next.taken
            pushed = self._next.pushed
        finally:
            self._next.worker = None
            self._next.taken = None
        # Wake the claim loop only when there may be work for it: a handler that handed its one next
        # message to this thread left nothing due in the queue (a claim would find nothing, and on
        # SQLite take the write lock to find it).
        if taken is None or pushed:
            self.on_push()
        return taken

    def _ack(self, conn: Connection, delivery: Delivery[Message], worker_id: str) -> None:
        if not queue.ack(conn, delivery, worker_id):
            raise LeaseLost.of(delivery)

    def _ack_and_lock(
        self,
        conn: Connection,
        delivery: Delivery[Message],
        worker_id: str,
        execution_id: str,
        polls_of: tuple[str, int] | None = None,
    ) -> Any:
        """Ack the message, then lock its execution's row (None: there is none). ``polls_of`` (stage id,
        attempt): that stage's last task was handled, so its leftover polls up to that attempt go too."""
        sid, attempt = polls_of or (None, None)
        params = {"mid": delivery.id, "owner": worker_id, "eid": execution_id, "sid": sid, "attempt": attempt}
        params["now"] = self.clock()  # (leftover polls are those whose lease ran out by now)
        drop = polls_of is not None
        if self.db.is_sqlite:  # (no row locks there: BEGIN IMMEDIATE took the database's write lock)
            if delivery.id not in hot.execute(conn, queue.ack_statement(drop), params).scalars().all():
                raise LeaseLost.of(delivery)
            return self._lock_execution(conn, execution_id)
        row = hot.execute(conn, _ACK_AND_LOCK[drop], params).one()
        if not row.acked:
            raise LeaseLost.of(delivery)
        return None if row.id is None else row

    # ---- rows -----------------------------------------------------------------------------------
    def _lock_execution(self, conn: Connection, execution_id: str) -> Any:
        return hot.execute(conn, _SEL_EXEC if self.db.is_sqlite else _SEL_EXEC_LOCK, {"eid": execution_id}).first()

    @staticmethod
    def _stage(conn: Connection, execution_id: str, stage_id: str) -> Any:
        return hot.execute(conn, _SEL_STAGE, {"eid": execution_id, "sid": stage_id}).first()

    def _stages(self, conn: Connection, execution_id: str, stage_ids: list[str]) -> Any:
        return hot.execute(conn, _SEL_STAGES[self.db.is_sqlite], {"eid": execution_id, "ids": stage_ids})

    @staticmethod
    def _set_stage(conn: Connection, execution_id: str, stage_id: str, **values: Any) -> None:
        hot.execute(conn, _UPD_STAGE, {"_eid": execution_id, "_sid": stage_id, **values})

    def _push(
        self,
        conn: Connection,
        message: Message,
        delay: float = 0.0,
        held: bool = False,
        affinity: str | None = None,
        snapshot: tuple[Any, Any, Any] | None = None,
    ) -> None:
        """Queue a message. ``snapshot``: the execution and stage rows as this transaction leaves them,
        and the stage's resolved config, carried with a message this thread takes next so that its
        handler need not read (or validate) them again."""
        taker = self._taker() if delay <= 0 and not held and affinity is None else None
        if taker:
            self._next.taken = queue.push_leased(
                conn, message, due_at=self.clock(), worker_id=taker, until=self._lease_until(), snapshot=snapshot
            )
            return
        queue.push(conn, message, due_at=self.clock() + delay, held=held, affinity=affinity)
        if delay <= 0 and not held:
            self._next.pushed = True

    def _lease_until(self) -> float:
        # a lease is read against the worker's wall clock (queue.claim), not the engine's clock
        return time.time() + self.settings.lease

    def _taker(self) -> str | None:
        """The worker this thread handles for, if it asked to take the next due message itself and has
        not taken one yet (see handle)."""
        taker: str | None = getattr(self._next, "worker", None)
        return taker if taker and self._next.taken is None else None

    def _emit(self, conn: Connection, event: str, ex: Any, st: Any = None, **kw: Any) -> None:
        if self.on_event is None:
            return
        status = kw.pop("status", None) or (st.status if st is not None else ex.status)
        evt = ExecutionEvent(
            event=event,
            execution_id=ex.id,
            pipeline=ex.pipeline,
            application=ex.application,
            status=str(status),
            at=self.clock(),
            stage_id=st.stage_id if st is not None else None,
            stage_name=(st.name or st.stage_id) if st is not None else None,
            attempt=kw.pop("attempt", st.attempt if st is not None else None),
            **kw,
        )
        try:
            self.on_event(conn, evt)
        except DBAPIError:
            # the database failed a listener's statement: on PostgreSQL the transaction is lost (its
            # COMMIT would quietly roll back), so the handling fails and is retried
            raise
        except Exception:  # a listener's bug must not fail the change it was told of; it is logged
            log.exception("event listener failed on %s of execution %s", event, ex.id)

    def _defer_while_paused(self, conn: Connection, message: Message) -> None:
        """A message claimed just as its execution was paused: park it until resume."""
        self._push(conn, message, held=True)

    # ---- StartExecution -------------------------------------------------------------------------
    def start_execution(self, delivery: Delivery[StartExecution], worker_id: str) -> None:
        msg = delivery.message
        with self.db.begin() as conn:
            ex = self._ack_and_lock(conn, delivery, worker_id, msg.execution_id)
            if ex is None or ex.status != Status.NOT_STARTED:
                return
            rows = self._record_capabilities(conn, ex.id)
            if ex.concurrency_limit:
                self._lock_pipeline(conn, ex.pipeline)
                running = conn.execute(
                    select(func.count())
                    .select_from(executions)
                    .where(
                        executions.c.pipeline == ex.pipeline,
                        executions.c.status.in_([Status.RUNNING, Status.PAUSED]),
                    )
                ).scalar_one()
                if running >= ex.concurrency_limit:
                    return  # stays queued; started when a running one finishes
            ex = hot.execute(conn, _START_EXEC, {"eid": ex.id, "now": self.clock()}).one()
            self._emit(conn, "pipeline.starting", ex, status=Status.RUNNING)
            roots = sorted((r for r in rows if not r.requires), key=lambda r: r.idx)
            if roots:
                for root in roots[1:]:
                    self._push(conn, StartStage(ex.id, root.stage_id))
                self._start_inline(conn, ex, roots[0])

    def _record_capabilities(self, conn: Connection, execution_id: str) -> list[Any]:
        """Write each stage type's capabilities into its stages (their context is still empty), so that
        every reader of a stage — over the API too — knows what it can do without the registry. One
        statement for all of them, the capabilities chosen by type (an unknown type's stage is left),
        returning the stages as written (the caller starts the roots among them: no second read)."""
        key = tuple(self.registry.items())
        cached_key, statement = self._capabilities
        if key != cached_key:
            # SQL literals, not bind values: the same for every execution (and known to the server's
            # prepared statement), so no execution sends or encodes them again
            by_type: dict[Any, Any] = {
                literal_column(_sql_string(n)): literal_column(
                    _sql_string(json.dumps({CAPABILITIES: t.capabilities.as_dict()})), JSON
                )
                for n, t in key
            }
            if by_type:
                statement = (
                    update(stages)
                    .where(*_UNSTARTED)
                    .values(context=case(by_type, value=stages.c.type, else_=stages.c.context))
                    .returning(*stages.c)
                )
            else:
                statement = select(stages).where(*_UNSTARTED)
            self._capabilities = (key, statement)
        return list(hot.execute(conn, statement, {"eid": execution_id}))

    def _lock_pipeline(self, conn: Connection, name: str) -> None:
        # Serializes concurrency-limit decisions for one pipeline across workers.
        conn.execute(update(pipelines).where(pipelines.c.name == name).values(name=name))

    # ---- StartStage -----------------------------------------------------------------------------
    def start_stage(self, delivery: Delivery[StartStage], worker_id: str) -> None:
        msg = delivery.message
        with self.db.begin() as conn:
            ex = self._ack_and_lock(conn, delivery, worker_id, msg.execution_id)
            if ex is not None and ex.status == Status.PAUSED:
                self._defer_while_paused(conn, msg)
                return
            if ex is None or ex.status != Status.RUNNING:
                return
            st = self._stage(conn, ex.id, msg.stage_id)
            if st is None or st.status != Status.NOT_STARTED:
                return
            self._begin_stage(conn, ex, st, self._plan_start(conn, ex, st))

    def _start_inline(self, conn: Connection, ex: Any, st: Any) -> None:
        """Start a stage in the transaction that made it ready: a chain then costs one transaction per
        stage, not two, and no StartStage message. If deciding how to start it raises (a stage type's
        bug), it gets a StartStage message instead, handled (retried, dead-lettered) on its own: the
        change that made it ready still commits and the stage before it is not run again."""
        try:
            plan = self._plan_start(conn, ex, st)
        except DBAPIError:
            raise  # the transaction is lost either way: the whole handling is retried
        except Exception:
            log.exception("starting stage %s of execution %s inline failed; queued instead", st.stage_id, ex.id)
            self._push(conn, StartStage(ex.id, st.stage_id))
            return
        self._begin_stage(conn, ex, st, plan)

    def _plan_start(self, conn: Connection, ex: Any, st: Any) -> _Start:
        """How a stage starts (runs, is skipped by its condition, or fails on its configuration), decided
        before anything is written."""
        stype = self.registry.get(st.type)
        if stype is None:
            return _Start(Status.FAILED, f"unknown stage type '{st.type}'", started=False)
        try:
            scope = self._scope(conn, ex, st.config)
            when = st.config.get("when")
            if when and not expressions.evaluate_condition(when, scope, _may_lack_outputs(scope)):
                return _Start(Status.SKIPPED, f"skipped: condition {when!r} is false")
            resolved = stype.resolve_config({k: v for k, v in st.config.items() if k != "when"}, scope)
            config = stype.Config.model_validate({**resolved, "when": when})
        except (expressions.ExpressionError, ValidationError) as exc:
            return _Start(Status.FAILED, _config_error(exc))
        status = Status.WAITING if stype.capabilities.waits else Status.RUNNING
        return _Start(status, stype=stype, config=config, task_names=[t.name for t in stype.tasks(config)])

    def _begin_stage(self, conn: Connection, ex: Any, st: Any, plan: _Start) -> None:
        now = self.clock()
        if plan.stype is None:  # skipped or failed before its first task
            self._finish_stage(conn, ex, st, plan.status, plan.message, now, started=now if plan.started else None)
            return
        stype, config = plan.stype, plan.config
        tasks: list[dict[str, Any]] = [
            {"name": name, "status": Status.NOT_STARTED, "started_at": None, "ended_at": None}
            for name in plan.task_names
        ]
        tasks[0].update(status=Status.RUNNING, started_at=now)
        attempt = st.attempt + 1
        first = RunTask(ex.id, st.stage_id, task=0, attempt=attempt)
        values = {
            "_eid": ex.id,
            "_sid": st.stage_id,
            "status": plan.status,
            "started_at": now,
            "ended_at": None,
            "message": None,
            "task_index": 0,
            "attempt": attempt,
            "tasks": tasks,
            # attempts count on across restarts (so a late message or process of an earlier run can
            # never be mistaken for this one); retries count from the last restart
            # stored with secret parameters masked (it is shown); _task_context resolves them again
            "context": {
                "resolved": secrets.mask(config.model_dump(mode="json"), secrets.secret_values(ex.trigger)),
                "base": (st.context or {}).get("base", 0),
                CAPABILITIES: stype.capabilities.as_dict(),
            },
            "worker_id": None,
        }
        taker = None if self.db.is_sqlite else self._taker()
        row = _as_written(st, values)
        if taker:  # the row written and the first task pushed leased to this thread, in one statement
            leased = queue.leased_params(first, due_at=now, worker_id=taker, until=self._lease_until())
            pushed = hot.execute(conn, _UPD_STAGE_PUSHING, {**values, **leased}).one()  # (one: it was there)
            self._next.taken = Delivery(int(pushed.message_id), first, 1, snapshot=(ex, row, config))
        else:
            if hot.execute(conn, _UPD_STAGE, values).rowcount != 1:
                raise RuntimeError(f"stage {st.stage_id} of execution {ex.id} is gone")  # (read under a lock)
            self._push(conn, first, snapshot=(ex, row, config))
        if self.on_event is not None:
            self._emit(conn, "stage.starting", ex, st, status=plan.status, attempt=attempt)
            started = {"status": plan.status, "context": {CAPABILITIES: stype.capabilities.as_dict()}}
            if views.awaiting_judgment(started):
                request = {"instructions": getattr(config, "instructions", None)}
                self._emit(conn, "judgment.awaiting", ex, st, status=plan.status, attempt=attempt, details=request)

    def _scope(self, conn: Connection, ex: Any, raw_config: dict[str, Any]) -> dict[str, Any]:
        """What expressions may read. Only the stages a config names are loaded (no O(n) per stage)."""
        trigger = dict(ex.trigger or {})
        named = {
            ref.split(".")[1]
            for ref in expressions.references(raw_config)
            if ref.startswith("stages.") and "." in ref[7:]
        }
        stage_scope: dict[str, Any] = {}
        if named:
            rows = conn.execute(
                select(stages.c.stage_id, stages.c.status, stages.c.outputs).where(
                    stages.c.execution_id == ex.id, stages.c.stage_id.in_(named)
                )
            ).all()
            stage_scope = {r.stage_id: {"status": r.status, "outputs": r.outputs or {}} for r in rows}
        return {
            "trigger": trigger,
            "parameters": trigger.get("params", {}),
            "stages": stage_scope,
            "execution": {"id": ex.id, "pipeline": ex.pipeline, "application": ex.application},
            "pipeline": {"name": ex.pipeline},
            "application": ex.application,
        }

    # ---- RunTask --------------------------------------------------------------------------------
    def run_task(self, delivery: Delivery[RunTask], worker_id: str) -> None:
        msg = delivery.message
        task_index, attempt = msg.task, msg.attempt
        config = None
        if delivery.snapshot is not None:  # as the transaction that pushed it committed them
            ex, st, config = delivery.snapshot
        else:
            with self.db.read() as conn:
                ex = hot.execute(conn, _SEL_EXEC, {"eid": msg.execution_id}).first()
                st = self._stage(conn, msg.execution_id, msg.stage_id)
        if (
            ex is None
            or st is None
            or ex.status not in (Status.RUNNING, Status.PAUSED)
            or st.status not in STAGE_ACTIVE
            or st.task_index != task_index
            or st.attempt != attempt
        ):
            with self.db.begin() as conn:
                ex = self._ack_and_lock(conn, delivery, worker_id, msg.execution_id)
                if ex is not None and ex.status == Status.RUNNING:  # it may have been all it waited for
                    self._maybe_complete(conn, ex, self.clock())
            return
        if ex.status == Status.PAUSED:
            with self.db.begin() as conn:
                self._ack(conn, delivery, worker_id)
                self._defer_while_paused(conn, msg)
            return
        stype = self.registry[st.type]
        ctx = self._task_context(ex, st, stype, worker_id, config)
        result = self._call_task(stype, ctx, st, worker_id)
        # a stage that may end now reads its dependents (which never change) with itself: one read
        ends = result.status != "RUNNING" and (result.status != "SUCCEEDED" or task_index + 1 >= len(st.tasks))
        wanted = [msg.stage_id, *(st.dependents or [])] if ends else [msg.stage_id]
        with self.db.begin() as conn:
            polls_of = (msg.stage_id, attempt) if ends else None
            ex = self._ack_and_lock(conn, delivery, worker_id, msg.execution_id, polls_of)
            rows = {r.stage_id: r for r in self._stages(conn, msg.execution_id, wanted)}
            st = rows.pop(msg.stage_id)
            stale = (
                ex.status not in (Status.RUNNING, Status.PAUSED)
                or st.status not in STAGE_ACTIVE
                or st.task_index != task_index
                or st.attempt != attempt
            )
            if not stale:
                paused = ex.status == Status.PAUSED
                self._apply(conn, ex, st, stype, ctx, result, worker_id, paused=paused, ends=rows if ends else None)
        if stale and result.status == "RUNNING":
            # Canceled (or restarted) while the task was starting something: the cancel message may
            # have been handled before there was anything to stop, so stop it now.
            self._safe_cancel(stype, ctx)

    def _task_context(
        self, ex: Any, st: Any, stype: StageType[Any], worker_id: str, config: Any = None
    ) -> TaskContext[Any]:
        """``config``: the stage's config as its start resolved it (with secrets' real values), if known."""
        context = dict(st.context or {})
        if config is None and secrets.secret_values(ex.trigger):
            config = self._resolve_again(ex, st, stype)
        elif config is None:
            config = stype.Config.model_validate(context.get("resolved", st.config))
        attempt = st.attempt

        def write_log(line: str) -> None:
            stage_logs.append(self.db, ex.id, st.stage_id, attempt, "engine", [line], self.clock())

        return TaskContext[Any](
            execution_id=ex.id,
            stage_id=st.stage_id,
            pipeline=ex.pipeline,
            application=ex.application,
            trigger=dict(ex.trigger or {}),
            config=config,
            context=context,
            outputs=dict(st.outputs or {}),
            attempt=attempt,
            stage_started_at=st.started_at or self.clock(),
            services=self.services,
            log=write_log,
            worker_id=worker_id,
            now=self.clock,
        )

    def _resolve_again(self, ex: Any, st: Any, stype: StageType[Any]) -> Any:
        """The stage's config with the real values of secret parameters (the stored one has them masked),
        resolved as ``_start_stage`` resolved it: what it reads cannot change while the stage runs."""
        with self.db.read() as conn:
            scope = self._scope(conn, ex, st.config)
        resolved = stype.resolve_config({k: v for k, v in st.config.items() if k != "when"}, scope)
        return stype.Config.model_validate({**resolved, "when": st.config.get("when")})

    def _call_task(self, stype: StageType[Any], ctx: TaskContext[Any], st: Any, worker_id: str) -> TaskResult:
        if st.worker_id and st.worker_id != worker_id:
            # The task was pinned to a worker (it holds a process) and that worker stopped beating.
            reason = stype.on_worker_lost(ctx)
            if isinstance(reason, TaskResult):  # e.g. a failure that must not be retried
                return reason
            if reason:
                return TaskResult.failed(reason)
        timeout = getattr(ctx.config, "timeout", None)
        if timeout is not None and ctx.elapsed > timeout:
            self._safe_cancel(stype, ctx)
            return TaskResult.failed(f"timed out after {format_duration(timeout)}")
        task = stype.tasks(ctx.config)[st.task_index]
        try:
            result = task.run(ctx)
        except GennakerError as exc:
            ctx.log(f"{task.name} failed: {exc}")
            return TaskResult.failed(str(exc))
        except Exception as exc:  # a bug in a task: fail the stage, keep the traceback in its log
            ctx.log(f"{task.name} raised {type(exc).__name__}:\n{traceback.format_exc()}")
            return TaskResult.failed(f"internal error in task {task.name}: {type(exc).__name__}: {exc}")
        if result.status == "RUNNING" and timeout is not None:
            result.poll_after = max(0.0, min(result.poll_after, timeout - ctx.elapsed + 0.01))
        return result

    def _safe_cancel(self, stype: StageType[Any], ctx: TaskContext[Any]) -> None:
        try:
            stype.on_cancel(ctx)
        except Exception as exc:  # reported, and the stage still ends
            ctx.log(f"stopping the stage failed: {type(exc).__name__}: {exc}")

    def _apply(
        self,
        conn: Connection,
        ex: Any,
        st: Any,
        stype: StageType[Any],
        ctx: TaskContext[Any],
        result: TaskResult,
        worker_id: str,
        paused: bool = False,
        ends: Mapping[str, Any] | None = None,
    ) -> None:
        """Write what a task's result means. ``ends``: the result may end the stage, so its dependents'
        rows were read with it, and its leftover polls are gone already (``_ack_and_lock``)."""
        now = self.clock()
        context = {**(st.context or {}), **result.context}
        # outputs are shown to every viewer and read by later stages: never keep a secret's value in them
        outputs = {**(st.outputs or {}), **secrets.mask(result.outputs, secrets.secret_values(ex.trigger))}
        tasks = [dict(t) for t in st.tasks]
        if self.on_event is not None:
            self._emit_judgment(conn, ex, st, context, result)
        if result.status == "RUNNING":
            pin = bool(result.context.get("_pin"))
            self._set_stage(
                conn,
                ex.id,
                st.stage_id,
                context=context,
                outputs=outputs,
                worker_id=worker_id if pin else None,
                message=result.message or st.message,
            )
            self._push(
                conn,
                RunTask(ex.id, st.stage_id, task=st.task_index, attempt=st.attempt),
                delay=result.poll_after,
                held=paused,
                affinity=worker_id if pin else None,
            )
            return
        tasks[st.task_index].update(status=_task_status(result), ended_at=now)
        if result.status == "SUCCEEDED" and st.task_index + 1 < len(tasks):
            nxt = st.task_index + 1
            tasks[nxt].update(status=Status.RUNNING, started_at=now)
            self._set_stage(
                conn, ex.id, st.stage_id, context=context, outputs=outputs, tasks=tasks, task_index=nxt, worker_id=None
            )
            self._push(conn, RunTask(ex.id, st.stage_id, task=nxt, attempt=st.attempt), held=paused)
            return
        written = {"context": context, "outputs": outputs, "tasks": tasks, "worker_id": None}
        if result.status == "SUCCEEDED":
            self._finish_stage(
                conn, ex, st, Status.SUCCEEDED, result.message, now, also=written, inline=True, ended=ends
            )
            return
        message = result.message or "failed"
        retries = ctx.config.retries
        # a task may refuse a retry (``_no_retry``), e.g. a command whose earlier attempt may still run
        retryable = not result.context.get("_no_retry")
        if result.status == "FAILED" and retryable and st.attempt - int(context.get("base", 0)) <= retries.count:
            stage_logs.append_in(
                conn,
                ex.id,
                st.stage_id,
                st.attempt,
                "engine",
                [f"attempt {st.attempt} failed: {message}; retrying in {format_duration(retries.backoff)}"],
            )
            self._set_stage(
                conn, ex.id, st.stage_id, **written, status=Status.NOT_STARTED, message=f"retrying: {message}"
            )
            self._push(conn, StartStage(ex.id, st.stage_id), delay=retries.backoff)
            return
        if result.status == "TERMINAL":
            status = Status.TERMINAL
        else:
            status = Status.FAILED_CONTINUE if ctx.config.continue_on_failure else Status.FAILED
        self._finish_stage(conn, ex, st, status, message, now, also=written, inline=True, ended=ends)

    def _emit_judgment(self, conn: Connection, ex: Any, st: Any, context: dict[str, Any], result: TaskResult) -> None:
        """A judgment was acted on (the task that read it finished, or consumed it), or a running
        stage began asking for one (a rolling deploy pausing between steps)."""
        judged = (st.context or {}).get("judgment")
        if judged and (result.status != "RUNNING" or context.get("judgment") != judged):
            event = "judgment.stopped" if result.status in ("FAILED", "TERMINAL") else "judgment.continued"
            self._emit(conn, event, ex, st, details={"choice": judged.get("choice"), "by": judged.get("by")})
        elif (
            result.status == "RUNNING"
            and not views.awaiting_judgment(st._mapping)
            and views.awaiting_judgment({"status": st.status, "context": context})
        ):
            asked = context.get("awaiting_judgment")
            self._emit(conn, "judgment.awaiting", ex, st, details=dict(asked) if isinstance(asked, dict) else {})

    # ---- finishing ------------------------------------------------------------------------------
    def _finish_stage(
        self,
        conn: Connection,
        ex: Any,
        st: Any,
        status: Status,
        message: str | None,
        now: float,
        started: float | None = None,
        also: dict[str, Any] | None = None,
        inline: bool = False,
        ended: Mapping[str, Any] | None = None,
    ) -> None:
        """End a stage (``also``: more of its columns, written in the same UPDATE) and start what it
        lets through. ``inline``: the first stage it makes ready starts in this transaction; a stage
        that ends as it starts (skipped, a bad config) passes False, so a run of skipped stages queues
        messages instead of recursing. ``ended``: the handling of its last task read its dependents'
        rows (these) and dropped its leftover polls already."""
        values: dict[str, Any] = {**(also or {}), "status": status, "ended_at": now, "message": message}
        if started is not None:
            values["started_at"] = started
        self._set_stage(conn, ex.id, st.stage_id, **values)
        if ended is None:
            queue.drop_stage_polls(conn, ex.id, st.stage_id, now)  # e.g. a judgment's hourly re-poll
        if status == Status.SUCCEEDED:
            self._emit(conn, "stage.complete", ex, st, status=status, message=message)
        elif status in (Status.FAILED, Status.FAILED_CONTINUE, Status.TERMINAL):
            self._emit(conn, "stage.failed", ex, st, status=status, message=message)
        if status in STAGE_LETS_THROUGH:
            # something started or queued: the execution is not complete (and a stage that started
            # inline and ended at once has completed it itself if it was the last)
            if not self._start_ready_dependents(conn, ex, st.stage_id, status, st.dependents or [], inline, ended):
                self._maybe_complete(conn, ex, now)
        else:
            stop = Status.TERMINAL if status == Status.TERMINAL else Status.FAILED
            what = "stopped" if stop == Status.TERMINAL else "failed"
            self._stop_execution(conn, ex, stop, f"stage '{st.stage_id}' {what}: {message}", now)

    def _start_ready_dependents(
        self,
        conn: Connection,
        ex: Any,
        finished: str,
        finished_status: Status,
        dependents: list[str],
        inline: bool,
        read: Mapping[str, Any] | None,
    ) -> bool:
        """Start (or queue the start of) every dependent whose requirements have all let it through;
        True if there was one. ``read``: the dependents' rows if this transaction has read them. Only
        requirements other than the stage just finished are read."""
        if not dependents:
            return False
        if read is None:
            read = {r.stage_id: r for r in self._stages(conn, ex.id, list(dependents))}
        rows = [read[d] for d in dependents if d in read]
        status = {finished: finished_status}
        needed = sorted({r for row in rows for r in row.requires} - status.keys())
        if needed:
            status.update(conn.execute(_SEL_STATUSES, {"eid": ex.id, "ids": needed}).all())
        ready = [
            row
            for row in rows
            if row.status == Status.NOT_STARTED and all(status.get(r) in STAGE_LETS_THROUGH for r in row.requires)
        ]
        if not ready:
            return False
        first = ready[0] if inline and ex.status == Status.RUNNING else None
        # the others are queued first: a first one that ends as it starts must see them pending
        for row in ready[1:] if first is not None else ready:
            self._push(conn, StartStage(ex.id, row.stage_id))
        if first is not None:
            self._start_inline(conn, ex, first)
        return True

    def _maybe_complete(self, conn: Connection, ex: Any, now: float) -> None:
        """Finish the execution when nothing is left to do: no message queued, no stage active."""
        counts: dict[str, int] = dict(hot.execute(conn, _SEL_COUNTS_AND_QUEUED, {"eid": ex.id}).all())
        if counts.pop(_QUEUED, 0) or any(counts.get(s) for s in STAGE_ACTIVE):
            return
        status, message = final_status(counts)
        self._end_execution(conn, ex, status, message, now)

    def _stop_execution(self, conn: Connection, ex: Any, status: Status, message: str, now: float) -> None:
        """End an execution early: cancel every active stage (their processes are stopped too)."""
        cancel_active_stages(conn, ex.id, now, self.clock)
        self._end_execution(conn, ex, status, message, now)

    def _end_execution(self, conn: Connection, ex: Any, status: Status, message: str | None, now: float) -> None:
        hot.execute(conn, _END_EXEC, {"eid": ex.id, "status": status, "now": now, "message": message})
        if status == Status.SUCCEEDED:
            self._emit(conn, "pipeline.complete", ex, status=status, message=message)
        elif status in (Status.FAILED, Status.TERMINAL):
            self._emit(conn, "pipeline.failed", ex, status=status, message=message)
        start_next_queued(conn, ex.pipeline, ex.concurrency_limit, self.clock)
        taker = getattr(self._next, "worker", None)
        if taker and self._next.taken is None:
            # the thread that ended this execution takes the next due message in the same transaction
            # (no claim transaction of its own); the claim loop is woken for the rest of the queue
            s = self.settings
            claimed = queue.claim_in(conn, taker, time.time(), s.lease, 1, s.worker_ttl)
            if claimed:
                self._next.taken = claimed[0]
                self._next.pushed = True

    # ---- CancelStage ----------------------------------------------------------------------------
    def cancel_stage(self, delivery: Delivery[CancelStage], worker_id: str) -> None:
        msg = delivery.message
        with self.db.read() as conn:
            ex = conn.execute(_SEL_EXEC, {"eid": msg.execution_id}).first()
            st = self._stage(conn, msg.execution_id, msg.stage_id)
        attempt = msg.attempt
        same_run = st is not None and (attempt is None or st.attempt == attempt) and st.status == Status.CANCELED
        if ex is not None and st is not None and same_run and st.type in self.registry:
            stype = self.registry[st.type]
            self._safe_cancel(stype, self._task_context(ex, st, stype, worker_id))
        with self.db.begin() as conn:
            self._ack(conn, delivery, worker_id)

    # ---- dead letters ---------------------------------------------------------------------------
    def refuse_unreadable(self, delivery: Delivery[Unreadable], worker_id: str) -> None:
        """A row that makes no message fails like a handler that raises: retried, then dead-lettered."""
        raise ValueError(delivery.message.error)

    def dead_letter(self, delivery: Delivery[Message], worker_id: str, error: str) -> None:
        """A message that kept failing to be handled: fail its stage so the execution does not hang."""
        msg = delivery.message
        with self.db.begin() as conn:
            self._ack(conn, delivery, worker_id)
            counters.increment(conn, counters.DEAD_LETTERS)
            ex = self._lock_execution(conn, msg.execution_id)
            if ex is None or ex.status in EXECUTION_DONE:
                return
            now = self.clock()
            reason = f"internal error: {delivery.kind} could not be handled after {delivery.attempts} attempts: {error}"
            stage_id = stage_of(msg)
            st = self._stage(conn, ex.id, stage_id) if stage_id else None
            if st is not None and st.status in (*STAGE_ACTIVE, Status.NOT_STARTED):
                self._finish_stage(conn, ex, st, Status.FAILED, reason, now)
            else:
                self._stop_execution(conn, ex, Status.FAILED, reason, now)


# One handler per message type (Orca's StartStageHandler, RunTaskHandler, ...): what happens when a
# stage starts is Engine.start_stage, and nothing else.
HANDLERS: Mapping[type[Message], Callable[[Engine, Any, str], None]] = {
    StartExecution: Engine.start_execution,
    StartStage: Engine.start_stage,
    RunTask: Engine.run_task,
    CancelStage: Engine.cancel_stage,
    Unreadable: Engine.refuse_unreadable,
}


def _sql_string(value: str) -> str:
    """A SQL string literal (a stage type's name, its capabilities' JSON: never a user's text)."""
    return "'" + value.replace("'", "''") + "'"


def _may_lack_outputs(scope: dict[str, Any]) -> Callable[[str], bool]:
    """In a condition, an output of a stage that was skipped or failed (and let the pipeline go on)
    may be missing: it reads as null, so ``when: ${stages.x.outputs.ok} == 'yes'`` is just false."""

    def missing_ok(path: str) -> bool:
        parts = path.split(".")
        if len(parts) < 3 or parts[0] != "stages" or parts[2] != "outputs":
            return False
        return scope["stages"].get(parts[1], {}).get("status") in (Status.SKIPPED, Status.FAILED_CONTINUE)

    return missing_ok


def final_status(counts: dict[str, int]) -> tuple[Status, str | None]:
    """An execution with nothing left to run ends SUCCEEDED only if every stage ran or was skipped:
    a stage still NOT_STARTED is blocked behind one that failed or was canceled."""
    for status in (Status.TERMINAL, Status.FAILED, Status.CANCELED):
        if counts.get(status):
            return status, f"{counts[status]} stage(s) {status}"
    if counts.get(Status.NOT_STARTED):
        return Status.FAILED, f"{counts[Status.NOT_STARTED]} stage(s) could not start"
    return Status.SUCCEEDED, None


def _task_status(result: TaskResult) -> Status:
    return {"SUCCEEDED": Status.SUCCEEDED, "FAILED": Status.FAILED, "TERMINAL": Status.TERMINAL}[result.status]


def _config_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return "invalid stage configuration after resolving expressions: " + "; ".join(parts)
    return str(exc)


def cancel_active_stages(conn: Connection, execution_id: str, now: float, clock: Callable[[], float]) -> None:
    """Mark running and waiting stages CANCELED, drop queued work, and ask each stage to stop."""
    active = conn.execute(
        select(stages.c.stage_id, stages.c.worker_id, stages.c.attempt).where(
            stages.c.execution_id == execution_id, stages.c.status.in_(list(STAGE_ACTIVE))
        )
    ).all()
    queue.drop_execution(conn, execution_id)
    # A stage waiting out its retry backoff is NOT_STARTED but has started: it is canceled too.
    conn.execute(
        update(stages)
        .where(
            stages.c.execution_id == execution_id,
            stages.c.status == Status.NOT_STARTED,
            stages.c.started_at.is_not(None),
            stages.c.ended_at.is_(None),
        )
        .values(status=Status.CANCELED, ended_at=now, message="canceled while waiting to retry")
    )
    for row in active:
        conn.execute(
            update(stages)
            .where(stages.c.execution_id == execution_id, stages.c.stage_id == row.stage_id)
            .values(status=Status.CANCELED, ended_at=now, message="canceled")
        )
        queue.push(
            conn, CancelStage(execution_id, row.stage_id, attempt=row.attempt), due_at=clock(), affinity=row.worker_id
        )


def start_next_queued(conn: Connection, pipeline: str, limit: int | None, clock: Callable[[], float]) -> None:
    """With a concurrency limit, a finished execution lets the oldest queued one of its pipeline start."""
    if not limit:
        return
    nxt = conn.execute(
        select(executions.c.id)
        .where(executions.c.pipeline == pipeline, executions.c.status == Status.NOT_STARTED)
        .order_by(executions.c.created_at)
        .limit(1)
    ).first()
    if nxt is not None:
        queue.push(conn, StartExecution(nxt.id), due_at=clock())
