"""What people (and the API, CLI and console) do to executions. Each operation commits its state
change, the messages it implies and a record of who did it, in one transaction."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, insert, select, update

from gennaker.engine import queue, secrets, views
from gennaker.engine.events import EventHook, ExecutionEvent
from gennaker.engine.messages import RunTask, StartExecution, StartStage, kind
from gennaker.engine.model import EXECUTION_DONE, STAGE_ACTIVE, STAGE_DONE, STAGE_LETS_THROUGH, Status, new_id
from gennaker.engine.runner import cancel_active_stages, start_next_queued
from gennaker.errors import Conflict, Forbidden, InvalidInput, NotFound
from gennaker.spec.models import Concurrency, Pipeline
from gennaker.store.db import Database
from gennaker.store.tables import executions, messages, operations, pipelines, stages


def record(
    conn: Connection,
    action: str,
    actor: str,
    execution_id: str | None = None,
    stage_id: str | None = None,
    **details: Any,
) -> None:
    conn.execute(
        insert(operations).values(
            execution_id=execution_id, stage_id=stage_id, action=action, actor=actor, at=time.time(), details=details
        )
    )


def bind_parameters(pipeline: Pipeline, given: dict[str, Any]) -> dict[str, Any]:
    known = {p.name: p for p in pipeline.parameters}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidInput(
            f"unknown parameter(s) {', '.join(unknown)} for pipeline '{pipeline.name}' "
            f"(it takes: {', '.join(known) or 'none'})"
        )
    params = {}
    for name, p in known.items():
        if name in given:
            value = given[name]
        elif p.default is not None:
            value = p.default
        elif p.required:
            raise InvalidInput(f"parameter '{name}' is required")
        else:
            value = None
        if (
            p.options is not None
            and value is not None
            and value not in p.options
            and str(value) not in map(str, p.options)
        ):
            raise InvalidInput(f"parameter '{name}' must be one of {p.options}, not {value!r}")
        params[name] = value
    return params


def save_pipeline(conn: Connection, pipeline: Pipeline, actor: str, registered: bool) -> None:
    """Keep the pipeline's latest text by name (the row also serializes concurrency decisions)."""
    now = time.time()
    values = {
        "application": pipeline.application,
        "source": pipeline.source,
        "text": pipeline.text,
        "updated_at": now,
        "updated_by": actor,
    }
    found = conn.execute(select(pipelines.c.registered).where(pipelines.c.name == pipeline.name)).first()
    if found is None:
        conn.execute(insert(pipelines).values(name=pipeline.name, registered=registered, **values))
    elif registered or not found.registered:
        conn.execute(
            update(pipelines)
            .where(pipelines.c.name == pipeline.name)
            .values(registered=registered or found.registered, **values)
        )


def start_execution(
    db: Database,
    pipeline: Pipeline,
    params: dict[str, Any],
    actor: str,
    trigger_type: str = "manual",
    base_dir: str | None = None,
) -> str:
    with db.begin() as conn:
        return start_execution_in(conn, pipeline, params, actor, trigger_type, base_dir)


