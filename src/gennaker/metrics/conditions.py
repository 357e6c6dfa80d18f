"""Threshold conditions on a metric source, evaluated by Gennaker (a local alarm, where the cloud has
none or the metric lives in HAProxy or Prometheus).

``{source: haproxy, query: http_5xx_rate, op: ">", threshold: 0.02, for: 30s}`` reads the query for
one server group (a ``Scope``) and is BREACHED when every point of the last ``for`` (at least one
``step``) is beyond the threshold: a breach has to last, one bad step is not enough unless ``for`` is
no longer than a step. What cannot be read is UNKNOWN with the source's reason, never OK. A window
without points is NO_DATA, which ``treat_missing_data`` (CloudWatch's words) may count as OK or as a
breach instead. Used by the deploy stage's watch; usable by anything with sources and a scope.

API: ``Condition`` (the model), ``evaluate(condition, source, scope, now)`` for one, and
``evaluate_all(conditions, sources, scope, now)`` for many with one fetch per source, step and window.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from gennaker.metrics.sources import (
    MetricError,
    MetricQuery,
    MetricSource,
    Scope,
    Series,
    SourceSettings,
    build_sources,
)
from gennaker.spec.durations import Duration

ConditionState = Literal["OK", "BREACHED", "NO_DATA", "UNKNOWN"]
Op = Literal[">", ">=", "<", "<="]
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
MAX_LABEL = 80


def _source_checks() -> dict[str, MetricSource]:
    # Unconfigured sources still check their queries (see UnavailableSource): enough for validation.
    return build_sources(SourceSettings())


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)  # default: a label of the rest
    source: str = Field(min_length=1)
    query: str = Field(min_length=1, max_length=4096)
    op: Op
    threshold: float = Field(allow_inf_nan=False)
    for_: Duration = Field(default=0.0, alias="for")  # how long the breach must last
    step: Duration = 10.0  # the spacing of the points asked of the source
    treat_missing_data: Literal["missing", "not_breaching", "breaching"] = "missing"

    @field_validator("step")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0")
        return v

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        sources = _source_checks()
        if v not in sources:
            raise ValueError(f"unknown metric source '{v}' (one of: {', '.join(sorted(sources))})")
        return v

    @field_validator("query")
    @classmethod
    def _query_of_its_source(cls, v: str, info: ValidationInfo) -> str:
        source = _source_checks().get(info.data.get("source", ""))
        problem = source.check(v) if source is not None else None  # an unknown source is told above
        if problem:
            raise ValueError(problem)
        return v

    @property
    def window(self) -> float:
        """The seconds looked at: ``for``, and at least one step."""
        return max(self.for_, self.step)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        query = self.query if len(self.query) <= MAX_LABEL else self.query[: MAX_LABEL - 1] + "…"
        return f"{self.source} {query} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class ConditionResult:
    label: str
    state: str  # a ConditionState
    value: float | None  # the latest point, when there is one
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "state": self.state, "value": self.value, "reason": self.reason}


def judge_series(condition: Condition, series: Series | MetricError) -> ConditionResult:
    """The condition's state over what its source answered for its window (the source decides which
    points belong to a window: HAProxy stamps a step's end, CloudWatch a period's start)."""
    label = condition.label
    if isinstance(series, MetricError):
        return ConditionResult(label, "UNKNOWN", None, f"{condition.source} cannot be read: {series.reason}")
    points = [v for v in series.values if math.isfinite(v)]
    if not points:
        missing = f"no data in the last {condition.window:g}s"
        if condition.treat_missing_data == "breaching":
            return ConditionResult(label, "BREACHED", None, f"{missing} (treated as breaching)")
        if condition.treat_missing_data == "not_breaching":
            return ConditionResult(label, "OK", None, f"{missing} (treated as not breaching)")
        return ConditionResult(label, "NO_DATA", None, missing)
    beyond = OPS[condition.op]
    latest = points[-1]
    breaching = [v for v in points if beyond(v, condition.threshold)]
    span = f"{len(points)} point{'s' if len(points) != 1 else ''} over {condition.window:g}s"
    if len(breaching) == len(points):
        return ConditionResult(
            label, "BREACHED", latest, f"{latest:g} {condition.op} {condition.threshold:g} in all {span}"
        )
    return ConditionResult(
        label,
        "OK",
        latest,
        f"{latest:g} (threshold {condition.op} {condition.threshold:g}; {len(breaching)} of {span})",
    )


def evaluate(condition: Condition, source: MetricSource, scope: Scope, now: datetime) -> ConditionResult:
    """One condition for one server group at ``now`` (an aware datetime)."""
    return evaluate_all([condition], {condition.source: source}, scope, now)[0]


def evaluate_all(
    conditions: Sequence[Condition], sources: Mapping[str, MetricSource], scope: Scope, now: datetime
) -> list[ConditionResult]:
    """Every condition for one server group, in order: ONE fetch per source, step and window (the
    conditions that share them share it). A source that raises makes its conditions UNKNOWN with the
    reason (sources should return MetricError; this is the net under it)."""
    results: dict[int, ConditionResult] = {}
    batches: dict[tuple[str, float, float], list[int]] = {}
    for i, c in enumerate(conditions):
        batches.setdefault((c.source, c.step, c.window), []).append(i)
    for (name, step, window), indexes in batches.items():
        source = sources.get(name)
        if source is None:
            for i in indexes:
                reason = f"metric source '{name}' is not available here"
                results[i] = ConditionResult(conditions[i].label, "UNKNOWN", None, reason)
            continue
        queries = [MetricQuery(f"c{i}", conditions[i].query) for i in indexes]
        try:
            fetched = source.fetch(queries, [scope], now - timedelta(seconds=window), now, step)
            per_query = fetched.get(scope.server_group, {})
        except Exception as exc:  # reported as UNKNOWN with its reason, never as a pass
            per_query = {q.name: MetricError(f"{type(exc).__name__}: {exc}") for q in queries}
        for i, q in zip(indexes, queries, strict=True):
            answer = per_query.get(q.name, MetricError("the source answered nothing for this query"))
            results[i] = judge_series(conditions[i], answer)
    return [results[i] for i in range(len(conditions))]
