"""Stage logs: lines stored as they come, so a log survives the process (or worker) that wrote it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select

from gennaker.store.db import Database
from gennaker.store.tables import logs


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
    conn.execute(
        insert(logs),
        [
            {
                "execution_id": execution_id,
                "stage_id": stage_id,
                "attempt": attempt,
                "stream": stream,
                "line": line,
                "at": ts,
            }
            for line in lines
        ],
    )


def read(
    conn: Connection, execution_id: str, stage_id: str, after_id: int = 0, limit: int = 5000
) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(logs.c.id, logs.c.attempt, logs.c.stream, logs.c.line, logs.c.at)
        .where(logs.c.execution_id == execution_id, logs.c.stage_id == stage_id, logs.c.id > after_id)
        .order_by(logs.c.id)
        .limit(limit)
    ).all()
    return [dict(r._mapping) for r in rows]