def start_execution_in(
    conn: Connection,
    pipeline: Pipeline,
    params: dict[str, Any],
    actor: str,
    trigger_type: str = "manual",
    base_dir: str | None = None,
    trigger: dict[str, Any] | None = None,
) -> str:
    """Start in the caller's transaction, so what started it (a trigger's firing record) commits with
    it or not at all. ``trigger`` adds what the trigger knows (commit, branch, parent) to
    ``${trigger.*}``; it cannot override the engine's own keys."""
    bound = bind_parameters(pipeline, params)
    secret = sorted(p.name for p in pipeline.parameters if p.secret)  # their values are masked on display
    execution_id = new_id()
    now = time.time()
    dependents: dict[str, list[str]] = {s.id: [] for s in pipeline.stages}
    for s in pipeline.stages:
        for r in s.requires:
            dependents[r].append(s.id)
    if trigger_type != "task":  # tasks are not pipelines: keep them out of the pipelines list
        save_pipeline(conn, pipeline, actor, registered=False)
    conn.execute(
        insert(executions).values(
            id=execution_id,
            pipeline=pipeline.name,
            application=pipeline.application,
            status=Status.NOT_STARTED,
            trigger={
                **(trigger or {}),
                "type": trigger_type,
                "user": actor,
                "params": bound,
                "at": now,
                "base_dir": base_dir,
                secrets.SECRETS_KEY: secret,
            },
            pipeline_text=pipeline.text,
            source=pipeline.source,
            base_dir=base_dir,
            concurrency_limit=pipeline.concurrency.limit,
            created_at=now,
        )
    )
    conn.execute(
        insert(stages),
        [
            {
                "execution_id": execution_id,
                "stage_id": s.id,
                "idx": i,
                "name": s.display_name,
                "type": s.type,
                "status": Status.NOT_STARTED,
                "requires": list(s.requires),
                "dependents": dependents[s.id],
                # A ${...} in a typed field is stored as written (resolved at run time): not a
                # serializer surprise worth a warning on the user's terminal.
                "config": s.model_dump(mode="json", exclude_none=True, warnings=False),
                "context": {},
                "outputs": {},
                "tasks": [],
                "task_index": 0,
                "attempt": 0,
            }
            for i, s in enumerate(pipeline.stages)
        ],
    )
    queue.push(conn, StartExecution(execution_id), due_at=now)
    record(conn, "start", actor, execution_id, params=secrets.mask_params(bound, secret), trigger=trigger_type)
    return execution_id


def _locked(db: Database, conn: Connection, execution_id: str) -> Any:
    q = select(executions).where(executions.c.id == execution_id)
    if not db.is_sqlite:
        q = q.with_for_update()
    ex = conn.execute(q).first()
    if ex is None:
        raise NotFound(f"no execution '{execution_id}'")
    return ex


def _stage(conn: Connection, execution_id: str, stage_id: str) -> Any:
    st = conn.execute(
        select(stages).where(stages.c.execution_id == execution_id, stages.c.stage_id == stage_id)
    ).first()
    if st is None:
        raise NotFound(f"execution '{execution_id}' has no stage '{stage_id}'")
    return st


def cancel(
    db: Database, execution_id: str, actor: str, reason: str | None = None, on_event: EventHook | None = None
) -> None:
    """Cancel at once. ``on_event`` (the engine's listeners) hears ``pipeline.failed`` with status
    CANCELED in the same transaction, as for any other ending."""
    now = time.time()
    with db.begin() as conn:
        ex = _locked(db, conn, execution_id)
        if ex.status in EXECUTION_DONE:
            raise Conflict(f"execution {execution_id} already ended ({ex.status})")
        cancel_active_stages(conn, execution_id, now, time.time)
        conn.execute(
            update(executions)
            .where(executions.c.id == execution_id)
            .values(
                status=Status.CANCELED, ended_at=now, message=f"canceled by {actor}" + (f": {reason}" if reason else "")
            )
        )
        start_next_queued(conn, ex.pipeline, ex.concurrency_limit, time.time)
        record(conn, "cancel", actor, execution_id, reason=reason)
        if on_event is not None:
            message = f"canceled by {actor}" + (f": {reason}" if reason else "")
            event = ExecutionEvent(
                "pipeline.failed", ex.id, ex.pipeline, ex.application, Status.CANCELED, now, message=message
            )
            on_event(conn, event)


def pause(db: Database, execution_id: str, actor: str) -> None:
    with db.begin() as conn:
        ex = _locked(db, conn, execution_id)
        if ex.status != Status.RUNNING:
            raise Conflict(f"only a RUNNING execution can be paused (it is {ex.status})")
        conn.execute(update(executions).where(executions.c.id == execution_id).values(status=Status.PAUSED))
        queue.hold(conn, execution_id, True, time.time())
        record(conn, "pause", actor, execution_id)


