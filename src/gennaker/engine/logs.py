"""Stage logs: lines stored as they come, so a log survives the process (or worker) that wrote it.

Lines are stored with the execution's secret parameters masked (``gennaker.engine.secrets``): a command
that echoes a password leaves no copy of it in the database."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select

from gennaker.engine import secrets
from gennaker.store.db import Database
from gennaker.store.tables import executions, logs


def append(
    db: Database,
    execution_id: str,
    stage_id: str,
    attempt: int,
    stream: str,
    lines: Sequence[str],
    at: float | None = None,
) -> None:
    if not lines:
        return
    with db.begin() as conn:
        append_in(conn, execution_id, stage_id, attempt, stream, lines, at)


def append_in(
    conn: Connection,
    execution_id: str,
    stage_id: str,
    attempt: int,
    stream: str,
    lines: Sequence[str],
    at: float | None = None,
) -> None:
    """Append within the caller's transaction (never open a second writer from inside one)."""
    ts = at if at is not None else time.time()
    hidden = secret_values(conn, execution_id)
    conn.execute(
        insert(logs),
        [
            {
                "execution_id": execution_id,
                "stage_id": stage_id,
                "attempt": attempt,
                "stream": stream,
                "line": secrets.mask_text(line, hidden) if hidden else line,
                "at": ts,
            }
            for line in lines
        ],
    )


def secret_values(conn: Connection, execution_id: str) -> list[str]:
    trigger = conn.execute(select(executions.c.trigger).where(executions.c.id == execution_id)).scalar()
    return secrets.secret_values(trigger)


def read(
    conn: Connection, execution_id: str, stage_id: str, after_id: int = 0, limit: int = 5000
) -> list[dict[str, Any]]:
    """Masked again on the way out: lines stored before a value was known to be secret stay hidden."""
    hidden = secret_values(conn, execution_id)
    rows = conn.execute(
        select(logs.c.id, logs.c.attempt, logs.c.stream, logs.c.line, logs.c.at)
        .where(logs.c.execution_id == execution_id, logs.c.stage_id == stage_id, logs.c.id > after_id)
        .order_by(logs.c.id)
        .limit(limit)
    ).all()
    out = [dict(r._mapping) for r in rows]
    if hidden:
        for r in out:
            r["line"] = secrets.mask_text(r["line"], hidden)
    return out
