"""Kayenta's weighted-sum scorer: metric labels → group scores → one summary score and a result.

Per group, score = Pass ÷ (Pass + High + Low + NodataFailMetric + Error) x 100; Nodata counts for
nothing and a group with nothing counted has no score (its weight is lost, as in Kayenta, so
missing data can never lift a canary). The summary is the weighted sum of group scores. It is 0
when a critical metric does not pass, or when at least half the scored metrics have no data.
Muted metrics are reported and never scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from gennaker.metrics.classifier import Label
from gennaker.metrics.config import Thresholds

COUNTED = (Label.PASS, Label.HIGH, Label.LOW, Label.NODATA_FAIL, Label.ERROR)
NO_DATA = (Label.NODATA, Label.NODATA_FAIL)


class Result(StrEnum):
    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"


class Scored(Protocol):
    """What the scorer needs of a metric's outcome."""

    @property
    def name(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def label(self) -> Label: ...
    @property
    def reason(self) -> str: ...
    @property
    def critical(self) -> bool: ...
    @property
    def muted(self) -> bool: ...


@dataclass(frozen=True)
class GroupScore:
    name: str
    weight: float  # percent of the summary
    score: float | None  # None: no metric of the group was counted
    counts: dict[str, int] = field(default_factory=dict)  # label → metrics


@dataclass(frozen=True)
class Scorecard:
    groups: list[GroupScore]
    score: float
    result: Result
    reasons: list[str]  # why the score is what it is when a rule overrode the sum
    errors: list[str]  # "metric: reason" for every metric that could not be judged


def result_of(score: float, thresholds: Thresholds) -> Result:
    if score >= thresholds.pass_:
        return Result.PASS
    if score >= thresholds.marginal:
        return Result.MARGINAL
    return Result.FAIL


def score(metrics: Sequence[Scored], weights: Mapping[str, float], thresholds: Thresholds) -> Scorecard:
    """Score ``metrics``; ``weights`` is every group's share in percent (see AnalysisConfig.group_weights)."""
    scored = [m for m in metrics if not m.muted]
    errors = [f"{m.name}: {m.reason}" for m in metrics if m.label is Label.ERROR]
    groups = [_group(name, weights.get(name, 0.0), [m for m in scored if m.group == name]) for name in weights]
    for name in sorted({m.group for m in scored} - set(weights)):  # a group nobody weighed scores nothing
        groups.append(_group(name, 0.0, [m for m in scored if m.group == name]))
    total = sum(g.score * g.weight / 100 for g in groups if g.score is not None)

    reasons: list[str] = []
    if not scored:
        reasons.append("no metric is scored (all are muted)")
    failed_critical = [m for m in scored if m.critical and m.label is not Label.PASS]
    if failed_critical:
        reasons.append("critical metric failed: " + ", ".join(f"{m.name} ({m.label})" for m in failed_critical))
    no_data = [m for m in scored if m.label in NO_DATA]
    if scored and len(no_data) * 2 >= len(scored):
        reasons.append(f"{len(no_data)} of {len(scored)} metrics have no data")
    final = 0.0 if reasons else round(total, 6)  # rounding: 74.99999999 from float sums is 75
    return Scorecard(groups, final, result_of(final, thresholds), reasons, errors)


def _group(name: str, weight: float, metrics: Sequence[Scored]) -> GroupScore:
    counts = Counter(str(m.label) for m in metrics)
    counted = sum(counts[str(label)] for label in COUNTED)
    value = counts[str(Label.PASS)] / counted * 100 if counted else None
    return GroupScore(name, weight, value, dict(counts))