def resume(db: Database, execution_id: str, actor: str) -> None:
    with db.begin() as conn:
        ex = _locked(db, conn, execution_id)
        if ex.status != Status.PAUSED:
            raise Conflict(f"only a PAUSED execution can be resumed (it is {ex.status})")
        conn.execute(update(executions).where(executions.c.id == execution_id).values(status=Status.RUNNING))
        queue.hold(conn, execution_id, False, time.time())
        record(conn, "resume", actor, execution_id)


def _descendants(rows: Iterable[Any], stage_id: str) -> set[str]:
    deps = {r.stage_id: r.dependents for r in rows}
    out: set[str] = set()
    todo = [stage_id]
    while todo:
        for d in deps.get(todo.pop(), []):
            if d not in out:
                out.add(d)
                todo.append(d)
    return out


def restart(db: Database, execution_id: str, stage_id: str, actor: str) -> None:
    """Run a finished stage again, and every stage after it. Finished stages before it stay as they are;
    parallel branches that were canceled when the execution stopped run again too (with what follows
    them), so that a join after them is not left waiting for ever."""
    now = time.time()
    with db.begin() as conn:
        ex = _locked(db, conn, execution_id)
        st = _stage(conn, execution_id, stage_id)
        if st.status not in STAGE_DONE:
            raise Conflict(f"stage '{stage_id}' is {st.status}; only a finished stage can be restarted")
        rows = conn.execute(
            select(
                stages.c.stage_id,
                stages.c.status,
                stages.c.dependents,
                stages.c.requires,
                stages.c.attempt,
                stages.c.context,
            ).where(stages.c.execution_id == execution_id)
        ).all()
        reset = {stage_id} | _descendants(rows, stage_id)
        if ex.status in (Status.FAILED, Status.TERMINAL, Status.CANCELED):
            for r in rows:
                if r.status == Status.CANCELED:
                    reset |= {r.stage_id} | _descendants(rows, r.stage_id)
        busy = [r.stage_id for r in rows if r.stage_id in reset and r.status in STAGE_ACTIVE]
        if busy:
            raise Conflict(f"stages after '{stage_id}' are still running: {', '.join(busy)}")
        if ex.status == Status.PAUSED:
            raise Conflict("resume the execution before restarting a stage")
        for r in rows:
            if r.stage_id not in reset:
                continue
            conn.execute(
                update(stages)
                .where(stages.c.execution_id == execution_id, stages.c.stage_id == r.stage_id)
                .values(
                    status=Status.NOT_STARTED,
                    # retries count afresh; attempts go on (see the runner); what it can do stays known
                    context={"base": r.attempt, views.CAPABILITIES: (r.context or {}).get(views.CAPABILITIES)},
                    outputs={},
                    tasks=[],
                    task_index=0,
                    started_at=None,
                    ended_at=None,
                    message=None,
                    worker_id=None,
                )
            )
        conn.execute(
            update(executions)
            .where(executions.c.id == execution_id)
            .values(status=Status.RUNNING, ended_at=None, message=None)
        )
        status = {r.stage_id: (Status.NOT_STARTED if r.stage_id in reset else r.status) for r in rows}
        for r in rows:
            if r.stage_id in reset and all(status[q] in STAGE_LETS_THROUGH for q in r.requires):
                queue.push(conn, StartStage(execution_id, r.stage_id), due_at=now)
        record(conn, "restart", actor, execution_id, stage_id, reset=sorted(reset))


def _signal(conn: Connection, execution_id: str, st: Any, key: str, value: Any) -> None:
    """Write an operator's input into a waiting stage and poll its task now."""
    context = {**(st.context or {}), key: value}
    conn.execute(
        update(stages)
        .where(stages.c.execution_id == execution_id, stages.c.stage_id == st.stage_id)
        .values(context=context)
    )
    moved = conn.execute(
        update(messages)
        .where(
            messages.c.execution_id == execution_id,
            messages.c.stage_id == st.stage_id,
            messages.c.kind == kind(RunTask),
            messages.c.lease_owner.is_(None),
        )
        .values(due_at=time.time())
    ).rowcount
    if not moved:  # the task is being polled right now; make sure it is polled once more
        queue.push(conn, RunTask(execution_id, st.stage_id, task=st.task_index, attempt=st.attempt), due_at=time.time())


