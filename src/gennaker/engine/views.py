"""Read models: executions and stages as plain dicts, the same for the API, the CLI and the console."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from gennaker.engine.model import Status
from gennaker.errors import InvalidInput, NotFound
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


def _summary(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    trigger = d.get("trigger") or {}
    d["trigger"] = {k: v for k, v in trigger.items() if k != "base_dir"}
    return d


def list_executions(
    conn: Connection,
    pipeline: str | None = None,
    status: list[str] | None = None,
    application: str | None = None,
    limit: int = 50,
    offset: int = 0,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """``kind`` "pipelines" or "tasks" (operator actions run outside pipelines) narrows the list."""
    q = select(*_SUMMARY_COLS).order_by(executions.c.created_at.desc()).limit(limit).offset(offset)
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
        )
        .where(stages.c.execution_id.in_(execution_ids))
        .order_by(stages.c.idx)
    ).all()
    for r in rows:
        d = dict(r._mapping)
        out[d.pop("execution_id")].append(d)
    return out


def _stage_view(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d.pop("execution_id", None)
    context = d.pop("context") or {}
    d["config"] = context.get("resolved", d["config"])
    d["judgment"] = context.get("judgment")
    d["awaiting_judgment"] = context.get("awaiting_judgment")  # a non-judgment stage pausing for people
    d["skip"] = context.get("skip")
    d.pop("dependents", None)
    d.pop("worker_id", None)
    return d


def execution_detail(conn: Connection, execution_id: str) -> dict[str, Any]:
    row = conn.execute(select(*_SUMMARY_COLS, executions.c.source).where(executions.c.id == execution_id)).first()
    if row is None:
        raise NotFound(f"no execution '{execution_id}'")
    d = _summary(row)
    d["stages"] = [
        _stage_view(r)
        for r in conn.execute(select(stages).where(stages.c.execution_id == execution_id).order_by(stages.c.idx))
    ]
    return d


def stage_detail(conn: Connection, execution_id: str, stage_id: str) -> dict[str, Any]:
    row = conn.execute(
        select(stages).where(stages.c.execution_id == execution_id, stages.c.stage_id == stage_id)
    ).first()
    if row is None:
        raise NotFound(f"execution '{execution_id}' has no stage '{stage_id}'")
    return _stage_view(row)


def execution_operations(conn: Connection, execution_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(operations).where(operations.c.execution_id == execution_id).order_by(operations.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def list_pipelines(conn: Connection, application: str | None = None) -> list[dict[str, Any]]:
    q = select(
        pipelines.c.name,
        pipelines.c.application,
        pipelines.c.source,
        pipelines.c.updated_at,
        pipelines.c.updated_by,
        pipelines.c.registered,
    ).order_by(pipelines.c.name)
    if application:
        q = q.where(pipelines.c.application == application)
    return [dict(r._mapping) for r in conn.execute(q)]


def pipeline_text(conn: Connection, name: str) -> tuple[str, str | None]:
    row = conn.execute(select(pipelines.c.text, pipelines.c.source).where(pipelines.c.name == name)).first()
    if row is None or not row.text:
        raise NotFound(f"no pipeline named '{name}' is registered")
    return row.text, row.source


def status_counts(conn: Connection, pipeline: str | None = None) -> dict[str, int]:
    q = select(executions.c.status, func.count()).group_by(executions.c.status)
    if pipeline:
        q = q.where(executions.c.pipeline == pipeline)
    return {str(s): int(n) for s, n in conn.execute(q).all()}


def is_done(status: str) -> bool:
    return status in (Status.SUCCEEDED, Status.FAILED, Status.TERMINAL, Status.CANCELED)
