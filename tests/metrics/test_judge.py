"""Judgements end to end over series, the analysis config, and the planning of windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from gennaker.metrics import AnalysisConfig, Label, MetricError, Result, Series, judge, plan_windows, should_stop_early
from gennaker.metrics.judge import judgement_count

ISSUE_EXAMPLE = """  # the issue's analysis block (latency written out, one field a line)
warmup: 2m
lifetime: 30m
interval: 10m
lookback: 0
step: 10s
thresholds: {pass: 75, marginal: 50}
on_marginal: pause
metrics:
  - {name: errors, source: haproxy, query: http_5xx_rate, direction: increase, critical: true}
  - name: latency
    source: prometheus
    query: >-
      histogram_quantile(0.99, sum by (le)
      (rate(http_request_duration_seconds_bucket{server_group="${scope}"}[1m])))
    direction: increase
    allowed_increase: 1.2
    group: performance
groups: {performance: 40}
"""


def config(**overrides: Any) -> AnalysisConfig:
    raw = yaml.safe_load(ISSUE_EXAMPLE)
    raw.update(overrides)
    return AnalysisConfig.model_validate(raw)


def series(values: Any) -> Series:
    values = [float(v) for v in values]
    return Series(tuple(float(i) for i in range(len(values))), tuple(values))


def test_the_issue_example_parses() -> None:
    c = config()
    assert (c.warmup, c.lifetime, c.every, c.lookback, c.step) == (120, 1800, 600, 0, 10)
    assert c.thresholds.pass_ == 75 and c.thresholds.marginal == 50
    assert c.group_weights() == {"default": 60.0, "performance": 40.0}
    assert c.metrics[0].critical and c.metrics[1].allowed_increase == 1.2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"groups": {"performance": 120}}, "a weight is a percentage"),
        ({"groups": {"nope": 10}}, "have a weight but no metric"),
        ({"groups": {"performance": 100}}, "no weight left"),
        ({"groups": {"performance": 40, "default": 40}}, "must add up to 100"),
        ({"step": "20m"}, "step must not be longer than interval"),
        ({"interval": "1h"}, "interval must not be longer than lifetime"),
        ({"lifetime": "soon"}, "not a duration"),
        ({"thresholds": {"pass": 40, "marginal": 50}}, "must not exceed pass"),
        ({"on_marginal": "shrug"}, "on_marginal"),
        ({"metrics": []}, "at least 1 item"),
        ({"lookbak": "5m"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_analysis_blocks_are_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**overrides)


def test_a_group_of_muted_metrics_takes_no_share_of_the_weight() -> None:
    metrics = [
        {"name": "a", "source": "s", "query": "q"},
        {"name": "b", "source": "s", "query": "q", "group": "quiet", "muted": True},
    ]
    assert config(metrics=metrics, groups={}).group_weights() == {"default": 100.0}
    assert config(metrics=metrics, groups={"default": 100}).group_weights() == {"default": 100.0}


def test_metric_fields_are_checked() -> None:
    metric = {"name": "m", "source": "prometheus", "query": "up", "effect_size": "cles", "allowed_increase": 1.2}
    with pytest.raises(ValidationError, match="probability"):
        config(metrics=[metric], groups={})
    with pytest.raises(ValidationError, match="defined twice"):
        config(metrics=[{"name": "m", "source": "s", "query": "q"}] * 2, groups={})
    with pytest.raises(ValidationError, match="direction"):
        config(metrics=[{"name": "m", "source": "s", "query": "q", "direction": "up"}], groups={})


def test_judge_a_good_canary_passes() -> None:
    rng = np.random.default_rng(1)
    baseline = {"errors": series([0.0] * 60), "latency": series(rng.normal(0.2, 0.01, 60))}
    canary = {"errors": series([0.0] * 60), "latency": series(rng.normal(0.2, 0.01, 60))}
    judgement = judge(config(), baseline, canary)
    assert judgement.result is Result.PASS and judgement.score == 100.0
    assert [m.label for m in judgement.metrics] == [Label.PASS, Label.PASS]


def test_judge_errors_in_the_canary_fail_it_through_the_critical_metric() -> None:
    baseline = {"errors": series([0.0] * 60), "latency": series([0.2] * 60)}
    canary = {"errors": series([0.05] * 60), "latency": series([0.2] * 60)}
    judgement = judge(config(), baseline, canary)
    assert judgement.score == 0.0 and judgement.result is Result.FAIL
    assert judgement.metrics[0].label is Label.HIGH
    assert judgement.reasons == ["critical metric failed: errors (High)"]


def test_judge_an_unreadable_source_is_an_error_never_a_pass() -> None:
    baseline = {"errors": series([0.0] * 60), "latency": MetricError("prometheus cannot be read: refused")}
    canary = {"errors": series([0.0] * 60)}  # latency missing altogether
    judgement = judge(config(), baseline, canary)
    latency = judgement.metrics[1]
    assert latency.label is Label.ERROR
    assert latency.reason == "baseline: prometheus cannot be read: refused; canary: no samples were fetched"
    assert judgement.score == 60.0 and judgement.result is Result.MARGINAL
    assert judgement.errors == [f"latency: {latency.reason}"]


def test_judgement_as_json() -> None:
    baseline = {"errors": series([0.0] * 10), "latency": series([1.0] * 10)}
    canary = {"errors": series([0.5] * 10), "latency": series([1.0] * 10)}
    report = judge(config(), baseline, canary).as_dict()
    text = json.dumps(report, allow_nan=False)  # the infinite mean ratio is null, not Infinity
    assert json.loads(text)["metrics"][0]["effect_size"] is None
    assert report["metrics"][0]["label"] == "High"
    assert set(report) == {"score", "result", "reasons", "errors", "groups", "metrics"}


START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def minutes(*values: float) -> list[datetime]:
    return [START + timedelta(minutes=v) for v in values]


def test_windows_grow_from_the_end_of_warmup() -> None:
    windows = plan_windows(config(), START)
    assert judgement_count(config()) == 3
    assert [w.start for w in windows] == minutes(2, 2, 2)
    assert [w.end for w in windows] == minutes(12, 22, 32)
    assert [w.last for w in windows] == [False, False, True]


def test_windows_with_lookback_never_reach_into_warmup() -> None:
    windows = plan_windows(config(lookback="15m"), START)
    assert [w.start for w in windows] == minutes(2, 7, 17)
    assert [w.end for w in windows] == minutes(12, 22, 32)


def test_a_lifetime_that_is_not_a_multiple_gets_a_last_shorter_window() -> None:
    windows = plan_windows(config(lifetime="25m"), START)
    assert [w.end for w in windows] == minutes(12, 22, 27)
    one = plan_windows(config(interval=None), START)
    assert [(w.start, w.end) for w in one] == [tuple(minutes(2, 32))]


def test_stop_early_at_or_below_marginal() -> None:
    t = config().thresholds
    assert should_stop_early(50.0, t) and should_stop_early(0.0, t)
    assert not should_stop_early(50.1, t)