def skip(db: Database, execution_id: str, stage_id: str, actor: str, skippable: set[str]) -> None:
    with db.begin() as conn:
        ex = _locked(db, conn, execution_id)
        st = _stage(conn, execution_id, stage_id)
        if st.type not in skippable:
            raise Conflict(
                f"stage '{stage_id}' is a {st.type} stage; only {', '.join(sorted(skippable))} can be skipped"
            )
        if st.status not in STAGE_ACTIVE or ex.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"stage '{stage_id}' is {st.status}; only a waiting stage can be skipped")
        _signal(conn, execution_id, st, "skip", {"by": actor, "at": time.time()})
        record(conn, "skip", actor, execution_id, stage_id)


def judge(
    db: Database,
    execution_id: str,
    stage_id: str,
    actor: str,
    choice: str,
    comment: str | None,
    actor_roles: set[str] | None = None,
    is_admin: bool = False,
) -> None:
    """Record a judgment of a stage awaiting one (``views.awaiting_judgment``): a stage type that waits
    for a judgment (a manual judgment), or a judgeable one whose context asks for one
    (``awaiting_judgment: {options, roles, instructions}``, e.g. a rolling deploy pausing between
    steps). ``actor_roles`` None means access control is off (no roles to check)."""
    with db.begin() as conn:
        ex = _locked(db, conn, execution_id)
        st = _stage(conn, execution_id, stage_id)
        request = views.judgment_request(st._mapping)
        if request is None:
            raise Conflict(f"stage '{stage_id}' is a {st.type} stage and is not asking for a judgment")
        if st.status not in STAGE_ACTIVE or ex.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"stage '{stage_id}' is {st.status}; it is not awaiting judgment")
        if (st.context or {}).get("judgment"):
            raise Conflict(f"stage '{stage_id}' was already judged")
        if not views.awaiting_judgment(st._mapping):
            raise Conflict(f"stage '{stage_id}' is {st.status}; it is not awaiting judgment")
        options = request["options"]
        if choice not in options:
            raise InvalidInput(f"'{choice}' is not an option of stage '{stage_id}' (options: {', '.join(options)})")
        roles = set(request["roles"])
        if roles and actor_roles is not None and not is_admin and not roles & actor_roles:
            raise Forbidden(
                f"{actor} may not judge stage '{stage_id}': it needs one of the roles {', '.join(sorted(roles))}"
            )
        _signal(
            conn, execution_id, st, "judgment", {"choice": choice, "by": actor, "at": time.time(), "comment": comment}
        )
        record(conn, "judge", actor, execution_id, stage_id, choice=choice, comment=comment)


TASK_PREFIX = "task:"  # pipelines are named by ID_PATTERN, which has no ':' — no collision


def start_task(
    db: Database,
    registry: Mapping[str, Any],
    application: str,
    stage_type: str,
    config: dict[str, Any],
    actor: str,
    name: str | None = None,
) -> str:
    """Run one stage outside any pipeline — an operator's resize, rollback or destroy — as an
    execution of its own, so it is durable, logged and shown with its tasks like any stage."""
    stype = registry.get(stage_type)
    if stype is None:
        raise InvalidInput(f"unknown task type '{stage_type}' (known: {', '.join(sorted(registry))})")
    try:
        stage = stype.Config.model_validate(
            {"id": stage_type.replace("_", "-"), "type": stage_type, "name": name, **config}
        )
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid {stage_type} task: {details}") from None
    pipeline = Pipeline(
        name=f"{TASK_PREFIX}{stage_type}",
        application=application,
        parameters=[],
        concurrency=Concurrency(),
        stages=[stage],
        text=None,
        source=None,
    )
    return start_execution(db, pipeline, {}, actor, trigger_type="task")
