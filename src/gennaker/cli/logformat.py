"""How log lines look: text for people, JSON (``--log-format json``) for log pipelines.

A JSON line carries the execution and stage ids the worker thread is handling (``engine.logcontext``),
so a line from a provider deep inside a deploy can be found by its execution.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from gennaker.engine.logcontext import IdsFilter

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "execution_id": getattr(record, "execution_id", None),
            "stage_id": getattr(record, "stage_id", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: int, fmt: str) -> None:
    """Replace the root handlers (a second call, e.g. in tests, must not add a second handler)."""
    handler = logging.StreamHandler()
    handler.addFilter(IdsFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
