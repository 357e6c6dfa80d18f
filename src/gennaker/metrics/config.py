"""The ``analysis:`` block of a canary stage: timing, thresholds, metrics and group weights.

Durations use the pipeline's duration forms (``2m``, ``10s``); every model forbids unknown fields so
a typo is reported at validation time rather than silently ignored.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gennaker.spec.durations import Duration

DEFAULT_GROUP = "default"
"""The group of a metric that names none."""


class Direction(StrEnum):
    """Which way a change counts against the canary."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class NanStrategy(StrEnum):
    REMOVE = "remove"
    REPLACE = "replace"  # with 0


class Outliers(StrEnum):
    KEEP = "keep"
    REMOVE = "remove"  # outside the quartiles by 3 x IQR


class EffectSize(StrEnum):
    MEAN_RATIO = "mean_ratio"  # canary mean ÷ baseline mean; no change = 1.0
    CLES = "cles"  # P(canary > baseline) + ½ P(equal); no change = 0.5


class OnMarginal(StrEnum):
    PAUSE = "pause"  # wait for a person's judgment (advisory mode)
    FAIL = "fail"


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    pass_: float = Field(default=75.0, alias="pass", ge=0, le=100, allow_inf_nan=False)
    marginal: float = Field(default=50.0, ge=0, le=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.marginal > self.pass_:
            raise ValueError(f"thresholds: marginal ({self.marginal:g}) must not exceed pass ({self.pass_:g})")
        return self


class MetricConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    source: str = Field(min_length=1)
    query: str = Field(min_length=1)
    direction: Direction = Direction.EITHER
    critical: bool = False  # a failing critical metric scores the whole canary 0
    must_have_data: bool = False  # no data → NodataFailMetric (counted as a failure) instead of Nodata
    muted: bool = False  # classified and reported, never scored
    nan_strategy: NanStrategy = NanStrategy.REMOVE
    outliers: Outliers = Outliers.KEEP
    effect_size: EffectSize = EffectSize.MEAN_RATIO
    allowed_increase: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # effect size to reach for High
    allowed_decrease: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # effect size to reach for Low
    group: str = Field(default=DEFAULT_GROUP, min_length=1)

    @model_validator(mode="after")
    def _effect_sizes_fit_the_measure(self) -> MetricConfig:
        if self.effect_size is EffectSize.CLES:
            for field in ("allowed_increase", "allowed_decrease"):
                value = getattr(self, field)
                if value is not None and not 0 < value < 1:
                    raise ValueError(f"metric '{self.name}': {field} is a probability with effect_size cles (0..1)")
        return self


class AnalysisConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warmup: Duration = 0.0  # after both groups serve, before the first window starts
    lifetime: Duration  # how long the canary is analysed after warm-up
    interval: Duration | None = None  # one judgement per interval; default: one at the end of lifetime
    lookback: Duration = 0.0  # 0 = a growing window from the end of warm-up
    step: Duration = 60.0  # sample spacing asked of the metric sources
    thresholds: Thresholds = Field(default_factory=Thresholds)
    on_marginal: OnMarginal = OnMarginal.PAUSE
    metrics: list[MetricConfig] = Field(min_length=1)
    groups: dict[str, float] = Field(default_factory=dict)

    @field_validator("lifetime", "step")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0")
        return v

    @field_validator("groups")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for name, weight in v.items():
            if not 0 <= weight <= 100:
                raise ValueError(f"group '{name}': a weight is a percentage (0..100), not {weight:g}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisConfig:
        if self.interval is not None:
            if self.interval <= 0:
                raise ValueError("interval must be longer than 0")
            if self.interval > self.lifetime:
                raise ValueError("interval must not be longer than lifetime")
        if self.step > self.every:
            raise ValueError("step must not be longer than interval")
        seen: set[str] = set()
        for metric in self.metrics:
            if metric.name in seen:
                raise ValueError(f"metric '{metric.name}' is defined twice")
            seen.add(metric.name)
        used = {m.group for m in self.metrics}
        unknown = sorted(set(self.groups) - used)
        if unknown:
            raise ValueError(f"groups {unknown} have a weight but no metric")
        total = sum(self.groups.values())
        if total > 100:
            raise ValueError(f"group weights add up to {total:g}, more than 100")
        unweighted = sorted({m.group for m in self.metrics if not m.muted} - set(self.groups))
        if unweighted and total >= 100:
            raise ValueError(f"groups {unweighted} have no weight left (the weights already add up to 100)")
        if not unweighted and total != 100:
            raise ValueError(f"group weights add up to {total:g}; every group has a weight, so they must add up to 100")
        return self

    @property
    def every(self) -> float:
        """The interval between judgements in seconds (the whole lifetime when none is given)."""
        return self.interval if self.interval is not None else self.lifetime

    def group_weights(self) -> dict[str, float]:
        """Every scored group's weight in percent: the given ones, the rest sharing the remainder
        equally. A group of muted metrics only is not scored, so it takes no share (as in Kayenta)."""
        used = sorted({m.group for m in self.metrics if not m.muted} | set(self.groups))
        unweighted = [g for g in used if g not in self.groups]
        share = (100 - sum(self.groups.values())) / len(unweighted) if unweighted else 0.0
        return {g: self.groups.get(g, share) for g in used}
