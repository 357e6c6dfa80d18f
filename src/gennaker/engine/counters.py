"""Totals of engine events that leave no row to count later, stored so every replica reports the same.

A message handled after a lost lease is deleted like any other; a dead letter becomes a failed stage;
a repaired execution goes on as if nothing happened. ``/metrics`` reads these totals from the
database, so a scrape of any server replica sees the work of every worker.
"""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gennaker.store.tables import engine_counters

REDELIVERIES = "redeliveries"  # a message claimed again after its lease ran out
DEAD_LETTERS = "dead_letters"  # a message given up on (its stage failed)
REPAIRED = "repaired_executions"  # an execution the self-check found with nothing queued


def increment(conn: Connection, name: str, by: int = 1) -> None:
    """Add to a total in the caller's transaction (an upsert: two workers never lose a count)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(engine_counters).values(name=name, value=by)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"value": engine_counters.c.value + by}))


def totals(conn: Connection) -> dict[str, int]:
    return {r.name: int(r.value) for r in conn.execute(select(engine_counters.c.name, engine_counters.c.value))}
