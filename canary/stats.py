"""Pure statistical building blocks of the judge: rank test, shift interval, trend, outliers.

No I/O, no clock, no randomness: numpy and scipy only. The rank-sum p-value and the
Theil-Sen interval compute exactly what ``scipy.stats.mannwhitneyu`` (tie-corrected, with
continuity correction) and ``scipy.stats.theilslopes`` compute (the unit tests check that),
vectorised without scipy's per-call argument handling because the watch runs them for every
metric after every interval and the benchmark replays thousands of watches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtr, ndtri

# Up to this many values per side the interval uses the exact null distribution of U;
# above it the normal approximation is within a rank of it and much cheaper.
EXACT_LIMIT = 60


@dataclass(frozen=True)
class ShiftTest:
    """Mann-Whitney U test and Hodges-Lehmann estimate of the shift canary minus baseline."""

    n_baseline: int
    n_canary: int
    estimate: float
    lower: float
    upper: float
    p_value: float
    confidence: float


@lru_cache(maxsize=4096)
def _u_cdf(m: int, n: int) -> tuple[float, ...]:
    """Return P(U <= u) for u = 0..m*n under the null (no ties), computed exactly.

    The counts are the coefficients of the Gaussian binomial [m+n choose m]_q, built as
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i) with Python integers so nothing overflows.
    """
    size = m * n + 1
    coef = np.zeros(size, dtype=object)
    coef[0] = 1
    for i in range(1, m + 1):
        shift = n + i
        if shift < size:
            coef[shift:] = coef[shift:] - coef[: size - shift]
        for r in range(i):  # dividing by (1 - q^i) is a running sum with stride i
            coef[r::i] = np.cumsum(coef[r::i])
    total = math.comb(m + n, m)
    running = np.cumsum(coef)
    return tuple(float(c) / total for c in running)


def u_critical(m: int, n: int, alpha: float) -> int:
    """Return the largest k with P(U <= k - 1) <= alpha / 2 (0 when no interval is possible)."""
    if m == 0 or n == 0:
        return 0
    if max(m, n) <= EXACT_LIMIT:
        cdf = _u_cdf(min(m, n), max(m, n))
        # cdf[k-1] <= alpha/2  <=>  k-1 < first index where cdf exceeds alpha/2
        k = int(np.searchsorted(np.asarray(cdf), alpha / 2.0, side="right"))
        return k
    z = float(ndtri(1.0 - alpha / 2.0))
    k = math.floor(m * n / 2.0 - z * math.sqrt(m * n * (m + n + 1) / 12.0))
    return max(k, 0)


def shift_interval(diffs: np.ndarray, m: int, n: int, alpha: float) -> tuple[float, float]:
    """Return the distribution-free (1 - alpha) interval for the shift from sorted pairwise differences."""
    k = u_critical(m, n, alpha)
    if k < 1:
        return (-math.inf, math.inf)
    return (float(diffs[k - 1]), float(diffs[m * n - k]))


def pairwise_differences(baseline: np.ndarray, canary: np.ndarray) -> np.ndarray:
    """Return every canary minus baseline difference, sorted."""
    return np.sort(np.subtract.outer(canary, baseline).ravel())


def mann_whitney_hl(baseline: np.ndarray, canary: np.ndarray, confidence: float) -> ShiftTest:
    """Two-sided Mann-Whitney U test plus Hodges-Lehmann shift and its confidence interval.

    The interval is the classical order-statistic inversion of the rank-sum test
    (Hollander & Wolfe): it needs no distributional assumption, only exchangeable intervals.
    """
    m, n = len(baseline), len(canary)
    if m == 0 or n == 0:
        return ShiftTest(m, n, math.nan, -math.inf, math.inf, math.nan, confidence)
    diffs = pairwise_differences(baseline, canary)
    estimate = float(np.median(diffs))
    lower, upper = shift_interval(diffs, m, n, 1.0 - confidence)
    return ShiftTest(m, n, estimate, lower, upper, rank_sum_p_value(baseline, canary), confidence)


@lru_cache(maxsize=512)
def _w_cdf(n: int) -> tuple[float, ...]:
    """Return P(W+ <= w) for w = 0..n(n+1)/2 under the null of the signed-rank test, exactly.

    W+ is the sum of the ranks of the positive differences; under the null each rank is
    positive with probability 1/2 independently, so the counts are the subset-sum counts of
    1..n (float counts: exact up to n of a few hundred, far beyond what is ever paired here).
    """
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return tuple(np.cumsum(counts) / 2.0 ** n)


def w_critical(n: int, alpha: float) -> int:
    """Return the largest k with P(W+ <= k - 1) <= alpha / 2 (0 when no interval is possible)."""
    if n == 0:
        return 0
    if n <= EXACT_LIMIT:
        return int(np.searchsorted(np.asarray(_w_cdf(n)), alpha / 2.0, side="right"))
    z = float(ndtri(1.0 - alpha / 2.0))
    return max(math.floor(n * (n + 1) / 4.0 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)), 0)


def signed_rank_hl(differences: np.ndarray, confidence: float) -> ShiftTest:
    """Wilcoxon signed-rank test and Hodges-Lehmann estimate of the median of paired differences.

    The paired counterpart of ``mann_whitney_hl``: when baseline and canary are measured in
    pairs close in time (a benchmark's alternating rounds), each pair's difference cancels
    what both shared (a machine that got busier), so far fewer samples show a real change.
    The estimate is the median of the Walsh averages and the interval their order-statistic
    inversion (Hollander & Wolfe); both need only differences symmetric about the shift.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return ShiftTest(0, 0, math.nan, -math.inf, math.inf, math.nan, confidence)
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    estimate = float(np.median(walsh))
    k = w_critical(n, 1.0 - confidence)
    lower, upper = (float(walsh[k - 1]), float(walsh[len(walsh) - k])) if k >= 1 else (-math.inf, math.inf)
    return ShiftTest(n, n, estimate, lower, upper, signed_rank_p_value(d), confidence)


def signed_rank_p_value(differences: np.ndarray) -> float:
    """Two-sided signed-rank p-value: exact without zeros or ties, else normal with tie correction."""
    d = differences[differences != 0]
    n = len(d)
    if n == 0:
        return 1.0
    magnitudes, inverse, counts = np.unique(np.abs(d), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    w = float(ranks[d > 0].sum())
    top = n * (n + 1) / 2.0
    if len(magnitudes) == n and n <= EXACT_LIMIT and n == len(differences):
        cdf = _w_cdf(n)
        return min(1.0, 2.0 * cdf[int(round(min(w, top - w)))])
    sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0 - float((counts ** 3 - counts).sum()) / 48.0)
    if sigma == 0:
        return 1.0
    z = (abs(w - top / 2.0) - 0.5) / sigma
    return min(1.0, float(2.0 * ndtr(-z)))


def rank_sum_p_value(baseline: np.ndarray, canary: np.ndarray) -> float:
    """Two-sided Mann-Whitney p-value: exact without ties for small samples, else normal with tie correction."""
    m, n = len(baseline), len(canary)
    pooled = np.concatenate([canary, baseline])
    values, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    if len(values) == 1:
        return 1.0  # every value identical: no evidence of any difference
    # Average ranks: a tied block gets the mean of the ranks it spans.
    upper_rank = np.cumsum(counts)
    ranks = (upper_rank - (counts - 1) / 2.0)[inverse]
    u = float(ranks[:n].sum() - n * (n + 1) / 2.0)
    mn = m * n
    ties = len(values) < len(pooled)
    if not ties and min(m, n) <= 8:
        # scipy's 'auto' choice: exact null distribution for small samples without ties.
        cdf = _u_cdf(min(m, n), max(m, n))
        low = cdf[int(round(min(u, mn - u)))]
        return min(1.0, 2.0 * low)
    total = m + n
    tie_term = float((counts ** 3 - counts).sum()) / (total * (total - 1))
    sigma = math.sqrt(mn / 12.0 * ((total + 1) - tie_term))
    if sigma == 0:
        return 1.0
    z = (abs(u - mn / 2.0) - 0.5) / sigma
    return min(1.0, float(2.0 * ndtr(-z)))


def mean_ratio(baseline: np.ndarray, canary: np.ndarray) -> float:
    """Return mean(canary) / mean(baseline), Kayenta's effect size (inf when only the canary is nonzero)."""
    mb = float(np.mean(baseline))
    mc = float(np.mean(canary))
    if mb == 0.0:
        return 1.0 if mc == 0.0 else math.copysign(math.inf, mc)
    return mc / mb


def remove_outliers(values: np.ndarray, factor: float) -> np.ndarray:
    """Drop values beyond factor * IQR outside the quartiles (Tukey's fences).

    With a zero IQR (e.g. mostly-zero error ratios) nothing is removed: the fences would
    otherwise throw away every nonzero value, which is exactly the signal of a regression.
    """
    if len(values) < 4:
        return values
    q1, q3 = np.percentile(values, [25.0, 75.0])
    iqr = q3 - q1
    if iqr <= 0:
        return values
    keep = (values >= q1 - factor * iqr) & (values <= q3 + factor * iqr)
    return np.asarray(values[keep], dtype=float)


@dataclass(frozen=True)
class TrendTest:
    """Theil-Sen slope of canary minus baseline, per minute, with its confidence interval."""

    n: int
    slope: float
    lower: float
    upper: float
    baseline_level: float
    confidence: float


def excess_trend(baseline: np.ndarray, canary: np.ndarray, interval_s: float, confidence: float) -> TrendTest:
    """Estimate how fast the canary grows relative to the baseline (units per minute).

    Differencing the two series cancels what both share (warm-up, caches filling at the
    same rate, traffic waves), so only growth specific to the canary remains; Theil-Sen is
    robust to the sawtooth of garbage collection and to single outlying scrapes.
    """
    ok = np.isfinite(baseline) & np.isfinite(canary)
    t = np.arange(len(baseline), dtype=float)[ok] * interval_s / 60.0
    diff = canary[ok] - baseline[ok]
    level = float(np.mean(baseline[ok])) if ok.any() else math.nan
    if len(diff) < 3:
        return TrendTest(len(diff), math.nan, -math.inf, math.inf, level, confidence)
    slope, low, high = theil_sen(diff, t, confidence)
    return TrendTest(len(diff), slope, low, high, level, confidence)


def theil_sen(y: np.ndarray, x: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Return the Theil-Sen slope and its (Sen 1968) confidence interval, as scipy.stats.theilslopes does."""
    dx = x[None, :] - x[:, None]
    dy = y[None, :] - y[:, None]
    iu = np.triu_indices(len(x), k=1)
    keep = dx[iu] > 0
    slopes = np.sort(dy[iu][keep] / dx[iu][keep])
    if len(slopes) == 0:
        return (math.nan, -math.inf, math.inf)
    slope = float(np.median(slopes))
    ny = len(y)
    # Variance of Kendall's S, corrected for ties in x and in y.
    _, cx = np.unique(x, return_counts=True)
    _, cy = np.unique(y, return_counts=True)
    sigsq = (ny * (ny - 1) * (2 * ny + 5) - float((cx * (cx - 1) * (2 * cx + 5)).sum())
             - float((cy * (cy - 1) * (2 * cy + 5)).sum())) / 18.0
    z = float(ndtri((1.0 - confidence) / 2.0))
    nt = len(slopes)
    sigma = math.sqrt(max(sigsq, 0.0))
    ru = min(int(round((nt - z * sigma) / 2.0)), nt - 1)
    rl = max(int(round((nt + z * sigma) / 2.0)) - 1, 0)
    return slope, float(slopes[rl]), float(slopes[ru])


def look_alpha(alpha: float, look: int, first_look: int) -> float:
    """Return the share of alpha spent at look number ``look`` (looks start at ``first_look``).

    Spending alpha * k0 / (k (k + 1)) at look k sums to exactly alpha over k = k0, k0+1, ...,
    so by the union bound the chance of any false decision over an unbounded number of looks
    stays below alpha, without fixing the number of looks in advance.
    """
    k0 = max(first_look, 1)
    k = max(look, k0)
    return alpha * k0 / (k * (k + 1))
