"""Rich rendering shared by CLI commands: stage tables, execution lists, times."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gennaker.spec.durations import format_duration


def console(stderr: bool = False) -> Console:
    """A console for command output. Piped output gets wide lines (tables not folded to 80 columns),
    since what reads it is a file or another program, not a narrow window."""
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


STATUS_STYLE = {
    "SUCCEEDED": "green",
    "RUNNING": "blue",
    "WAITING": "yellow",
    "PAUSED": "yellow",
    "NOT_STARTED": "dim",
    "FAILED": "red",
    "TERMINAL": "red",
    "FAILED_CONTINUE": "dark_orange",
    "CANCELED": "magenta",
    "SKIPPED": "dim",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def duration(start: float | None, end: float | None) -> str:
    if not start:
        return "-"
    return format_duration((end or time.time()) - start)


def plain(value: Any) -> Text:
    """A table cell as it is: names, users and messages come from documents, commands and people,
    and a ``[/x]`` in them is text, not Rich markup (which would raise and break the listing)."""
    return Text("" if value is None else str(value))


def stage_table(ex: dict[str, Any]) -> Table:
    title = plain(f"{ex['pipeline']} · {ex['id']} · {ex['status']}")
    table = Table(title=title, title_justify="left")
    for col in ("Step", "Type", "Started", "Duration", "Status", "Detail"):
        table.add_column(col)
    for s in ex["stages"]:
        detail = s.get("message") or ""
        if s.get("awaiting_judgment"):
            detail = "awaiting judgment: " + " / ".join(judgment_options(s))
        table.add_row(
            plain(s["name"]),
            plain(s["type"]),
            when(s.get("started_at")),
            duration(s.get("started_at"), s.get("ended_at")),
            status_text(s["status"]),
            plain(detail),
        )
    return table


def judgment_options(stage: dict[str, Any]) -> list[str]:
    """The choices a stage awaiting judgment offers (``views.judgment_request``), the first to go on."""
    return list((stage.get("judgment_request") or {}).get("options") or ["approve", "reject"])


def execution_list(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    table.add_column("Id", no_wrap=True, min_width=20)  # ids are what people copy: never cut them
    for col in ("Pipeline", "Status", "Triggered by", "Created", "Duration"):
        table.add_column(col)
    for r in rows:
        trig = r.get("trigger") or {}
        table.add_row(
            plain(r["id"]),
            plain(r["pipeline"]),
            status_text(r["status"]),
            plain(f"{trig.get('user', '?')} ({trig.get('type', '?')})"),
            when(r["created_at"]),
            duration(r.get("started_at"), r.get("ended_at")),
        )
    return table
