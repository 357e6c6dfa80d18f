"""The DR drill facts an audit hands its checks: per application, the successful drills of the last
``dr_drill_max_age_days``, newest first. Read here, by the audit's caller, so the checks stay pure
functions of their inventory (ops/checks/base.py) and never query the database."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from gennaker.ops.dr.tables import dr_drills
from gennaker.ops.settings import OpsSettings
from gennaker.store.db import Database

FIELDS = ("id", "scenario", "account", "from_region", "to_region", "started_at", "ended_at", "rto_s", "rpo_s")
PER_APPLICATION = 20  # the checks want the newest per scenario; a few spare is plenty


def recent_successful_drills(
    db: Database, settings: OpsSettings, now: float | None = None
) -> dict[str, list[dict[str, Any]]]:
    since = (now if now is not None else time.time()) - settings.dr_drill_max_age_days * 86400
    q = (
        select(*(dr_drills.c[f] for f in ("application", *FIELDS)))
        .where(dr_drills.c.status == "SUCCEEDED", dr_drills.c.started_at >= since)
        .order_by(dr_drills.c.started_at.desc(), dr_drills.c.id.desc())
    )
    out: dict[str, list[dict[str, Any]]] = {}
    with db.read() as conn:
        for row in conn.execute(q):
            m = dict(row._mapping)
            drills = out.setdefault(str(m.pop("application")), [])
            if len(drills) < PER_APPLICATION:
                drills.append(m)
    return out
