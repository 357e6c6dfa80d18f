"""The engine's vocabulary: statuses and ids (its messages are in ``messages.py``)."""

from __future__ import annotations

import os
import time
from enum import StrEnum


class Status(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    RUNNING = "RUNNING"
    WAITING = "WAITING"  # a stage waiting for time or a judgment
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAILED_CONTINUE = "FAILED_CONTINUE"
    TERMINAL = "TERMINAL"
    CANCELED = "CANCELED"
    SKIPPED = "SKIPPED"


EXECUTION_DONE = frozenset({Status.SUCCEEDED, Status.FAILED, Status.TERMINAL, Status.CANCELED})
STAGE_DONE = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.FAILED_CONTINUE, Status.TERMINAL, Status.CANCELED, Status.SKIPPED}
)
# A stage in one of these lets the stages that require it start.
STAGE_LETS_THROUGH = frozenset({Status.SUCCEEDED, Status.FAILED_CONTINUE, Status.SKIPPED})
STAGE_ACTIVE = frozenset({Status.RUNNING, Status.WAITING})


def new_id() -> str:
    """Time-ordered, unique across hosts: 12 hex digits of milliseconds + 8 random."""
    return f"{int(time.time() * 1000):012x}{os.urandom(4).hex()}"
