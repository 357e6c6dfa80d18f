"""Read models: executions and stages as plain dicts, the same for the API, the CLI and the console.

Two rules hold here, in one place for every caller:

- **Scope.** Each read takes ``readable``, the applications the caller may read (None: all). What lies
  outside is left out of lists and, asked for by id or name, is not found (``NotFound``, a 404): the
  answer is the same whether it exists or not, so ids do not reveal other applications' work.
- **Secrets.** Parameters declared ``secret: true`` are masked in everything returned
  (``gennaker.engine.secrets``): the trigger's parameters, stage configs, outputs, messages, records.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Connection, and_, false, func, or_, select

from gennaker.engine import secrets
from gennaker.engine.model import STAGE_ACTIVE, Status
from gennaker.errors import InvalidInput, NotFound
from gennaker.stages.base import Capabilities
from gennaker.store.tables import executions, operations, pipelines, stages

_SUMMARY_COLS = [
    executions.c.id,
    executions.c.pipeline,
    executions.c.application,
    executions.c.status,
    executions.c.trigger,
    executions.c.created_at,
    executions.c.started_at,
    executions.c.ended_at,
    executions.c.message,
]


Readable = Collection[str] | None  # the applications a caller may read; None: every application

CAPABILITIES = "capabilities"  # where the engine records a stage type's capabilities in the stage's context


# ---- what a stage can do, and whether it waits for people -----------------------------------------
# Every consumer (operations, API, CLI, console list and filter, templates) asks these, never the type.
def capabilities(context: Mapping[str, Any] | None) -> Capabilities:
    return Capabilities.from_dict((context or {}).get(CAPABILITIES))


def awaiting_judgment(stage: Mapping[str, Any]) -> bool:
    """Whether a stage (a row's mapping: ``status`` and ``context``) waits for a person's judgment now:
    it is judgeable and not judged yet, and either it waits for nothing else (a manual judgment,
    WAITING) or its context asks for one (a rolling deploy paused between steps).
    ``awaiting_judgment_clause`` is the same rule in SQL; keep the two together."""
    context = stage.get("context") or {}
    caps = capabilities(context)
    if not caps.judgeable or context.get("judgment") or stage.get("status") not in STAGE_ACTIVE:
        return False
    return bool(context.get("awaiting_judgment")) or (caps.waits and stage.get("status") == Status.WAITING)


def awaiting_judgment_clause() -> Any:
    """``awaiting_judgment`` as a WHERE clause on ``stages`` (the console's AWAITING JUDGMENT filter)."""
    context = stages.c.context
    return and_(
        stages.c.status.in_([str(s) for s in STAGE_ACTIVE]),
        context[(CAPABILITIES, "judgeable")].as_boolean().is_(True),
        context["judgment"].as_string().is_(None),
        or_(
            context["awaiting_judgment"].as_string().is_not(None),
            and_(stages.c.status == Status.WAITING, context[(CAPABILITIES, "waits")].as_boolean().is_(True)),
        ),
    )


def judgment_request(stage: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a judgeable stage asks (``options``, ``roles``, ``instructions``): what its context says
    it asks now, else, for a type that waits for a judgment only (a manual judgment), its resolved
    config; None when it asks nothing."""
    context = stage.get("context") or {}
    caps = capabilities(context)
    asked = context.get("awaiting_judgment")
    if not caps.judgeable or not (asked or caps.waits):
        return None
    cfg = asked if asked else context.get("resolved", stage.get("config")) or {}
    return {
        **(asked or {}),  # what else the stage says of its pause (a rolling deploy: the ``step``)
        "options": list(cfg.get("options") or ["approve", "reject"]),
        "roles": list(cfg.get("roles") or []),
        "instructions": cfg.get("instructions") or "",
    }


def _in_scope(column: Any, readable: Readable) -> Any:
    """The WHERE clause limiting ``column`` (an application column) to ``readable``."""
    if readable is None:
        return None
    return column.in_(sorted(readable)) if readable else false()


def _scoped(q: Any, column: Any, readable: Readable) -> Any:
    clause = _in_scope(column, readable)
    return q if clause is None else q.where(clause)


def may_read(application: str | None, readable: Readable) -> bool:
    return readable is None or application in readable


def _summary(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    trigger = d.get("trigger") or {}
    d["trigger"] = secrets.public_trigger(trigger)
    hidden = secrets.secret_values(trigger)
    if hidden and d.get("message"):
        d["message"] = secrets.mask_text(d["message"], hidden)
    return d


def list_executions(
    conn: Connection,
    pipeline: str | None = None,
    status: list[str] | None = None,
    application: str | None = None,
    limit: int = 50,
    offset: int = 0,
    kind: str | None = None,
    readable: Readable = None,
) -> list[dict[str, Any]]:
    """``kind`` "pipelines" or "tasks" (operator actions run outside pipelines) narrows the list;
    ``application`` narrows it within ``readable``, never beyond."""
    q = select(*_SUMMARY_COLS).order_by(executions.c.created_at.desc()).limit(limit).offset(offset)
    q = _scoped(q, executions.c.application, readable)
    if pipeline:
        q = q.where(executions.c.pipeline == pipeline)
    if status:
        wanted = [s.upper() for s in status]
        unknown = sorted(set(wanted) - {str(s) for s in Status})
        if unknown:
            raise InvalidInput(f"unknown status {', '.join(unknown)} (one of {', '.join(s.value for s in Status)})")
        q = q.where(executions.c.status.in_(wanted))
    if application:
        q = q.where(executions.c.application == application)
    if kind == "tasks":
        q = q.where(executions.c.pipeline.startswith("task:"))
    elif kind == "pipelines":
        q = q.where(~executions.c.pipeline.startswith("task:"))
    return [_summary(r) for r in conn.execute(q)]


def stage_summaries(conn: Connection, execution_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Stages of many executions in one query (for lists: no query per row)."""
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in execution_ids}
    if not execution_ids:
        return out
    rows = conn.execute(
        select(
            stages.c.execution_id,
            stages.c.stage_id,
            stages.c.name,
            stages.c.type,
            stages.c.status,
            stages.c.requires,
            stages.c.started_at,
            stages.c.ended_at,
            awaiting_judgment_clause().label("awaiting_judgment"),
        )
        .where(stages.c.execution_id.in_(execution_ids))
        .order_by(stages.c.idx)
    ).all()
    for r in rows:
        d = dict(r._mapping)
        d["awaiting_judgment"] = bool(d["awaiting_judgment"])
        out[d.pop("execution_id")].append(d)
    return out


def _stage_view(row: Any, hidden: list[str]) -> dict[str, Any]:
    d = dict(row._mapping)
    d.pop("execution_id", None)
    caps = capabilities(row.context)
    d["capabilities"] = caps.as_dict()
    # False for a moment: until the engine takes up the execution (it records them), nothing is known
    d["capabilities_recorded"] = CAPABILITIES in (row.context or {})
    d["awaiting_judgment"] = awaiting_judgment(row._mapping)
    d["judgment_request"] = judgment_request(row._mapping)
    context = d.pop("context") or {}
    d["config"] = context.get("resolved", d["config"])
    d["judgment"] = context.get("judgment")
    d["skip"] = context.get("skip")
    d.pop("dependents", None)
    d.pop("worker_id", None)
    return secrets.mask(d, hidden) if hidden else d


def _execution_row(conn: Connection, execution_id: str, readable: Readable, *cols: Any) -> Any:
    """The execution, or NotFound when it does not exist or lies outside ``readable`` (the same answer)."""
    row = conn.execute(select(*_SUMMARY_COLS, *cols).where(executions.c.id == execution_id)).first()
    if row is None or not may_read(row.application, readable):
        raise NotFound(f"no execution '{execution_id}'")
    return row


def check_readable(conn: Connection, execution_id: str, readable: Readable) -> None:
    """NotFound unless the execution exists within ``readable``."""
    _execution_row(conn, execution_id, readable)


def execution_detail(conn: Connection, execution_id: str, readable: Readable = None) -> dict[str, Any]:
    row = _execution_row(conn, execution_id, readable, executions.c.source)
    hidden = secrets.secret_values(row.trigger)
    d = _summary(row)
    d["stages"] = [
        _stage_view(r, hidden)
        for r in conn.execute(select(stages).where(stages.c.execution_id == execution_id).order_by(stages.c.idx))
    ]
    return d


def stage_detail(conn: Connection, execution_id: str, stage_id: str, readable: Readable = None) -> dict[str, Any]:
    ex = conn.execute(
        select(executions.c.application, executions.c.trigger).where(executions.c.id == execution_id)
    ).first()
    row = (
        conn.execute(select(stages).where(stages.c.execution_id == execution_id, stages.c.stage_id == stage_id)).first()
        if ex is not None and may_read(ex.application, readable)
        else None
    )
    if ex is None or row is None:
        raise NotFound(f"execution '{execution_id}' has no stage '{stage_id}'")
    return _stage_view(row, secrets.secret_values(ex.trigger))


def execution_operations(conn: Connection, execution_id: str, readable: Readable = None) -> list[dict[str, Any]]:
    """Who did what to an execution (NotFound outside ``readable``)."""
    row = _execution_row(conn, execution_id, readable)
    hidden = secrets.secret_values(row.trigger)
    names = secrets.secret_names(row.trigger)
    rows = conn.execute(
        select(operations).where(operations.c.execution_id == execution_id).order_by(operations.c.id)
    ).all()
    out = []
    for r in rows:
        d = dict(r._mapping)
        details = dict(d.get("details") or {})
        if isinstance(details.get("params"), dict):
            details["params"] = secrets.mask_params(details["params"], names)
        d["details"] = secrets.mask(details, hidden)
        out.append(d)
    return out


def list_pipelines(conn: Connection, application: str | None = None, readable: Readable = None) -> list[dict[str, Any]]:
    q = select(
        pipelines.c.name,
        pipelines.c.application,
        pipelines.c.source,
        pipelines.c.updated_at,
        pipelines.c.updated_by,
        pipelines.c.registered,
    ).order_by(pipelines.c.name)
    q = _scoped(q, pipelines.c.application, readable)
    if application:
        q = q.where(pipelines.c.application == application)
    return [dict(r._mapping) for r in conn.execute(q)]


def pipeline_text(conn: Connection, name: str, readable: Readable = None) -> tuple[str, str | None]:
    row = conn.execute(
        select(pipelines.c.text, pipelines.c.source, pipelines.c.application).where(pipelines.c.name == name)
    ).first()
    if row is None or not row.text or not may_read(row.application, readable):
        raise NotFound(f"no pipeline named '{name}' is registered")
    return row.text, row.source


def status_counts(conn: Connection, pipeline: str | None = None, readable: Readable = None) -> dict[str, int]:
    q = select(executions.c.status, func.count()).group_by(executions.c.status)
    q = _scoped(q, executions.c.application, readable)
    if pipeline:
        q = q.where(executions.c.pipeline == pipeline)
    return {str(s): int(n) for s, n in conn.execute(q).all()}


def is_done(status: str) -> bool:
    return status in (Status.SUCCEEDED, Status.FAILED, Status.TERMINAL, Status.CANCELED)
