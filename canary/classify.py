"""Pure per-metric judgements: Kayenta's rank-test classification, the memory trend, the error e-process.

Each function turns the values of one metric into a MetricResult with its explanation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config_model import Direction, MemoryTrend, MetricConfig, NanStrategy, OutlierStrategy, Sequential
from .samples import Samples
from .sequential import ErrorCounts, absolute_pass_evalues, fail_evalues, first_crossing, ratio_pass_evalues
from .stats import excess_trend, mann_whitney_hl, mean_ratio, remove_outliers
from .verdict import Classification, Explanation, MetricResult, Rule


def metric_values(metric: MetricConfig, samples: Samples) -> np.ndarray | None:
    """Return the metric's per-interval values (ratio computed per interval), or None if a series is absent."""
    if metric.ratio is not None:
        num, den = samples.get(metric.ratio[0]), samples.get(metric.ratio[1])
        if num is None or den is None:
            return None
        n, d = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            # An interval without requests has no error rate: missing, not zero.
            return np.where(d > 0, n / np.where(d > 0, d, 1.0), np.nan)
    values = samples.get(metric.series or "")
    return None if values is None else np.asarray(values, dtype=float)


def prepare(metric: MetricConfig, values: np.ndarray | None) -> np.ndarray:
    """Apply the metric's NaN strategy and outlier policy."""
    if values is None:
        return np.zeros(0)
    if metric.nan_strategy is NanStrategy.REPLACE:
        values = np.where(np.isfinite(values), values, 0.0)
    else:
        values = values[np.isfinite(values)]
    if metric.outliers.strategy is OutlierStrategy.REMOVE:
        values = remove_outliers(values, metric.outliers.factor)
    return values


def _fmt(v: float) -> str:
    """Format a number compactly for explanations."""
    if not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    if abs(v) < 1e-12:
        return "0"  # rounding noise of a difference of equal values
    return f"{v:.4g}"


