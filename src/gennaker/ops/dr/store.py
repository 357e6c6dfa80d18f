"""Reading and writing DR drill rows (the ``dr_drills`` table).

``recent_drills`` and ``last_drill`` are the shared contract the console tab and the audit read; the
writers are used by the drill itself (ops/dr/drill.py): a row is inserted RUNNING before anything is
created in AWS, so a worker that dies mid-drill leaves a row its successor finishes.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gennaker.engine.model import new_id
from gennaker.errors import NotFound
from gennaker.ops.dr.tables import dr_drills

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELED")
LIST_MAX = 500


def recent_drills(
    conn: Connection,
    application: str | None = None,
    limit: int = 50,
    *,
    applications: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Newest first. ``applications`` (None: every one) scopes the list to what a caller may read."""
    q = select(dr_drills)
    if application is not None:
        q = q.where(dr_drills.c.application == application)
    if applications is not None:
        q = q.where(dr_drills.c.application.in_(list(applications)))
    q = q.order_by(dr_drills.c.started_at.desc(), dr_drills.c.id.desc()).limit(max(1, min(limit, LIST_MAX)))
    return [dict(r._mapping) for r in conn.execute(q).all()]


def last_drill(
    conn: Connection,
    application: str,
    scenario: str | None = None,
    status: str | None = "SUCCEEDED",
    since: float | None = None,
) -> dict[str, Any] | None:
    """The newest drill of ``application`` (of that scenario, in that status, started after ``since``)."""
    q = select(dr_drills).where(dr_drills.c.application == application)
    if scenario is not None:
        q = q.where(dr_drills.c.scenario == scenario)
    if status is not None:
        q = q.where(dr_drills.c.status == status)
    if since is not None:
        q = q.where(dr_drills.c.started_at >= since)
    row = conn.execute(q.order_by(dr_drills.c.started_at.desc(), dr_drills.c.id.desc()).limit(1)).first()
    return dict(row._mapping) if row is not None else None


def get_drill(conn: Connection, drill_id: str, applications: Collection[str] | None = None) -> dict[str, Any]:
    q = select(dr_drills).where(dr_drills.c.id == drill_id)
    if applications is not None:
        q = q.where(dr_drills.c.application.in_(list(applications)))
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no DR drill '{drill_id[:100]}'")
    return dict(row._mapping)


def find_drill(conn: Connection, drill_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(dr_drills).where(dr_drills.c.id == drill_id)).first()
    return dict(row._mapping) if row is not None else None


def start_drill(
    conn: Connection,
    *,
    application: str,
    account: str | None,
    scenario: str,
    from_region: str | None,
    to_region: str | None,
    objectives: dict[str, Any],
    execution_id: str | None = None,
    stage_id: str | None = None,
    drill_id: str | None = None,
    started_at: float | None = None,
) -> str:
    """Insert the RUNNING row and return its id (the value of every ``gennaker:drill`` tag)."""
    drill_id = drill_id or new_id()
    conn.execute(
        insert(dr_drills).values(
            id=drill_id,
            application=application,
            account=account,
            scenario=scenario,
            from_region=from_region,
            to_region=to_region,
            status="RUNNING",
            started_at=started_at if started_at is not None else time.time(),
            objectives=objectives,
            report={"steps": [], "missing": [], "met_objectives": None},
            rpo=[],
            execution_id=execution_id,
            stage_id=stage_id,
        )
    )
    return drill_id


def save_progress(conn: Connection, drill_id: str, **values: Any) -> None:
    """Write the report so far (steps, rpo, rto_s): what a successor worker and the console read."""
    allowed = {"report", "rpo", "rpo_s", "rto_s"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"cannot write {sorted(unknown)} on a running drill")
    conn.execute(update(dr_drills).where(dr_drills.c.id == drill_id).values(**values))


def finish_drill(
    conn: Connection,
    drill_id: str,
    status: str,
    *,
    report: dict[str, Any] | None = None,
    rto_s: float | None = None,
    rpo: list[dict[str, Any]] | None = None,
    rpo_s: float | None = None,
    ended_at: float | None = None,
) -> None:
    if status not in STATUSES or status == "RUNNING":
        raise ValueError(f"a drill ends SUCCEEDED, FAILED or CANCELED, not {status}")
    values: dict[str, Any] = {"status": status, "ended_at": ended_at if ended_at is not None else time.time()}
    if report is not None:
        values["report"] = report
    if rto_s is not None:
        values["rto_s"] = rto_s
    if rpo is not None:
        values["rpo"] = rpo
    if rpo_s is not None:
        values["rpo_s"] = rpo_s
    conn.execute(update(dr_drills).where(dr_drills.c.id == drill_id).values(**values))
