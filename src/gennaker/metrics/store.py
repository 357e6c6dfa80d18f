"""Canary analyses and judgements in the database.

Every write is idempotent, because the stage task that makes it may run again after a crash or a
lost lease: an analysis is found again by (execution, stage, attempt), and a judgement stored
twice for the same interval keeps the first one (the caller reads back what is stored and acts on
that, so a re-run never judges one interval two ways).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import desc, insert, select, update
from sqlalchemy.exc import IntegrityError

from gennaker.errors import NotFound
from gennaker.metrics.judge import Judgement, Window
from gennaker.metrics.sources import MetricError, Series
from gennaker.metrics.tables import canary_analyses, canary_judgements
from gennaker.store.db import Database

MESSAGE_MAX = 1000
LIST_LIMIT = 200


def create_analysis(
    db: Database,
    *,
    application: str,
    baseline: str,
    canary: str,
    location: str,
    config: Mapping[str, Any],
    started_at: float,
    execution_id: str | None = None,
    stage_id: str | None = None,
    attempt: int = 1,
) -> str:
    """The analysis of this execution's stage attempt: created once, found again after that."""
    if execution_id is not None:
        existing = _find(db, execution_id, stage_id, attempt)
        if existing:
            return existing
    analysis_id = uuid.uuid4().hex
    try:
        with db.begin() as conn:
            conn.execute(
                insert(canary_analyses).values(
                    id=analysis_id,
                    execution_id=execution_id,
                    stage_id=stage_id,
                    attempt=attempt,
                    application=application,
                    baseline=baseline,
                    canary=canary,
                    location=location,
                    config=dict(config),
                    started_at=started_at,
                    status="running",
                )
            )
    except IntegrityError:  # another delivery of the same task created it first
        found = _find(db, execution_id, stage_id, attempt) if execution_id is not None else None
        if found is None:
            raise
        return found
    return analysis_id


def _find(db: Database, execution_id: str | None, stage_id: str | None, attempt: int) -> str | None:
    c = canary_analyses.c
    with db.read() as conn:
        row = conn.execute(
            select(c.id).where(c.execution_id == execution_id, c.stage_id == stage_id, c.attempt == attempt)
        ).first()
    return row.id if row else None


def series_json(series: Series | MetricError | None) -> dict[str, Any]:
    """A series as the report draws it (or the reason there is none)."""
    if isinstance(series, Series):
        return {"t": list(series.timestamps), "v": [v if math.isfinite(v) else None for v in series.values]}
    if isinstance(series, MetricError):
        return {"error": series.reason}
    return {"error": "not fetched"}


def record_judgement(
    db: Database,
    analysis_id: str,
    window: Window,
    judgement: Judgement,
    baseline: Mapping[str, Series | MetricError],
    canary: Mapping[str, Series | MetricError],
    judged_at: float | None = None,
) -> dict[str, Any]:
    """Store the judgement of interval ``window.index`` unless one is stored already; returns the
    stored one (score, result, ...) either way."""
    stored = get_judgement(db, analysis_id, window.index)
    if stored is not None:
        return stored
    metrics = [
        {**m.as_dict(), "baseline": series_json(baseline.get(m.name)), "canary": series_json(canary.get(m.name))}
        for m in judgement.metrics
    ]
    summary = {k: v for k, v in judgement.as_dict().items() if k not in ("metrics", "score", "result")}
    try:
        with db.begin() as conn:
            conn.execute(
                insert(canary_judgements).values(
                    analysis_id=analysis_id,
                    index=window.index,
                    window_start=window.start.timestamp(),
                    window_end=window.end.timestamp(),
                    judged_at=judged_at if judged_at is not None else time.time(),
                    score=judgement.score,
                    result=str(judgement.result),
                    summary=summary,
                    metrics=metrics,
                )
            )
    except IntegrityError:  # stored meanwhile by another delivery: that one stands
        pass
    found = get_judgement(db, analysis_id, window.index)
    assert found is not None
    return found


def get_judgement(db: Database, analysis_id: str, index: int) -> dict[str, Any] | None:
    c = canary_judgements.c
    with db.read() as conn:
        row = conn.execute(select(canary_judgements).where(c.analysis_id == analysis_id, c.index == index)).first()
    return _judgement(row) if row else None


def _judgement(row: Any) -> dict[str, Any]:
    return {
        "index": row.index,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "judged_at": row.judged_at,
        "score": row.score,
        "result": row.result,
        **dict(row.summary or {}),
        "metrics": list(row.metrics or []),
    }


def finish_analysis(
    db: Database, analysis_id: str, status: str, result: str | None, score: float | None, message: str | None = None
) -> None:
    """Record the outcome (again, harmlessly, if the task runs twice: the first end time stays)."""
    c = canary_analyses.c
    with db.begin() as conn:
        row = conn.execute(select(c.ended_at).where(c.id == analysis_id)).first()
        if row is None:
            raise NotFound(f"no canary analysis {analysis_id}")
        conn.execute(
            update(canary_analyses)
            .where(c.id == analysis_id)
            .values(
                status=status,
                result=result,
                score=score,
                message=(message or "")[:MESSAGE_MAX] or None,
                ended_at=row.ended_at if row.ended_at is not None else time.time(),
            )
        )


def _analysis(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "execution_id": row.execution_id,
        "stage_id": row.stage_id,
        "attempt": row.attempt,
        "application": row.application,
        "baseline": row.baseline,
        "canary": row.canary,
        "location": row.location,
        "config": row.config,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "status": row.status,
        "result": row.result,
        "score": row.score,
        "message": row.message,
    }


def get_analysis(db: Database, analysis_id: str, readable: Collection[str] | None = None) -> dict[str, Any]:
    """An analysis with its judgements (in order). ``readable`` None: every application; otherwise
    one outside it is NotFound, exactly like one that does not exist (its existence is not told)."""
    with db.read() as conn:
        row = conn.execute(select(canary_analyses).where(canary_analyses.c.id == analysis_id)).first()
        if row is None or (readable is not None and row.application not in readable):
            raise NotFound(f"no canary analysis {analysis_id}")
        judgements = conn.execute(
            select(canary_judgements)
            .where(canary_judgements.c.analysis_id == analysis_id)
            .order_by(canary_judgements.c.index)
        ).all()
    return {**_analysis(row), "judgements": [_judgement(j) for j in judgements]}


def list_analyses(
    db: Database,
    execution_id: str | None = None,
    readable: Collection[str] | None = None,
    limit: int = LIST_LIMIT,
) -> list[dict[str, Any]]:
    """Analyses, newest first, without their judgements."""
    c = canary_analyses.c
    q = select(canary_analyses).order_by(desc(c.started_at)).limit(max(1, min(limit, LIST_LIMIT)))
    if execution_id is not None:
        q = q.where(c.execution_id == execution_id)
    if readable is not None:
        q = q.where(c.application.in_(sorted(readable)))
    with db.read() as conn:
        return [_analysis(r) for r in conn.execute(q).all()]
