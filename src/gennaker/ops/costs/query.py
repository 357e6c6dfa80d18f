"""The neutral cost query (what to group by, over which period, how fine, which metric) and the
periods it covers. Every source answers the same query with the same daily amounts."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Literal

from gennaker.errors import InvalidInput

DIMENSIONS = ("account", "service", "region")
TAG_GROUPS = ("application", "environment")
UNTAGGED = ""  # the group of spend that carries no value for the grouping's tag
MAX_TAG_KEY = 128  # AWS tag keys are at most 128 characters

Granularity = Literal["daily", "monthly"]
Metric = Literal["unblended", "amortized"]


@dataclass(frozen=True)
class CostQuery:
    group_by: str = "service"  # account | service | region | application | environment | tag:KEY
    period: str = "30d"  # 30d (any Nd up to 366) | month (to date) | YYYY-MM
    granularity: Granularity = "daily"
    metric: Metric = "unblended"
    # Only spend tagged with one of these applications (a caller restricted to them); None = all.
    applications: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        validate_group_by(self.group_by)
        if self.granularity not in ("daily", "monthly"):
            raise InvalidInput(f"granularity '{self.granularity}' is not daily or monthly")
        if self.metric not in ("unblended", "amortized"):
            raise InvalidInput(f"metric '{self.metric}' is not unblended or amortized")
        parse_period(self.period, date(2000, 1, 1))  # refuses a malformed period early

    def key(self, source: str, today: date) -> str:
        """The cache key: the source, the query and the dates it resolves to today."""
        period = parse_period(self.period, today)
        body = {"source": source, **asdict(self), "dates": [str(d) for d in period.dates()]}
        body["applications"] = sorted(self.applications) if self.applications is not None else None
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def validate_group_by(group_by: str) -> None:
    if group_by in DIMENSIONS or group_by in TAG_GROUPS:
        return
    if group_by.startswith("tag:") and 0 < len(group_by) - 4 <= MAX_TAG_KEY and group_by.isprintable():
        return
    raise InvalidInput(
        f"cannot group by '{group_by[:140]}': use account, service, region, application, environment or tag:KEY"
    )


def tag_key(group_by: str, application_key: str, environment_key: str) -> str | None:
    """The tag a grouping reads, or None for a dimension (account, service, region)."""
    if group_by == "application":
        return application_key
    if group_by == "environment":
        return environment_key
    if group_by.startswith("tag:"):
        return group_by[4:]
    return None


@dataclass(frozen=True)
class Period:
    """``start``..``end`` (end exclusive) and the previous period it is compared with,
    ``previous_start``..``previous_end``; one request covers ``previous_start``..``end``."""

    start: date
    end: date
    previous_start: date
    previous_end: date

    def dates(self) -> tuple[date, date, date, date]:
        return (self.previous_start, self.previous_end, self.start, self.end)

    @property
    def days(self) -> int:
        return (self.end - self.start).days


_DAYS = re.compile(r"([1-9][0-9]{0,2})d")
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


def parse_period(text: str, today: date) -> Period:
    """``30d``: the 30 days before today; ``month``: this month to today; ``YYYY-MM``: that month.
    The previous period is as long, just before; for ``month``, the same days of the month before;
    for ``YYYY-MM``, the whole month before."""
    if m := _DAYS.fullmatch(text):
        n = int(m.group(1))
        if n > 366:
            raise InvalidInput(f"period '{text}' is longer than 366 days")
        end = today
        return Period(end - timedelta(days=n), end, end - timedelta(days=2 * n), end - timedelta(days=n))
    if text == "month":
        start = today.replace(day=1)
        end = max(today, start + timedelta(days=1))  # on the 1st: the 1st itself
        prev_first = (start - timedelta(days=1)).replace(day=1)
        # Month to date against the same days of the month before (as many as it has).
        prev_len = min((end - start).days, (start - prev_first).days)
        return Period(start, end, prev_first, prev_first + timedelta(days=prev_len))
    if m := _MONTH.fullmatch(text):
        year, month = int(m.group(1)), int(m.group(2))
        start = date(year, month, 1)
        end = start + timedelta(days=calendar.monthrange(year, month)[1])
        previous_start = (start - timedelta(days=1)).replace(day=1)
        return Period(start, end, previous_start, start)
    raise InvalidInput(f"period '{text[:40]}' is not Nd (e.g. 30d), month or YYYY-MM")
