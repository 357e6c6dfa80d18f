"""What the engine says happened to an execution, for whoever the composition root lets listen.

``Engine.on_event`` is called inside the very transaction that commits the change it reports
(``pipeline.starting`` with the execution's RUNNING, ``stage.failed`` with the stage's FAILED), so a
listener that writes rows (notifications' deliveries) commits with the change or not at all. The
engine knows nothing of who listens; a listener must be quick and must not raise (it writes its own
work in a savepoint and leaves the sending to durable jobs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection


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
