"""Audit reports. Every renderer takes the JSON contract (a dict), so stored audits render alike."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from gennaker.errors import ConfigError
from gennaker.ops.reports.html import render_html
from gennaker.ops.reports.junit import render_junit
from gennaker.ops.reports.sarif import render_sarif

FORMATS = ("table", "json", "html", "sarif", "junit")


def audit_schema() -> dict[str, Any]:
    text = resources.files("gennaker.ops").joinpath("schemas/audit.schema.json").read_text()
    return dict(json.loads(text))


def render(report: dict[str, Any], fmt: str) -> str:
    """Text of a report in a file format (``table`` is rendered by ``reports.table`` to a console)."""
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=False) + "\n"
    if fmt == "html":
        return render_html(report)
    if fmt == "sarif":
        return json.dumps(render_sarif(report), indent=2) + "\n"
    if fmt == "junit":
        return render_junit(report)
    raise ConfigError(f"unknown report format '{fmt}' (choose from {', '.join(FORMATS)})")
