"""The engine's messages: one small frozen data class per kind, as Orca's queue has.

A message says what should happen next to an execution; ``Engine.HANDLERS`` (runner.py) names the one
handler of each. This module is the one place that turns a message into a queue row (``kind`` is
the class name, ``payload`` every field but the execution and stage ids, which have columns of their
own) and back, so no handler ever reads a payload key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StartExecution:
    """Start an execution (or leave it queued behind its pipeline's concurrency limit)."""

    execution_id: str


@dataclass(frozen=True)
class StartStage:
    """Start a stage whose requirements are met: resolve its config, or skip it by its ``when``."""

    execution_id: str
    stage_id: str


@dataclass(frozen=True)
class RunTask:
    """Run (or poll) task ``task`` of ``attempt`` of a stage; a message of an earlier attempt or task is
    stale and dropped."""

    execution_id: str
    stage_id: str
    task: int
    attempt: int


@dataclass(frozen=True)
class CancelStage:
    """Ask a canceled stage's type to stop what it started (a process, a deploy). ``attempt`` None:
    whatever attempt it is on."""

    execution_id: str
    stage_id: str
    attempt: int | None = None


@dataclass(frozen=True)
class Unreadable:
    """A queue row that makes no message: a kind this version does not know (written by a newer one
    during an upgrade), a missing field. Never written to the queue. Its handler fails, so the worker
    retries it with backoff (a newer worker may take it meanwhile), then dead-letters it, which fails
    its stage (or its execution) with ``error``; a claim never fails over it."""

    execution_id: str
    stage_id: str | None
    kind: str
    error: str


Message = StartExecution | StartStage | RunTask | CancelStage | Unreadable

_TYPES: dict[str, type[Message]] = {t.__name__: t for t in (StartExecution, StartStage, RunTask, CancelStage)}
_COLUMNS = ("execution_id", "stage_id")  # stored in columns of their own, not in the payload


def kind(message_type: type) -> str:
    """The ``kind`` column of a message type's rows."""
    return message_type.__name__


def stage_of(message: Message) -> str | None:
    return None if isinstance(message, StartExecution) else message.stage_id


def encode(message: Message) -> tuple[str, str, str | None, dict[str, Any]]:
    """(kind, execution_id, stage_id, payload) of a queue row."""
    payload = {f.name: getattr(message, f.name) for f in dataclasses.fields(message) if f.name not in _COLUMNS}
    return kind(type(message)), message.execution_id, stage_of(message), payload


def read_row(kind_: str, execution_id: str, stage_id: str | None, payload: dict[str, Any]) -> Message:
    """``decode``, or the ``Unreadable`` message of a row that makes none."""
    try:
        return decode(kind_, execution_id, stage_id, payload)
    except ValueError as exc:
        return Unreadable(execution_id, stage_id, kind_, str(exc))


def decode(kind_: str, execution_id: str, stage_id: str | None, payload: dict[str, Any]) -> Message:
    """The message a queue row holds. A row that does not make a message (an unknown kind, a missing
    field) is a ValueError: the worker retries it, then dead-letters it."""
    cls = _TYPES.get(kind_)
    if cls is None:
        raise ValueError(f"unknown message kind '{kind_}'")
    columns = {"execution_id": execution_id, "stage_id": stage_id}
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in columns:
            values[f.name] = columns[f.name]
        elif f.name in payload:
            values[f.name] = payload[f.name]
    try:
        message = cls(**values)
    except TypeError as exc:
        raise ValueError(f"malformed {kind_} message: {exc}") from None
    if any(getattr(message, c, "") is None for c in _COLUMNS):
        raise ValueError(f"malformed {kind_} message: no stage id")
    return message
