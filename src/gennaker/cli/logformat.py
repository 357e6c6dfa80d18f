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
    """Log to stderr as ``fmt`` says. Like ``logging.basicConfig``, text lines are not added where the
    host already handles logging (a test runner capturing it); JSON lines are asked for, so they are.
    Calling it again replaces only the handler it added before."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "gennaker", False)]:
        root.removeHandler(old)
    root.setLevel(level)
    if fmt != "json" and root.handlers:
        return
    handler = logging.StreamHandler()
    handler.gennaker = True  # type: ignore[attr-defined]
    handler.addFilter(IdsFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root.addHandler(handler)
