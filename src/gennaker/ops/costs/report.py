"""From daily amounts per group to what a person reads: rows with totals, the change against the
previous period and a series per bucket; the untagged row and its share; the top movers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from gennaker.ops.costs.query import UNTAGGED, CostQuery, Period

UNTAGGED_LABEL = "(untagged)"
SPARK = "▁▂▃▄▅▆▇█"

DailyAmount = tuple[date, str, float]  # day, group value (UNTAGGED for no tag), amount in USD


@dataclass
class CostRow:
    key: str  # the group's value; UNTAGGED for spend without the grouping's tag
    total: float
    previous: float
    series: list[float]

    @property
    def label(self) -> str:
        return UNTAGGED_LABEL if self.key == UNTAGGED else self.key

    @property
    def change(self) -> float:
        return self.total - self.previous

    @property
    def change_ratio(self) -> float | None:
        return None if self.previous == 0 else self.change / self.previous

    def sparkline(self) -> str:
        return sparkline(self.series)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "untagged": self.key == UNTAGGED,
            "total": round(self.total, 6),
            "previous": round(self.previous, 6),
            "change": round(self.change, 6),
            "change_ratio": None if self.change_ratio is None else round(self.change_ratio, 9),
            "series": [round(v, 6) for v in self.series],
        }


@dataclass
class CostReport:
    query: CostQuery
    source: str
    period: Period
    buckets: list[date]  # the first day of each bucket of the current period
    rows: list[CostRow]  # largest first; the untagged row among them
    tagged_grouping: bool  # grouped by a tag: the untagged row and share mean something
    requests: int = 0  # Cost Explorer requests this answer cost now (0 when cached or FOCUS)
    cached: bool = False
    fetched_at: float | None = None
    currency: str = "USD"
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(r.total for r in self.rows)

    @property
    def previous_total(self) -> float:
        return sum(r.previous for r in self.rows)

    @property
    def untagged(self) -> float | None:
        if not self.tagged_grouping:
            return None
        return sum(r.total for r in self.rows if r.key == UNTAGGED)

    @property
    def untagged_share(self) -> float | None:
        untagged = self.untagged
        if untagged is None:
            return None
        return 0.0 if self.total == 0 else untagged / self.total

    def movers(self, n: int = 5) -> list[CostRow]:
        """The rows whose spend changed most (either way) against the previous period."""
        moved = [r for r in self.rows if abs(r.change) > 0.005]
        return sorted(moved, key=lambda r: (-abs(r.change), r.key))[:n]

    def as_dict(self) -> dict[str, Any]:
        p = self.period
        share = self.untagged_share
        return {
            "query": {
                "group_by": self.query.group_by,
                "period": self.query.period,
                "granularity": self.query.granularity,
                "metric": self.query.metric,
            },
            "source": self.source,
            "currency": self.currency,
            "start": str(p.start),
            "end": str(p.end),
            "previous_start": str(p.previous_start),
            "previous_end": str(p.previous_end),
            "buckets": [str(b) for b in self.buckets],
            "total": round(self.total, 6),
            "previous_total": round(self.previous_total, 6),
            "change": round(self.total - self.previous_total, 6),
            "untagged": None if self.untagged is None else round(self.untagged, 6),
            "untagged_share": None if share is None else round(share, 9),
            "rows": [r.as_dict() for r in self.rows],
            "movers": [r.key for r in self.movers()],
            "requests": self.requests,
            "cached": self.cached,
            "fetched_at": self.fetched_at,
            "notes": self.notes,
        }


def buckets(period: Period, granularity: str) -> list[date]:
    """Bucket starts of the current period: each day, or each calendar month (the first clipped)."""
    days = [period.start + timedelta(days=i) for i in range(period.days)]
    if granularity == "daily":
        return days
    return sorted({d.replace(day=1) if d.replace(day=1) >= period.start else period.start for d in days})


def build_report(query: CostQuery, source: str, period: Period, amounts: Iterable[DailyAmount]) -> CostReport:
    starts = buckets(period, query.granularity)
    index = {b: i for i, b in enumerate(starts)}
    current: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(starts))
    previous: dict[str, float] = defaultdict(float)
    for day, group, amount in amounts:
        if period.start <= day < period.end:
            bucket = day if query.granularity == "daily" else max(day.replace(day=1), period.start)
            current[group][index[bucket]] += amount
        elif period.previous_start <= day < period.previous_end:
            previous[group] += amount
    keys = set(current) | set(previous)
    rows = [CostRow(k, sum(current[k]) if k in current else 0.0, previous.get(k, 0.0), current[k]) for k in keys]
    rows.sort(key=lambda r: (-r.total, -r.previous, r.key))
    tagged = query.group_by not in ("account", "service", "region")
    return CostReport(query, source, period, starts, rows, tagged)


def sparkline(values: list[float]) -> str:
    """One unicode block per value, scaled to the row's own range (a flat row is a flat line)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high - low < 1e-9:
        return (SPARK[0] if high <= 0 else SPARK[3]) * len(values)
    return "".join(SPARK[min(7, int((v - low) / (high - low) * 7.999))] for v in values)
