"""Kayenta's Mann-Whitney classifier: is the canary's metric higher, lower, or the same as the baseline's?

Per metric: clean both samples (NaN and infinities removed or replaced with 0; optional IQR outlier
removal), run a two-sided Mann-Whitney U test, and put a 98 % confidence interval around the
Hodges-Lehmann estimate of the shift (the median of all pairwise differences canary - baseline).
The metric is High when the whole interval lies above the tolerance (0.25 x |estimate|) and the
effect size reaches ``allowed_increase``; Low mirrored; Pass otherwise. The direction decides which
of High and Low count. ``classify`` never raises: anything it cannot judge is an ``Error`` label
with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gennaker.metrics.config import Direction, EffectSize, NanStrategy, Outliers

# The standard normal, from the standard library: scipy.special cost every CLI command 0.6 s to import.
_NORMAL = NormalDist()


def _normal_cdf(x: float) -> float:
    # erfc, not NormalDist.cdf's 1 + erf: a p-value lives in the tail, where 1 + erf loses its digits.
    return 0.5 * math.erfc(-x / math.sqrt(2))


CONFIDENCE = 0.98
TOLERANCE = 0.25
IQR_FACTOR = 3.0
MAX_POINTS = 1_000_000  # per sample; beyond this the judgement is an Error, not a memory blow-up
NOISE_SEED = 20170101  # fixed: the same samples always get the same noise, so judgements repeat
NOISE_SCALE = 1e-9  # of the gap between two constant samples
ENUMERATE_LIMIT = 16_384  # pairwise differences materialised at once

Floats = NDArray[np.float64]


class Label(StrEnum):
    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL = "NodataFailMetric"
    ERROR = "Error"


@dataclass(frozen=True)
class Classification:
    """One metric's verdict and the figures behind it (``None`` where a figure does not exist)."""

    label: Label
    reason: str
    baseline_count: int = 0
    canary_count: int = 0
    baseline_median: float | None = None
    canary_median: float | None = None
    baseline_mean: float | None = None
    canary_mean: float | None = None
    effect_size: float | None = None
    estimate: float | None = None  # Hodges-Lehmann: median of canary - baseline over all pairs
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None


def classify(
    baseline: Sequence[float] | Floats,
    canary: Sequence[float] | Floats,
    *,
    direction: Direction = Direction.EITHER,
    nan_strategy: NanStrategy = NanStrategy.REMOVE,
    outliers: Outliers = Outliers.KEEP,
    effect_size: EffectSize = EffectSize.MEAN_RATIO,
    allowed_increase: float | None = None,
    allowed_decrease: float | None = None,
    must_have_data: bool = False,
    confidence: float = CONFIDENCE,
    tolerance: float = TOLERANCE,
) -> Classification:
    """Classify ``canary`` against ``baseline``.

    Without ``allowed_increase`` (``allowed_decrease``) a significant shift is High (Low) whatever
    its size; with one, the effect size must also reach it: a mean ratio of 1.2 means "20 % higher
    is still fine" (CLES: a probability, 0.5 = no change). The mean ratio assumes metrics that are
    not negative (rates, durations, counts).
    """
    try:
        base = _as_floats(baseline, "baseline")
        can = _as_floats(canary, "canary")
        if isinstance(base, str) or isinstance(can, str):
            return Classification(Label.ERROR, base if isinstance(base, str) else str(can))
        return _classify(
            _clean(base, nan_strategy, outliers),
            _clean(can, nan_strategy, outliers),
            direction=direction,
            effect_size=effect_size,
            allowed_increase=allowed_increase,
            allowed_decrease=allowed_decrease,
            must_have_data=must_have_data,
            confidence=confidence,
            tolerance=tolerance,
        )
    except Exception as exc:  # any input must end in a label: an Error with the reason, never a pass
        return Classification(Label.ERROR, f"the classifier failed: {type(exc).__name__}: {exc}")


def _as_floats(values: Any, what: str) -> Floats | str:
    if np.iscomplexobj(values):
        return f"the {what} values are not real numbers"
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return f"the {what} values are not numbers"
    if array.ndim != 1:
        array = array.reshape(-1)
    if array.size > MAX_POINTS:
        return f"the {what} has {array.size:,} points, more than the {MAX_POINTS:,} one judgement takes"
    return array


