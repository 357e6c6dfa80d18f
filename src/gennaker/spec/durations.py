"""Durations as people write them: ``90``, ``5s``, ``10m``, ``4h``, ``3d``, ``1h30m``, ``250ms``."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
MAX_SECONDS = 10 * 365 * 86400.0
_MAX_LENGTH = 64  # "1h30m" needs five characters; nothing longer than this is a duration people write


def parse_duration(value: Any) -> float:
    """Seconds in ``value``; raise ValueError with a readable message when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return _bounded(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 4h, 3d)")
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError("empty duration (use e.g. 30s, 10m, 4h, 3d)")
    if len(text) > _MAX_LENGTH:
        raise ValueError(f"not a duration: {value[:20]!r}... is {len(value)} characters long")
    try:
        return _bounded(float(text), value)
    except ValueError as exc:
        if "duration" in str(exc):
            raise
        # not a plain number: read it as parts with units below
    # each part is matched where the last one ended (finditer would search on from every position:
    # quadratic on a long run of digits with no unit)
    pos, total = 0, 0.0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 4h, 3d, 1h30m)")
    return _bounded(total, value)


def _bounded(seconds: float, value: Any) -> float:
    # nan, inf and "1e400" are floats too; a deadline that far ahead overflows every clock
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration: {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"a duration cannot be longer than 10 years: {value!r}")
    return seconds


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    s = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
    if s or not parts:
        parts.append(f"{s}s")
    return "".join(parts[:2])


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts the forms above, stores seconds."""
