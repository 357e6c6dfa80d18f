"""One canary judgement (classify every metric, score them) and the timing of judgements.

``judge`` is pure: series in, ``Judgement`` out, so a stored window can be judged again later
(retroactive analysis) with the same result. ``plan_windows`` says which window each judgement of a
canary's lifetime looks at; ``should_stop_early`` says whether a judgement ends the canary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from gennaker.metrics.classifier import Classification, Label, classify
from gennaker.metrics.config import AnalysisConfig, MetricConfig, Thresholds
from gennaker.metrics.scorer import GroupScore, Result, score
from gennaker.metrics.sources import Fetched, MetricError, MetricQuery, MetricSource, Scope, Series


@dataclass(frozen=True)
class MetricResult:
    name: str
    source: str
    group: str
    critical: bool
    muted: bool
    label: Label
    reason: str
    classification: Classification

    def as_dict(self) -> dict[str, Any]:
        figures = {k: _json_number(v) for k, v in asdict(self.classification).items() if k not in ("label", "reason")}
        return {
            "name": self.name,
            "source": self.source,
            "group": self.group,
            "critical": self.critical,
            "muted": self.muted,
            "label": str(self.label),
            "reason": self.reason,
            **figures,
        }


@dataclass(frozen=True)
class Judgement:
    metrics: list[MetricResult]
    groups: list[GroupScore]
    score: float
    result: Result
    reasons: list[str]  # rules that overrode the weighted sum (critical failure, missing data)
    errors: list[str]  # metrics that could not be judged, with why

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "result": str(self.result),
            "reasons": list(self.reasons),
            "errors": list(self.errors),
            "groups": [asdict(g) for g in self.groups],
            "metrics": [m.as_dict() for m in self.metrics],
        }


def judge(
    config: AnalysisConfig,
    baseline_series: Mapping[str, Series | MetricError],
    canary_series: Mapping[str, Series | MetricError],
) -> Judgement:
    """Classify every metric of ``config`` (series keyed by metric name) and score the canary."""
    results = [_judge_metric(m, baseline_series.get(m.name), canary_series.get(m.name)) for m in config.metrics]
    card = score(results, config.group_weights(), config.thresholds)
    return Judgement(results, card.groups, card.score, card.result, card.reasons, card.errors)


def _judge_metric(
    metric: MetricConfig, baseline: Series | MetricError | None, canary: Series | MetricError | None
) -> MetricResult:
    problems = []
    for role, series in (("baseline", baseline), ("canary", canary)):
        if series is None:
            problems.append(f"{role}: no samples were fetched")
        elif isinstance(series, MetricError):
            problems.append(f"{role}: {series.reason}")
    if problems or not isinstance(baseline, Series) or not isinstance(canary, Series):
        classification = Classification(Label.ERROR, "; ".join(problems))
    else:
        classification = classify(
            baseline.values,
            canary.values,
            direction=metric.direction,
            nan_strategy=metric.nan_strategy,
            outliers=metric.outliers,
            effect_size=metric.effect_size,
            allowed_increase=metric.allowed_increase,
            allowed_decrease=metric.allowed_decrease,
            must_have_data=metric.must_have_data,
        )
    return MetricResult(
        name=metric.name,
        source=metric.source,
        group=metric.group,
        critical=metric.critical,
        muted=metric.muted,
        label=classification.label,
        reason=classification.reason,
        classification=classification,
    )


def _json_number(value: Any) -> Any:
    """Figures go to JSON: infinities and NaN (a ratio over a zero mean) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---- fetching one interval ------------------------------------------------------------------


def fetch_interval(
    sources: Mapping[str, MetricSource],
    config: AnalysisConfig,
    baseline: Scope,
    canary: Scope,
    start: datetime,
    end: datetime,
) -> tuple[dict[str, Series | MetricError], dict[str, Series | MetricError]]:
    """Baseline and canary samples of every metric: one ``fetch`` per source for both groups."""
    if baseline.server_group == canary.server_group:
        raise ValueError(f"baseline and canary are the same server group ({canary.server_group})")
    by_source: dict[str, list[MetricQuery]] = {}
    for metric in config.metrics:
        by_source.setdefault(metric.source, []).append(MetricQuery(metric.name, metric.query))
    base_out: dict[str, Series | MetricError] = {}
    canary_out: dict[str, Series | MetricError] = {}
    for name, queries in by_source.items():
        source = sources.get(name)
        fetched: Fetched
        if source is None:
            reason = MetricError(f"unknown metric source '{name}'")
            fetched = {s.server_group: {q.name: reason for q in queries} for s in (baseline, canary)}
        else:
            fetched = source.fetch(queries, [baseline, canary], start, end, config.step)
        for q in queries:
            base_out[q.name] = fetched.get(baseline.server_group, {}).get(q.name, MetricError("not fetched"))
            canary_out[q.name] = fetched.get(canary.server_group, {}).get(q.name, MetricError("not fetched"))
    return base_out, canary_out


# ---- timing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    index: int  # 1-based
    start: datetime
    end: datetime  # also when the judgement can run
    last: bool


def judgement_count(config: AnalysisConfig) -> int:
    """Judgements in the lifetime: lifetime ÷ interval, a remainder adding a last, shorter one."""
    return max(1, math.ceil(round(config.lifetime / config.every, 9)))


def plan_windows(config: AnalysisConfig, started: datetime) -> list[Window]:
    """The window of every judgement for a canary whose groups began serving at ``started``.

    Windows end every ``interval`` after the warm-up, the last at the end of the lifetime. With
    ``lookback`` 0 each window starts at the end of the warm-up (it grows); otherwise it is the last
    ``lookback`` before its end, never reaching back into the warm-up.
    """
    begin = started + timedelta(seconds=config.warmup)
    count = judgement_count(config)
    windows = []
    for i in range(1, count + 1):
        end = begin + timedelta(seconds=min(i * config.every, config.lifetime))
        start = begin if config.lookback <= 0 else max(begin, end - timedelta(seconds=config.lookback))
        windows.append(Window(i, start, end, i == count))
    return windows


def should_stop_early(score: float, thresholds: Thresholds) -> bool:
    """An interval scoring at or below marginal ends the canary before its lifetime is over."""
    return score <= thresholds.marginal
