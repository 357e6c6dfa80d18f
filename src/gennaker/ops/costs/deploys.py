"""What a deploy's extra server group cost: a red/black deploy keeps the previous group running
(disabled, for a fast rollback) through the soak until a later stage destroys it. Computed from the
stored stage data alone (no cloud call, no price API): the previous group's desired capacity, from
when the deploy started to when that group was let go, priced by ``costs.rates`` (USD per
instance-hour by instance type).

A stage is read as a deploy by what its stored context says it did (a new ``server_group`` and the
``previous`` group's capacity), never by its type name. The previous group is let go by the first
later stage whose outputs name it (a cleanup), by the deploy itself under highlander (which destroys
it in the deploy), else it is still running when the execution ended: counted to then (a floor).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from gennaker.errors import NotFound
from gennaker.store.db import Database
from gennaker.store.tables import executions, stages

DESTROYS_IN_DEPLOY = {"highlander"}  # strategies whose deploy itself removes the previous group


@dataclass
class DeployCost:
    execution_id: str
    application: str
    stage_id: str
    server_group: str
    previous_server_group: str
    instance_type: str | None
    instances: int  # the previous group's desired capacity, kept alongside the new one
    started_at: float
    released_at: float
    released_by: str  # the stage that let the previous group go, or "execution end" / "still running"
    instance_hours: float
    rate: float | None  # USD per instance-hour from costs.rates; None: not in the table
    cost: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _instance_type(config: dict[str, Any]) -> str | None:
    for key in ("instance_type",):
        if isinstance(config.get(key), str):
            return str(config[key])
    for value in config.values():  # a provider's options nested under its name
        if isinstance(value, dict) and isinstance(value.get("instance_type"), str):
            return str(value["instance_type"])
    return None


def deploy_costs(
    db: Database,
    execution_id: str,
    rates: dict[str, float],
    now: float | None = None,
    readable: frozenset[str] | None = None,
) -> list[DeployCost]:
    """``readable``: the caller's applications (None: all); another application's execution is not found."""
    with db.read() as conn:
        ex = conn.execute(sa.select(executions).where(executions.c.id == execution_id)).mappings().first()
        if ex is None or (readable is not None and ex["application"] not in readable):
            raise NotFound(f"execution '{execution_id[:40]}' not found")
        rows = list(
            conn.execute(
                sa.select(stages).where(stages.c.execution_id == execution_id).order_by(stages.c.idx)
            ).mappings()
        )
    out: list[DeployCost] = []
    for st in rows:
        ctx = st["context"] or {}
        prev = ctx.get("previous")
        if not (ctx.get("server_group") and isinstance(prev, dict) and isinstance(prev.get("capacity"), dict)):
            continue
        if st["started_at"] is None:
            continue
        instances = int(prev["capacity"].get("desired") or 0)
        start = float(st["started_at"])
        if (st["config"] or {}).get("strategy") in DESTROYS_IN_DEPLOY:
            end, by = st["ended_at"], st["stage_id"]
        else:
            end, by = None, ""
            for later in rows:
                if later["started_at"] is None or later["started_at"] < start or later["stage_id"] == st["stage_id"]:
                    continue
                if later["ended_at"] is not None and prev["name"] in json.dumps(later["outputs"] or {}):
                    end, by = later["ended_at"], later["stage_id"]
                    break
            if end is None:
                end = ex["ended_at"]
                by = "execution end" if end is not None else "still running"
        released = float(end) if end is not None else (now or time.time())
        hours = max(0.0, released - start) / 3600 * instances
        itype = _instance_type(st["config"] or {})
        rate = rates.get(itype) if itype else None
        out.append(
            DeployCost(
                execution_id=execution_id,
                application=str(ex["application"]),
                stage_id=st["stage_id"],
                server_group=str(ctx["server_group"]),
                previous_server_group=str(prev["name"]),
                instance_type=itype,
                instances=instances,
                started_at=start,
                released_at=released,
                released_by=by,
                instance_hours=round(hours, 6),
                rate=rate,
                cost=None if rate is None else round(hours * rate, 6),
            )
        )
    return out