def _clean(values: Floats, nan_strategy: NanStrategy, outliers: Outliers) -> Floats:
    finite = np.isfinite(values)
    values = np.where(finite, values, 0.0) if nan_strategy is NanStrategy.REPLACE else values[finite]
    if outliers is Outliers.REMOVE and values.size >= 4:
        # Near the float range the fences overflow to ±inf, which keeps everything on that side.
        with np.errstate(over="ignore", invalid="ignore"):
            q1, q3 = np.percentile(values, [25, 75])
            iqr = q3 - q1
            if np.isfinite(iqr) and iqr > 0:  # no spread: nothing stands out, keep everything
                keep = (values >= q1 - IQR_FACTOR * iqr) & (values <= q3 + IQR_FACTOR * iqr)
                values = values[keep]
    return values


def _classify(
    base: Floats,
    can: Floats,
    *,
    direction: Direction,
    effect_size: EffectSize,
    allowed_increase: float | None,
    allowed_decrease: float | None,
    must_have_data: bool,
    confidence: float,
    tolerance: float,
) -> Classification:
    counts = {"baseline_count": int(base.size), "canary_count": int(can.size)}
    if base.size == 0 or can.size == 0:
        missing = " and ".join(w for w, a in (("baseline", base), ("canary", can)) if a.size == 0)
        label = Label.NODATA_FAIL if must_have_data else Label.NODATA
        return Classification(label, f"no data for the {missing}", **counts)

    # Work on values scaled into [-1, 1]: every decision below is invariant to a positive scale,
    # and differences of huge values (1e308 - -1e308) would otherwise overflow to infinity. A power
    # of two keeps the scaling exact.
    largest = float(max(np.max(np.abs(base)), np.max(np.abs(can))))
    exponent = math.frexp(largest)[1]
    base_sorted = np.sort(np.ldexp(base, -exponent))
    can_sorted = np.sort(np.ldexp(can, -exponent))
    stats = _describe(base_sorted, can_sorted, exponent) | counts

    if base_sorted.size == can_sorted.size and np.array_equal(base_sorted, can_sorted):
        return Classification(Label.PASS, "the baseline and canary data are identical", effect_size=1.0, **stats)
    if base_sorted[0] == base_sorted[-1] == can_sorted[0] == can_sorted[-1]:
        return Classification(Label.PASS, "every observation has the same value", effect_size=1.0, **stats)

    effect = _effect_size(base_sorted, can_sorted, effect_size)
    if base_sorted[0] == base_sorted[-1] and can_sorted[0] == can_sorted[-1]:
        # Two constant samples tie every observation within its group; like Kayenta, jitter them
        # (deterministically, a billionth of the gap between them) so the rank statistics are not
        # degenerate. The jitter cannot blur the gap itself.
        jitter = NOISE_SCALE * abs(float(can_sorted[0]) - float(base_sorted[0]))
        rng = np.random.default_rng(NOISE_SEED)
        base_sorted = np.sort(base_sorted + rng.normal(0.0, jitter, base_sorted.size))
        can_sorted = np.sort(can_sorted + rng.normal(0.0, jitter, can_sorted.size))

    p_value, estimate, ci_low, ci_high = _rank_test(can_sorted, base_sorted, confidence)
    figures = {
        "estimate": _unscale(estimate, exponent),
        "ci_low": _unscale(ci_low, exponent),
        "ci_high": _unscale(ci_high, exponent),
        "p_value": p_value,
        "effect_size": effect,
    } | stats
    bound = tolerance * abs(estimate)
    ci_text = f"{confidence:.0%} interval of the shift [{figures['ci_low']:.6g}, {figures['ci_high']:.6g}]"
    effect_text = f"effect size {effect:.4g}"

    if direction in (Direction.INCREASE, Direction.EITHER) and ci_low > bound:
        if allowed_increase is None or effect >= allowed_increase:
            return Classification(Label.HIGH, f"canary higher: {ci_text}, {effect_text}", **figures)
        allowed = f"{effect_text} < {allowed_increase:g}"
        return Classification(Label.PASS, f"canary higher but within the allowed increase ({allowed})", **figures)
    if direction in (Direction.DECREASE, Direction.EITHER) and ci_high < -bound:
        if allowed_decrease is None or effect <= allowed_decrease:
            return Classification(Label.LOW, f"canary lower: {ci_text}, {effect_text}", **figures)
        allowed = f"{effect_text} > {allowed_decrease:g}"
        return Classification(Label.PASS, f"canary lower but within the allowed decrease ({allowed})", **figures)
    if ci_low > bound:
        return Classification(Label.PASS, f"canary higher, which direction {direction} allows: {ci_text}", **figures)
    if ci_high < -bound:
        return Classification(Label.PASS, f"canary lower, which direction {direction} allows: {ci_text}", **figures)
    return Classification(Label.PASS, f"no significant difference: {ci_text}", **figures)


