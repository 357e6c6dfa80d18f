"""The Mann-Whitney classifier against hand-computed cases, scipy, brute force, and any input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from gennaker.metrics import classifier
from gennaker.metrics.classifier import Label, classify
from gennaker.metrics.config import Direction, EffectSize, NanStrategy, Outliers

STEADY = np.arange(50.0)  # 0..49: pairwise differences of a sample with itself are symmetric around 0


def test_identical_samples_pass() -> None:
    result = classify([3.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    assert result.label is Label.PASS
    assert "identical" in result.reason
    assert result.effect_size == 1.0


def test_shifted_up_is_high_with_the_exact_shift_as_estimate() -> None:
    result = classify(STEADY, STEADY + 10)
    assert result.label is Label.HIGH
    # Every difference is (x_i + 10) - x_j; the median of x_i - x_j over all pairs is 0.
    assert result.estimate == pytest.approx(10.0)
    assert 0 < result.ci_low < 10 < result.ci_high
    assert result.baseline_median == 24.5 and result.canary_median == 34.5
    assert result.effect_size == pytest.approx(34.5 / 24.5)


def test_shifted_down_passes_when_only_increases_count() -> None:
    result = classify(STEADY, STEADY - 10, direction=Direction.INCREASE)
    assert result.label is Label.PASS
    assert "direction increase allows" in result.reason
    assert classify(STEADY, STEADY - 10, direction=Direction.EITHER).label is Label.LOW
    assert classify(STEADY, STEADY - 10, direction=Direction.DECREASE).label is Label.LOW
    assert classify(STEADY, STEADY + 10, direction=Direction.DECREASE).label is Label.PASS


def test_a_small_shift_inside_the_noise_passes() -> None:
    result = classify(STEADY, STEADY + 0.5)
    assert result.label is Label.PASS
    assert result.ci_low < 0 < result.ci_high


def test_nan_removed_or_replaced_with_zero() -> None:
    with_gaps = [*STEADY, math.nan, math.nan, math.inf]
    removed = classify(STEADY, with_gaps, nan_strategy=NanStrategy.REMOVE)
    assert removed.label is Label.PASS and "identical" in removed.reason
    assert removed.canary_count == 50
    replaced = classify(STEADY, with_gaps, nan_strategy=NanStrategy.REPLACE)
    assert replaced.canary_count == 53
    assert replaced.canary_mean == pytest.approx(sum(STEADY) / 53)  # three zeros joined the sample


def test_no_data_is_nodata_or_a_failure_when_data_is_required() -> None:
    result = classify(STEADY, [math.nan] * 5)
    assert result.label is Label.NODATA
    assert result.reason == "no data for the canary"
    assert classify([], [], must_have_data=True).label is Label.NODATA_FAIL
    assert classify([], STEADY).reason == "no data for the baseline"


def test_constant_samples() -> None:
    # A good version without errors against one answering 5 % errors: both samples constant.
    errors = classify([0.0] * 100, [0.05] * 100, direction=Direction.INCREASE)
    assert errors.label is Label.HIGH
    assert errors.estimate == pytest.approx(0.05)
    assert errors.effect_size == math.inf  # from no errors to some
    same = classify([7.0] * 30, [7.0] * 40)
    assert same.label is Label.PASS and "same value" in same.reason
    # The jitter that un-ties constant samples is seeded: the same input, the same figures.
    assert classify([1.0] * 20, [2.0] * 20) == classify([1.0] * 20, [2.0] * 20)


def test_outliers_removed_by_three_iqr() -> None:
    spiky = [*STEADY[:40], *[1000.0] * 12]
    kept = classify(STEADY[:40], spiky, outliers=Outliers.KEEP)
    assert kept.canary_count == 52
    assert kept.canary_mean > 200
    removed = classify(STEADY[:40], spiky, outliers=Outliers.REMOVE)
    assert removed.canary_count == 40  # q3 38.25 + 3 x IQR 25.5 = 114.75 < 1000
    assert removed.label is Label.PASS and "identical" in removed.reason


def test_allowed_increase_tolerates_a_significant_but_small_rise() -> None:
    base = 100 + STEADY / 10  # 100.0 .. 104.9
    ten_percent = classify(base, base * 1.1, direction=Direction.INCREASE, allowed_increase=1.2)
    assert ten_percent.label is Label.PASS
    assert "within the allowed increase" in ten_percent.reason
    thirty_percent = classify(base, base * 1.3, direction=Direction.INCREASE, allowed_increase=1.2)
    assert thirty_percent.label is Label.HIGH
    lower = classify(base, base * 0.9, allowed_decrease=0.8)
    assert lower.label is Label.PASS and "within the allowed decrease" in lower.reason
    assert classify(base, base * 0.7, allowed_decrease=0.8).label is Label.LOW


def test_cles_effect_size() -> None:
    separated = classify(STEADY, STEADY + 100, effect_size=EffectSize.CLES)
    assert separated.effect_size == 1.0
    assert separated.label is Label.HIGH
    shifted = classify(STEADY, STEADY + 10, effect_size=EffectSize.CLES, allowed_increase=0.9)
    assert shifted.effect_size < 0.9 and shifted.label is Label.PASS


def test_small_samples_use_the_widest_interval() -> None:
    # 3 x 3 points cannot reach 98 %: the interval spans all nine differences (7..11).
    result = classify([1.0, 2.0, 3.0], [10.0, 11.0, 12.0])
    assert (result.ci_low, result.estimate, result.ci_high) == (7.0, 9.0, 11.0)
    assert result.label is Label.HIGH


def test_p_value_is_scipys_asymptotic_mann_whitney() -> None:
    rng = np.random.default_rng(7)
    for ties in (False, True):
        for size in (5, 60, 700):
            a = rng.integers(0, 5, size).astype(float) if ties else rng.normal(size=size)
            b = rng.integers(0, 4, size + 3).astype(float) if ties else rng.normal(0.2, 1, size + 3)
            ours = classify(b, a)
            theirs = mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
            assert ours.p_value == pytest.approx(theirs, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("shape", ["normal", "ties", "zeros", "two runs"])
def test_pairwise_order_statistics_match_brute_force(shape: str) -> None:
    rng = np.random.default_rng(len(shape))
    for _ in range(4):
        m, n = rng.integers(260, 900, size=2)  # above ENUMERATE_LIMIT pairs: the narrowing path
        if shape == "normal":
            a, b = rng.normal(size=m), rng.normal(0.1, 2, size=n)
        elif shape == "ties":
            a, b = rng.integers(0, 4, m).astype(float), rng.integers(0, 3, n).astype(float)
        elif shape == "zeros":
            a, b = np.r_[np.zeros(m - 3), rng.normal(size=3)], np.zeros(n)
        else:  # half the differences 0, half 1: the two middle ranks fall in different runs
            m += m % 2
            a, b = np.r_[np.zeros(m // 2), np.ones(m // 2)], np.zeros(n)
        a, b = np.sort(a), np.sort(b)
        assert m * n > classifier.ENUMERATE_LIMIT
        pairs = m * n
        ranks = sorted({0, 7, pairs // 3, (pairs - 1) // 2, pairs // 2, pairs - 1})
        expected = np.sort(np.subtract.outer(a, b).ravel())
        got = classifier._pairwise_order_statistics(a, b, ranks)
        assert [got[r] for r in ranks] == [expected[r] for r in ranks]


def test_classification_is_invariant_to_scale() -> None:
    rng = np.random.default_rng(3)
    base, can = rng.normal(5, 1, 200), rng.normal(5.4, 1, 200)
    labels = {classify(base * k, can * k).label for k in (1e-300, 1e-6, 1.0, 1e6, 1e300)}
    assert len(labels) == 1


def test_huge_and_tiny_values_are_judged() -> None:
    result = classify([1e308, -1e308, 5.0], [1e308, 1e308, 3.0])
    assert result.label is not Label.ERROR
    assert classify([5e-324, 0.0], [5e-324, 5e-324]).label is not Label.ERROR


def test_input_that_is_not_numbers_is_an_error() -> None:
    result = classify(["a", "b"], [1.0])  # type: ignore[list-item]
    assert result.label is Label.ERROR
    assert result.reason == "the baseline values are not numbers"
    assert classify([1.0], [10**400]).reason == "the canary values are not numbers"  # beyond float range
    assert classify(np.array([1 + 2j]), [1.0]).reason == "the baseline values are not real numbers"
    assert classify(np.zeros((3, 3)), np.ones(4)).label is Label.HIGH  # any shape is flattened


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers() | st.floats(), max_size=30), st.lists(st.integers(-(10**6), 10**6), max_size=30))
def test_never_raises_on_integers_of_any_size(base: list[float], can: list[int]) -> None:
    result = classify(base, can)
    assert isinstance(result.label, Label)
    if all(abs(v) < 1e300 for v in base if isinstance(v, int)):
        assert result.label is not Label.ERROR, result.reason


any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
samples = st.lists(any_float, max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    samples,
    samples,
    st.sampled_from(list(Direction)),
    st.sampled_from(list(NanStrategy)),
    st.sampled_from(list(Outliers)),
    st.sampled_from(list(EffectSize)),
)
def test_never_raises_on_any_numeric_input(
    base: list[float], can: list[float], direction: Direction, nan: NanStrategy, out: Outliers, effect: EffectSize
) -> None:
    result = classify(base, can, direction=direction, nan_strategy=nan, outliers=out, effect_size=effect)
    assert isinstance(result.label, Label)
    assert result.label is not Label.ERROR, result.reason  # any float input is judgeable


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 5).map(float), min_size=1, max_size=300),
    st.lists(st.integers(0, 5).map(float), min_size=1, max_size=300),
)
def test_heavily_tied_samples_are_judged_like_brute_force(base: list[float], can: list[float]) -> None:
    result = classify(base, can)
    assert result.label is not Label.ERROR
    if result.estimate is not None:
        diffs = np.subtract.outer(np.array(can), np.array(base)).ravel()
        assert result.estimate == pytest.approx(float(np.median(diffs)))
        assert result.ci_low <= result.estimate <= result.ci_high
