"""The weighted-sum scorer's rules, one at a time."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gennaker.metrics.classifier import Label
from gennaker.metrics.config import Thresholds
from gennaker.metrics.scorer import Result, result_of, score

T = Thresholds()


@dataclass(frozen=True)
class M:
    name: str
    label: Label
    group: str = "default"
    critical: bool = False
    muted: bool = False
    reason: str = ""


def test_all_pass_scores_100() -> None:
    card = score([M("a", Label.PASS), M("b", Label.PASS)], {"default": 100}, T)
    assert (card.score, card.result, card.reasons) == (100.0, Result.PASS, [])


def test_group_score_and_weights() -> None:
    metrics = [
        M("latency", Label.PASS, "performance"),
        M("cpu", Label.HIGH, "performance"),  # performance: 1 of 2 → 50
        M("errors", Label.PASS),  # default: 1 of 1 → 100
    ]
    card = score(metrics, {"performance": 40, "default": 60}, T)
    assert {g.name: g.score for g in card.groups} == {"performance": 50.0, "default": 100.0}
    assert card.score == pytest.approx(0.4 * 50 + 0.6 * 100)
    assert card.result is Result.PASS


def test_nodata_is_not_counted_but_nodata_fail_is_a_failure() -> None:
    metrics = [M("a", Label.PASS), M("b", Label.PASS), M("c", Label.PASS), M("d", Label.NODATA)]
    assert score(metrics, {"default": 100}, T).score == 100.0  # 3 of 3 counted
    metrics[3] = M("d", Label.NODATA_FAIL)
    assert score(metrics, {"default": 100}, T).score == 75.0  # 3 of 4


def test_half_or_more_without_data_scores_zero() -> None:
    metrics = [M("a", Label.PASS), M("b", Label.PASS), M("c", Label.NODATA), M("d", Label.NODATA)]
    card = score(metrics, {"default": 100}, T)
    assert card.score == 0.0 and card.result is Result.FAIL
    assert card.reasons == ["2 of 4 metrics have no data"]


def test_a_failing_critical_metric_scores_zero() -> None:
    metrics = [M("errors", Label.HIGH, critical=True), *[M(f"m{i}", Label.PASS) for i in range(9)]]
    card = score(metrics, {"default": 100}, T)
    assert card.score == 0.0
    assert card.reasons == ["critical metric failed: errors (High)"]
    metrics[0] = M("errors", Label.NODATA, critical=True)  # a critical metric must pass: no data fails it
    assert score(metrics, {"default": 100}, T).score == 0.0


def test_error_counts_as_a_failure_and_is_reported() -> None:
    metrics = [M("a", Label.PASS), M("b", Label.ERROR, reason="prometheus cannot be read")]
    card = score(metrics, {"default": 100}, T)
    assert card.score == 50.0 and card.result is Result.MARGINAL
    assert card.errors == ["b: prometheus cannot be read"]
    assert score([M("b", Label.ERROR)], {"default": 100}, T).result is Result.FAIL  # never an empty pass


def test_muted_metrics_are_reported_not_scored() -> None:
    metrics = [M("a", Label.PASS), M("noisy", Label.HIGH, muted=True, critical=True)]
    card = score(metrics, {"default": 100}, T)
    assert card.score == 100.0
    all_muted = score([M("noisy", Label.PASS, muted=True)], {"default": 100}, T)
    assert all_muted.result is Result.FAIL and all_muted.reasons == ["no metric is scored (all are muted)"]


def test_a_group_without_counted_metrics_loses_its_weight() -> None:
    metrics = [M("a", Label.PASS, "g1"), M("b", Label.PASS, "g2"), M("c", Label.PASS, "g3"), M("d", Label.NODATA, "g4")]
    card = score(metrics, {"g1": 25, "g2": 25, "g3": 25, "g4": 25}, T)
    assert card.score == 75.0
    assert [g.score for g in card.groups] == [100.0, 100.0, 100.0, None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(100, Result.PASS), (75, Result.PASS), (74.9, Result.MARGINAL), (50, Result.MARGINAL), (49.9, Result.FAIL)],
)
def test_thresholds(value: float, expected: Result) -> None:
    assert result_of(value, T) is expected


def test_custom_thresholds() -> None:
    assert result_of(85, Thresholds.model_validate({"pass": 90, "marginal": 80})) is Result.MARGINAL
