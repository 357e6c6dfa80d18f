"""Parsers for command-line values, shared by every command: ``typer.Option(parser=port)``.

Each takes what the user typed (or the option's default, which Typer passes through too) and returns
the value, or raises ``typer.BadParameter`` with a message that says what is accepted — so a bad value
is one clear line and exit 2 before anything starts, never a traceback from deep inside.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from gennaker.spec.durations import parse_duration

MAX_PORT = 65535
MAX_THREADS = 1024  # more task threads than this is a typo, not a deployment
MAX_DAYS = 36500.0  # a hundred years: later than any timestamp we format
MAX_DURATION_S = 10 * 365 * 86400.0
MAX_NAME = 200
MAX_TEXT = 10_000
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise typer.BadParameter(f"{_shown(value)} is not a whole number")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    # int() also takes "1_000" and the digits of every script; a count here is plain ASCII digits.
    if not _INTEGER.fullmatch(text):
        raise typer.BadParameter(f"{_shown(value)} is not a whole number")
    return int(text)


def int_range(low: int, high: int) -> Callable[[Any], int]:
    """A parser for a whole number in [low, high]."""

    def parse(value: Any) -> int:
        n = _integer(value)
        if not low <= n <= high:
            raise typer.BadParameter(f"must be between {low} and {high}, not {n}")
        return n

    return parse


port = int_range(1, MAX_PORT)
threads = int_range(1, MAX_THREADS)
threads_or_none = int_range(0, MAX_THREADS)  # 0: no in-process worker


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise typer.BadParameter(f"{_shown(value)} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise typer.BadParameter(f"{_shown(value)} is not a number") from None
    if not math.isfinite(number):
        raise typer.BadParameter(f"must be a finite number, not {_shown(value)}")
    return number


def days(value: Any) -> float:
    """A positive, finite number of days (fractions allowed), at most a hundred years."""
    n = _number(value)
    if not 0 < n <= MAX_DAYS:
        raise typer.BadParameter(f"must be more than 0 and at most {MAX_DAYS:g} days, not {n:g}")
    return n


def duration(value: Any) -> float:
    """A duration (``90``, ``30s``, ``10m``, ``4h``, ``3d``, ``1h30m``) in seconds: finite, not negative."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise typer.BadParameter(f"not a duration: {_shown(value)} (use e.g. 30s, 10m, 4h, 3d)")
    if seconds > MAX_DURATION_S:
        raise typer.BadParameter(f"{_shown(value)} is longer than ten years")
    return seconds


def duration_text(value: Any) -> str:
    """A duration checked like ``duration`` but kept as typed (for values handed on to a pipeline)."""
    duration(value)
    return str(value).strip()


def _printable(value: Any, what: str, limit: int, allowed: str = "") -> str:
    text = str(value)
    if len(text) > limit:
        raise typer.BadParameter(f"{what} is longer than {limit} characters")
    # control characters and line breaks (not every non-printable: NBSP, ZWJ in emoji are fine)
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") and ch not in allowed for ch in text):
        raise typer.BadParameter(f"{what} {_shown(text)} contains control characters or line breaks")
    return text


def name(value: Any) -> str:
    """A name people will read in lists: not empty, one line, at most 200 characters."""
    text = _printable(value, "the name", MAX_NAME).strip()
    if not text:
        raise typer.BadParameter("must not be empty")
    return text


def text(value: Any) -> str:
    """Free text (a reason, a comment): printable, bounded; may be empty."""
    return _printable(value, "the text", MAX_TEXT, allowed="\t\n")


def database(value: Any) -> str:
    """A database URL or SQLite path; whether it opens is checked where it is opened (store.db)."""
    raw = str(value)
    if not raw.strip():
        raise typer.BadParameter("must not be empty (a database URL or SQLite path)")
    if "\x00" in raw:
        raise typer.BadParameter("contains a NUL character")
    return raw


def path(value: Any) -> str:
    """A file name: not empty, no NUL; whether it exists is for the command that reads it to say."""
    raw = str(value)
    if not raw.strip():
        raise typer.BadParameter("must not be empty (a file name)")
    if "\x00" in raw:
        raise typer.BadParameter("contains a NUL character")
    try:
        os.stat(raw)
    except (FileNotFoundError, NotADirectoryError):
        pass  # missing: the command that reads it says so, in its own words
    except OSError as exc:  # a name too long for the file system, a symlink loop, …
        raise typer.BadParameter(f"{_shown(raw)}: {exc.strerror or exc}") from None
    return raw


def file(value: Any) -> Path:
    """``path`` as a Path, for options and arguments typed ``Path``."""
    return Path(path(value))


def directory(value: Any) -> Path:
    """A directory to use or create: not a file, and a name the file system can hold."""
    raw = path(value)
    where = Path(raw).expanduser()
    try:
        if where.exists() and not where.is_dir():
            raise typer.BadParameter(f"{_shown(raw)} exists and is not a directory")
    except OSError as exc:  # e.g. a name too long
        raise typer.BadParameter(f"{_shown(raw)}: {exc.strerror or exc}") from None
    return where


def token(value: Any) -> str:
    """An API token as printed by ``tokens create``: one line of printable ASCII."""
    raw = str(value).strip()
    if not raw or not raw.isascii() or not raw.isprintable() or " " in raw or len(raw) > 500:
        raise typer.BadParameter("is not an API token (one line of letters, digits and punctuation)")
    return raw


def server_url(value: Any) -> str:
    """The base URL of a Gennaker server: http(s)://host[:port][/prefix]."""
    raw = str(value).strip()
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise typer.BadParameter(f"{_shown(raw)} is not a URL (e.g. http://127.0.0.1:8080)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{_shown(raw)} is not an http(s) URL (e.g. http://127.0.0.1:8080)")
    return raw


def host(value: Any) -> str:
    """An address to listen on: an IP address or a host name."""
    raw = str(value).strip()
    try:
        ipaddress.ip_address(raw)
        return raw
    except ValueError:
        pass
    labels = raw.rstrip(".").split(".")
    if not raw or len(raw) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in labels):
        raise typer.BadParameter(f"{_shown(raw)} is not an IP address or host name")
    return raw


def name_value(value: Any) -> str:
    """A ``name=value`` pair (``--param``): the name must not be empty; the value may be."""
    raw = str(value)
    key, sep, _ = raw.partition("=")
    if not sep or not key.strip():
        raise typer.BadParameter(f"takes name=value, not {_shown(raw)}")
    return raw
