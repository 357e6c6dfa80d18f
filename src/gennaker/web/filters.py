"""Jinja filters: times, durations and status names as the console shows them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

STATUS_LABEL = {
    "NOT_STARTED": "Not Started",
    "RUNNING": "Running",
    "WAITING": "Waiting",
    "PAUSED": "Paused",
    "SUCCEEDED": "Succeeded",
    "FAILED": "Failed",
    "FAILED_CONTINUE": "Failed (continued)",
    "TERMINAL": "Terminal",
    "CANCELED": "Canceled",
    "SKIPPED": "Skipped",
    "AWAITING_JUDGMENT": "Awaiting Judgment",
}


def when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(start: float | None, end: float | None = None) -> str:
    if not start:
        return "-"
    secs = int((end or time.time()) - start)
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m {secs % 60:02d}s"
    return f"{secs // 3600}h {secs % 3600 // 60:02d}m"


def status_label(status: Any) -> str:
    return STATUS_LABEL.get(str(status), str(status).title())


def install(env: Environment) -> None:
    env.filters["when"] = when
    env.filters["duration"] = duration
    env.filters["status_label"] = status_label
