"""Which execution and stage the current thread works on, for every log line it writes.

The worker binds the ids of the message it handles; a log formatter (``--log-format json``) reads
them, so a line from deep inside a provider still says which execution it belongs to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[tuple[str | None, str | None]] = ContextVar("gennaker_log_ids", default=(None, None))


@contextmanager
def bound(execution_id: str | None, stage_id: str | None = None) -> Iterator[None]:
    token = _current.set((execution_id, stage_id))
    try:
        yield
    finally:
        _current.reset(token)


def current() -> tuple[str | None, str | None]:
    return _current.get()


class IdsFilter(logging.Filter):
    """Puts ``execution_id`` and ``stage_id`` on every record (None outside engine work)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.execution_id, record.stage_id = _current.get()
        return True