def _unscale(x: float, exponent: int) -> float:
    with np.errstate(over="ignore"):
        return float(np.ldexp(x, exponent))  # ±inf for a mean beyond the float range


def _describe(base: Floats, can: Floats, exponent: int) -> dict[str, Any]:
    return {
        "baseline_median": _unscale(float(np.median(base)), exponent),
        "canary_median": _unscale(float(np.median(can)), exponent),
        "baseline_mean": _unscale(float(np.mean(base)), exponent),
        "canary_mean": _unscale(float(np.mean(can)), exponent),
    }


def _effect_size(base: Floats, can: Floats, measure: EffectSize) -> float:
    if measure is EffectSize.CLES:
        # P(canary > baseline) + ½ P(tie) over all pairs.
        return _u_statistic(can, base) / (base.size * can.size)
    base_mean, can_mean = float(np.mean(base)), float(np.mean(can))
    if base_mean == 0.0:
        # From nothing to something is an unbounded increase (e.g. errors appearing in the canary).
        return 1.0 if can_mean == 0.0 else math.copysign(math.inf, can_mean)
    return can_mean / base_mean


def _rank_test(can: Floats, base: Floats, confidence: float) -> tuple[float, float, float, float]:
    """The Mann-Whitney U test's two-sided p-value, the Hodges-Lehmann estimate of the shift (the
    median of canary - baseline over all pairs) and its distribution-free confidence interval.

    The p-value is scipy.stats.mannwhitneyu's asymptotic one (tie-corrected, with continuity
    correction; a test checks they agree), computed here from the sorted samples because scipy's
    input handling alone costs more than the whole test. The interval's ends are order statistics
    of the pairwise differences at the ranks where U reaches the normal quantile.
    """
    m, n = can.size, base.size
    pairs = m * n
    _, ties = np.unique(np.concatenate([can, base]), return_counts=True)
    tie_term = float(np.sum(ties.astype(np.float64) ** 3 - ties)) / ((m + n) * (m + n - 1))
    sigma = math.sqrt(max(m * n / 12.0 * ((m + n + 1) - tie_term), 0.0))
    u = _u_statistic(can, base)
    p_value = 1.0 if sigma == 0 else min(1.0, 2 * _normal_cdf(-(abs(u - pairs / 2) - 0.5) / sigma))
    z = _NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    c = math.floor(pairs / 2 - z * sigma)  # 1-based rank of the lower end
    c = min(max(c, 1), (pairs + 1) // 2)
    lower, upper = c - 1, pairs - c
    middle = [(pairs - 1) // 2, pairs // 2]
    values = _pairwise_order_statistics(can, base, sorted({lower, upper, *middle}))
    estimate = (values[middle[0]] + values[middle[1]]) / 2
    return p_value, estimate, values[lower], values[upper]


def _u_statistic(can: Floats, base: Floats) -> float:
    """Pairs with the canary above the baseline, ties counting half (both sorted)."""
    below = int(np.searchsorted(base, can, side="left").sum())
    not_above = int(np.searchsorted(base, can, side="right").sum())
    return (below + not_above) / 2


def _pairwise_order_statistics(a: Floats, b: Floats, ranks: list[int]) -> dict[int, float]:
    """The values at 0-based ``ranks`` among all a[i] - b[j], for sorted a and b.

    Materialising all m x n differences costs 8 MB and ~15 ms at 1,000 x 1,000, so larger inputs are
    narrowed first: sample differences inside the current bracket, pick a tighter bracket around the
    wanted rank, and count (two binary searches per row) how many differences fall below and inside
    it; once few enough remain inside, materialise just those.
    """
    m, n = a.size, b.size
    if m * n <= ENUMERATE_LIMIT:
        diffs = np.subtract.outer(a, b).ravel()
        chosen = np.partition(diffs, ranks)
        return {r: float(chosen[r]) for r in ranks}
    rng = np.random.default_rng(NOISE_SEED)
    # One sample of the whole set, sorted once, brackets every rank in the first round.
    first_sample = np.sort(a[rng.integers(0, m, size=4096)] - b[rng.integers(0, n, size=4096)])
    out: dict[int, float] = {}
    groups: list[list[int]] = []
    for r in ranks:  # neighbouring ranks (the two middles) share one bracket
        if groups and r - groups[-1][-1] <= 1:
            groups[-1].append(r)
        else:
            groups.append([r])
    for group in groups:
        out.update(_select(a, b, group[0], group[-1], rng, first_sample))
    return out


def _select(a: Floats, b: Floats, first: int, last: int, rng: np.random.Generator, sample: Floats) -> dict[int, float]:
    m, n = a.size, b.size
    # For row i, differences are descending in j (b ascending): the bracket keeps j in [start, stop).
    start = np.zeros(m, dtype=np.int64)  # j < start: a[i] - b[j] above the bracket
    stop = np.full(m, n, dtype=np.int64)  # j >= stop: below the bracket
    below, inside = 0, m * n
    for round_ in range(64):  # each round shrinks the bracket ~10x; the bound only guards against stalls
        if inside <= ENUMERATE_LIMIT:
            break
        if round_ > 0:  # later rounds sample inside the bracket
            lengths = stop - start
            offsets = np.cumsum(lengths)
            picks = rng.integers(0, inside, size=1024)
            rows = np.searchsorted(offsets, picks, side="right")
            cols = start[rows] + picks - (offsets[rows] - lengths[rows])
            sample = np.sort(a[rows] - b[cols])
        spread = 1.5 * math.sqrt(sample.size) + 2  # three standard deviations of a sample rank (at most)
        lo_pos = (first - below) / inside * sample.size - spread
        hi_pos = (last - below + 1) / inside * sample.size + spread
        if lo_pos >= 0:
            new_stop = np.clip(np.searchsorted(b, a - sample[int(lo_pos)], side="right"), start, stop)  # diff >= lo
            new_below = below + int(np.sum(stop - new_stop))
            if new_below <= first:
                stop, below = new_stop, new_below
        if hi_pos < sample.size:
            new_start = np.clip(np.searchsorted(b, a - sample[int(hi_pos)], side="left"), start, stop)  # diff <= hi
            if m * n - int(np.sum(new_start)) > last:
                start = new_start
        previous, inside = inside, int(np.sum(stop - start))
        if inside * 2 > previous:
            # Stalled: most likely a run of equal differences holds the wanted ranks, which sampling
            # cannot split. Count the pairs either side of the sampled value there to prove it.
            value = float(sample[min(max(int(lo_pos + spread), 0), sample.size - 1)])
            smaller = int(np.sum(n - np.searchsorted(b, a - value, side="right")))  # diff < value
            not_larger = int(np.sum(n - np.searchsorted(b, a - value, side="left")))  # diff <= value
            if smaller <= first and last < not_larger:
                return {r: value for r in range(first, last + 1)}
            if first < last:  # the wanted ranks straddle two runs: find each on its own
                return _select(a, b, first, first, rng, sample) | _select(a, b, last, last, rng, sample)
    lengths = stop - start
    rows = np.repeat(np.arange(m), lengths)
    first_of_row = np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols = np.repeat(start, lengths) + (np.arange(rows.size) - first_of_row)
    candidates = np.partition(a[rows] - b[cols], [first - below, last - below])
    return {r: float(candidates[r - below]) for r in range(first, last + 1)}