def classify_metric(metric: MetricConfig, baseline: Samples, canary: Samples,
                    confidence: float) -> tuple[MetricResult, bool]:
    """Classify one metric (Kayenta's rule, made stricter); also say whether its interval is inside the allowed band.

    Kayenta calls a metric high when the shift is significant (the Hodges-Lehmann interval
    excludes 0) and the ratio of means exceeds allowedIncrease. Here the whole interval must
    also clear the allowance itself, (allowedIncrease - 1) x the baseline mean: a test that the
    canary is worse *by more than allowed*, not merely different. With allowedIncrease 1 this
    is exactly Kayenta's rule; above 1 it stops noisy metrics (a p99 that is nearly the
    slowest of a dozen requests) from failing good canaries on a significant but small shift
    that a few outliers inflate past the ratio. Low is the mirror image; the direction then
    forgives changes that do no harm.
    """
    b = prepare(metric, metric_values(metric, baseline))
    c = prepare(metric, metric_values(metric, canary))
    es = metric.effect_size
    threshold = {"allowedIncrease": es.allowed_increase, "allowedDecrease": es.allowed_decrease}
    if metric.critical:
        threshold.update(criticalIncrease=es.critical_increase, criticalDecrease=es.critical_decrease)
    if len(b) == 0 or len(c) == 0:
        missing = "canary" if len(c) == 0 else "baseline"
        # Kayenta: a critical metric without data fails the canary; a non-critical one that
        # must have data counts as failed in its group; any other is left out of the score.
        cls = Classification.NODATA_FAIL if metric.must_have_data and not metric.critical else Classification.NODATA
        rule = ("a critical metric without data fails the canary" if metric.critical else
                "mustHaveData: counts as failed in its group" if metric.must_have_data else "left out of the score")
        expl = Explanation(Rule.NODATA, len(b), len(c), threshold=threshold, note=f"no {missing} data; {rule}")
        return MetricResult(metric.name, metric.group, cls, metric.critical, expl,
                            critical_failure=metric.critical), False
    mb, mc = float(np.mean(b)), float(np.mean(c))
    ratio = mean_ratio(b, c)
    if len(b) == len(c) and np.array_equal(np.sort(b), np.sort(c)):
        expl = Explanation(Rule.IDENTICAL, len(b), len(c), mb, mc, 0.0, (0.0, 0.0), confidence, 1.0, threshold,
                           1.0, None, "canary and baseline values are identical")
        return MetricResult(metric.name, metric.group, Classification.PASS, metric.critical, expl), True
    t = mann_whitney_hl(b, c, confidence)
    # The allowance expressed as a shift, scaled by the baseline level.
    band_up = (es.allowed_increase - 1.0) * abs(mb)
    band_down = (1.0 - es.allowed_decrease) * abs(mb)
    raw = Classification.PASS
    if t.lower > band_up and ratio > es.allowed_increase:
        raw = Classification.HIGH
    elif t.upper < -band_down and ratio < es.allowed_decrease:
        raw = Classification.LOW
    final = raw
    if (raw is Classification.LOW and metric.direction is Direction.INCREASE) or (
        raw is Classification.HIGH and metric.direction is Direction.DECREASE
    ):
        final = Classification.PASS
    up_ok = t.upper <= band_up
    down_ok = t.lower >= -band_down
    inside = {Direction.INCREASE: up_ok, Direction.DECREASE: down_ok, Direction.EITHER: up_ok and down_ok}[
        metric.direction]
    if raw is Classification.PASS:
        why = "not shown to be beyond the allowed ratio at this confidence"
    elif final is Classification.PASS:
        why = f"{raw.value} but in the allowed direction ({metric.direction.value} is what hurts)"
    else:
        bound = es.allowed_increase if raw is Classification.HIGH else es.allowed_decrease
        why = f"interval and ratio x{_fmt(ratio)} beyond allowed x{_fmt(bound)}"
    note = (f"canary {_fmt(mc)} vs baseline {_fmt(mb)} (x{_fmt(ratio)}); shift {_fmt(t.estimate)} "
            f"[{_fmt(t.lower)}, {_fmt(t.upper)}] at {confidence:.4%}; {why}")
    # Kayenta's critical thresholds: only a change at least this large fails the whole canary.
    critical = metric.critical and (
        (final is Classification.HIGH and ratio >= es.critical_increase)
        or (final is Classification.LOW and ratio <= es.critical_decrease))
    if metric.critical and final in (Classification.HIGH, Classification.LOW) and not critical:
        bound = es.critical_increase if final is Classification.HIGH else es.critical_decrease
        note += f"; within the critical threshold x{_fmt(bound)}, so it only lowers the score"
    expl = Explanation(Rule.MANN_WHITNEY, t.n_baseline, t.n_canary, mb, mc, t.estimate, (t.lower, t.upper),
                       confidence, ratio, threshold, t.p_value, None, note)
    return MetricResult(metric.name, metric.group, final, metric.critical, expl, critical_failure=critical), inside


