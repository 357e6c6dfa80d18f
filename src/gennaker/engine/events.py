"""What the engine says happened to an execution, for whoever the composition root lets listen.

``Engine.on_event`` is called inside the very transaction that commits the change it reports
(``pipeline.starting`` with the execution's RUNNING, ``stage.failed`` with the stage's FAILED), so a
listener that writes rows (notifications' deliveries) commits with the change or not at all. The
engine knows nothing of who listens; a listener must be quick, leaves the sending to durable jobs,
and writes its own rows through ``write_in_savepoint``: a failure there is logged and undoes only
them. It reads without a savepoint (two round trips each, paid at every execution's end otherwise):
a read the database itself fails has lost the transaction on PostgreSQL, so that one fails the
change, which is retried, rather than letting COMMIT quietly roll it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

log = logging.getLogger("gennaker.engine")


@dataclass(frozen=True)
class ExecutionEvent:
    event: str  # one of gennaker.spec.models.NOTIFICATION_EVENTS
    execution_id: str
    pipeline: str
    application: str
    status: str  # the execution's, or the stage's for a stage or judgment event
    at: float
    stage_id: str | None = None
    stage_name: str | None = None
    attempt: int | None = None
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # a judgment's request or choice


EventHook = Callable[[Connection, ExecutionEvent], None]


def write_in_savepoint(conn: Connection, what: str, write: Callable[[], None]) -> bool:
    """A listener's writes, in a savepoint of the engine's transaction: if they fail, that is logged
    and undoes only them, and the change the listener was told of still commits. False if they failed."""
    try:
        with conn.begin_nested():
            write()
    except Exception:
        log.exception("%s failed; the change it was told of commits without it", what)
        return False
    return True
