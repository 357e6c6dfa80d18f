"""Automated canary analysis: metric sources, Kayenta's classifier and scorer, and judgements.

Layer: beside ``cloud/``, below ``ops/``; it depends on ``spec`` (durations) and, for CloudWatch, on
``cloud.aws.session`` only.
"""

from gennaker.metrics.classifier import Classification, Label, classify
from gennaker.metrics.config import AnalysisConfig, MetricConfig, Thresholds
from gennaker.metrics.judge import (
    Judgement,
    MetricResult,
    Window,
    fetch_interval,
    judge,
    judgement_count,
    plan_windows,
    should_stop_early,
)
from gennaker.metrics.scorer import GroupScore, Result
from gennaker.metrics.sources import (
    MetricError,
    MetricQuery,
    MetricSource,
    Scope,
    Series,
    SourceSettings,
    build_sources,
)

__all__ = [
    "AnalysisConfig",
    "Classification",
    "GroupScore",
    "Judgement",
    "Label",
    "MetricConfig",
    "MetricError",
    "MetricQuery",
    "MetricResult",
    "MetricSource",
    "Result",
    "Scope",
    "Series",
    "SourceSettings",
    "Thresholds",
    "Window",
    "build_sources",
    "classify",
    "fetch_interval",
    "judge",
    "judgement_count",
    "plan_windows",
    "should_stop_early",
]