def classify_trend(trend: MemoryTrend, baseline: Samples, canary: Samples,
                   confidence: float) -> tuple[MetricResult, bool]:
    """Judge the canary's memory growth beyond the baseline's; also say whether it is shown small enough."""
    name = f"{trend.series}_trend"
    threshold = {"allowedGrowthPercentPerMinute": trend.allowed_growth_percent_per_minute}
    b, c = baseline.get(trend.series), canary.get(trend.series)
    n = min(len(b), len(c)) if b is not None and c is not None else 0
    if b is None or c is None:
        expl = Explanation(Rule.NODATA, 0, 0, threshold=threshold, note=f"no {trend.series} series")
        return MetricResult(name, trend.group, Classification.NODATA, trend.critical, expl, counted=False), False
    t = excess_trend(np.asarray(b[:n], dtype=float), np.asarray(c[:n], dtype=float), canary.interval_s, confidence)
    if t.n < trend.min_intervals or not (t.baseline_level > 0):
        expl = Explanation(Rule.NODATA, t.n, t.n, threshold=threshold,
                           note=f"{t.n} paired values, the trend needs {trend.min_intervals}")
        return MetricResult(name, trend.group, Classification.NODATA, trend.critical, expl, counted=False), False
    scale = 100.0 / t.baseline_level  # units per minute -> % of the baseline level per minute
    slope, lo, hi = t.slope * scale, t.lower * scale, t.upper * scale
    allowed = trend.allowed_growth_percent_per_minute
    leak = lo > allowed
    cls = Classification.HIGH if leak else Classification.PASS
    crit = trend.critical and leak
    why = "grows faster than allowed" if leak else "no growth beyond the allowed rate shown"
    note = (f"canary-minus-baseline slope {_fmt(slope)} %/min [{_fmt(lo)}, {_fmt(hi)}] at {confidence:.4%}, "
            f"allowed {_fmt(allowed)} %/min of baseline level {_fmt(t.baseline_level)}; {why}")
    expl = Explanation(Rule.TREND, t.n, t.n, t.baseline_level, None, slope, (lo, hi), confidence, None,
                       threshold, None, None, note)
    return MetricResult(name, trend.group, cls, trend.critical, expl, critical_failure=crit), hi <= allowed


@dataclass(frozen=True)
class SequentialOutcome:
    """The error e-processes: the fail decision and what they say for an early pass."""

    result: MetricResult
    crossed_at: int | None
    shown_not_worse: bool


def sequential_errors(seq: Sequential, allowed_ratio: float, baseline: Samples, canary: Samples,
                      pass_alpha: float, group: str) -> SequentialOutcome | None:
    """Run the anytime-valid error tests on the counts; None when the count series are absent."""
    series = [canary.get(seq.errors), canary.get(seq.requests), baseline.get(seq.errors), baseline.get(seq.requests)]
    if any(s is None for s in series):
        return None
    counts = ErrorCounts.from_values(*series)  # type: ignore[arg-type]
    ce, cr, be, br = counts.totals()
    threshold = 1.0 / seq.alpha
    fail_path = fail_evalues(counts, seq.allowed_increase)
    crossed = first_crossing(fail_path, threshold)
    e_max = float(fail_path.max()) if len(fail_path) else 1.0
    # Evidence for a pass: the ratio is shown below the metric's allowance, or the canary's
    # own error rate is shown below the tolerated rate (the only proof possible without errors).
    pass_ratio = ratio_pass_evalues(counts, allowed_ratio)
    pass_abs = absolute_pass_evalues(counts, seq.tolerated_error_rate)
    need = 1.0 / pass_alpha
    shown = bool((len(pass_ratio) and pass_ratio.max() >= need) or (len(pass_abs) and pass_abs.max() >= need))
    rate_c = ce / cr if cr else math.nan
    rate_b = be / br if br else math.nan
    ratio = (rate_c / rate_b) if br and be else (math.inf if ce else (1.0 if cr and br else math.nan))
    cls = Classification.HIGH if crossed is not None else (
        Classification.NODATA if cr == 0 or br == 0 else Classification.PASS)
    decision = (f"e-value reached {_fmt(threshold)} at interval {crossed}: canary errors are more frequent "
                f"than allowed" if crossed is not None else
                f"e-value below {_fmt(threshold)}: no proof that canary errors are more frequent than allowed")
    note = (f"canary {ce}/{cr} errors ({_fmt(rate_c)}), baseline {be}/{br} ({_fmt(rate_b)}); max e-value "
            f"{_fmt(e_max)}; {decision}")
    expl = Explanation(Rule.SEQUENTIAL, br, cr, rate_b, rate_c, ratio, None, 1.0 - seq.alpha, ratio,
                       {"eValue": threshold, "allowedIncrease": seq.allowed_increase}, None, e_max, note)
    row = MetricResult(f"{seq.errors}_sequential", group, cls, True, expl, counted=False,
                       critical_failure=crossed is not None)
    return SequentialOutcome(row, crossed, shown)
