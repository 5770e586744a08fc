"""The canary judge, PURE: samples in, a Verdict out (numpy/scipy only; no I/O, clock or randomness).

Rules, in order (each verdict's ``reason`` names the one that decided):

1. Sequential tests (anytime valid, any time): fail as soon as an e-value reaches 1/alpha: 5xx
   errors, and (canary.counts) unexpected answers and the latency tail, pooled and per route.
2. Source problems: never pass; final verdict inconclusive.
3. Minimum evidence (requests per side, intervals): below it, keep watching; final inconclusive.
4. Final call: >= 50% of metrics without data fails; a critical metric that has no data, or
   is high/low beyond its critical threshold, fails (Kayenta's rules); then the weighted score: >= pass passes, anything lower fails (below marginal, or marginal).
   Each metric is classified by its rank test (canary.classify.classify_metric): high or low
   only when the confidence interval of the shift lies beyond the allowed effect size.
5. Interim call (``final=False``), looked at after every interval: the rank tests run at a
   stricter, alpha-spending confidence (see canary.stats.look_alpha) so that looking often does
   not inflate false fails; a failing critical metric or a score below marginal fails early.
   An early pass needs every metric's interval inside its allowed band, no memory growth
   beyond the allowance and errors shown not worse, at that same spent confidence.
"""

from __future__ import annotations

import math

import numpy as np

from .classify import classify_metric, classify_trend, sequential_errors
from .config_model import CanaryConfig
from .counts import count_tests
from .exceptions import InvalidSamples
from .samples import Samples
from .scoring import group_scores, summary_score
from .stats import look_alpha
from .verdict import Classification, MetricResult, Result, Verdict

__all__ = ["doubts", "judge", "replay"]


def _evidence(config: CanaryConfig, baseline: Samples, canary: Samples, n: int) -> tuple[dict[str, float], str]:
    """Return the amounts of evidence and, when they are too small, why."""
    me = config.minimum_evidence
    ev: dict[str, float] = {"intervals": float(n)}
    short: list[str] = []
    if n < me.intervals:
        short.append(f"{n} intervals < {me.intervals}")
    if me.requests > 0:
        for role, s in (("baseline", baseline), ("canary", canary)):
            values = s.get(me.series)
            total = float(np.nansum(values)) if values else 0.0
            ev[f"{role}_requests"] = total
            if total < me.requests:
                short.append(f"{role} {total:.0f} requests < {me.requests}")
    return ev, "; ".join(short)


def _score_class(config: CanaryConfig, score: float | None) -> str | None:
    """Classify the score against the pass and marginal thresholds."""
    if score is None:
        return None
    if score >= config.classifier.pass_score:
        return "pass"
    return "marginal" if score >= config.classifier.marginal_score else "fail"


def _route_hint(rows: list[MetricResult]) -> str:
    """Name the route whose count tests hold the most evidence in the groups that failed, if any."""
    groups = {r.group for r in rows if (r.failed or r.critical_failure) and r.route is None}
    candidates = [r for r in rows if r.route is not None and r.group in groups and (r.explanation.e_value or 0) > 1]
    if not candidates:
        # No route has a test of its own with evidence (too thin to plan one): the pooled count
        # tests still say which route holds the canary's extra slow or bad requests.
        pooled = [r for r in rows if r.route is None and r.group in groups and "; mostly on route " in
                  r.explanation.note]
        if not pooled:
            return ""
        best = max(pooled, key=lambda r: r.explanation.e_value or 0.0)
        return "; mostly on route " + best.explanation.note.split("; mostly on route ", 1)[1]
    worst = max(candidates, key=lambda r: r.explanation.e_value or 0.0)
    return f"; the route with the most evidence: {worst.route} ({worst.explanation.note.split(': ', 1)[-1]})"


def _failing(rows: list[MetricResult]) -> str:
    """Name the failing metrics for a reason line."""
    return ", ".join(f"{r.name} {r.classification.value}" for r in rows if r.failed or r.critical_failure)


def doubts(rows: list[MetricResult]) -> list[str]:
    """Pooled count tests whose evidence against the canary got half-way to failing it.

    Half-way on the log scale: e-value >= sqrt(threshold). Such a canary was not shown worse,
    yet passing it would ignore most of a proof; the bake is extended instead, and the
    e-process, being cumulative, either crosses or falls back as evidence accumulates. Under
    a good canary Ville's inequality bounds the chance of this at sqrt(alpha) per test, and
    it costs only time, never a false fail.
    """
    out = []
    for row in rows:
        expl = row.explanation
        threshold = expl.threshold.get("eValue")
        if row.route is not None or not row.critical or row.critical_failure or not threshold or not expl.e_value:
            continue
        if expl.e_value >= math.sqrt(threshold):
            out.append(f"{row.name} e-value {expl.e_value:.3g} >= sqrt({threshold:.3g})")
    return out


def judge(config: CanaryConfig, baseline: Samples, canary: Samples, *, final: bool) -> Verdict:
    """Judge canary against baseline on the intervals collected so far.

    With ``final=False`` (during the bake) the result is FAIL as soon as a decisive rule says
    so, PASS only when an early pass is justified, otherwise CONTINUE. With ``final=True`` it
    is PASS, FAIL or INCONCLUSIVE.
    """
    if baseline.interval_s != canary.interval_s:
        raise InvalidSamples("interval_s", f"baseline has {baseline.interval_s}s intervals but canary has "
                             f"{canary.interval_s}s; collect both at the same interval")
    warm = math.ceil(config.warmup_s / canary.interval_s - 1e-9)
    n = max(min(len(baseline), len(canary)) - warm, 0)
    b = baseline.tail(warm).head(n)
    c = canary.tail(warm).head(n)
    problems = [f"baseline: {p}" for p in baseline.problems] + [f"canary: {p}" for p in canary.problems]
    alpha = 1.0 - config.confidence
    k0 = config.minimum_evidence.intervals
    spent = alpha if final else look_alpha(alpha, n, k0)
    conf = 1.0 - spent

    rows: list[MetricResult] = []
    inside: list[bool] = []
    seq_metric = (config.sequential.errors, config.sequential.requests) if config.sequential.enabled else None
    error_allowance = 1.0
    for m in config.metrics:
        row, ok = classify_metric(m, b, c, conf)
        rows.append(row)
        if m.ratio == seq_metric:
            error_allowance = m.effect_size.allowed_increase  # errors are judged by their e-process below
        else:
            inside.append(ok and row.classification is not Classification.NODATA)
    nodata = sum(r.classification is Classification.NODATA for r in rows)
    if config.memory_trend.enabled:
        trow, ok = classify_trend(config.memory_trend, b, c, conf)
        rows.append(trow)
        inside.append(ok and trow.classification is not Classification.NODATA)
    seq = None
    if config.sequential.enabled:
        group = next((m.group for m in config.metrics if m.ratio == seq_metric), config.metrics[0].group)
        seq = sequential_errors(config.sequential, error_allowance, b, c, alpha, group)
        if seq is not None:
            rows.append(seq.result)
    counts = count_tests(config, b, c)
    rows.extend(counts.rows)
    groups = group_scores(config, rows)
    score = summary_score(groups)
    verdict = Verdict(Result.CONTINUE, score, "", rows, None, _score_class(config, score), n, final, groups=groups)
    verdict.evidence, short = _evidence(config, b, c, n)
    verdict.thin_routes = list(counts.thin_routes)

    def decide(result: Result, reason: str, at: int | None = None) -> Verdict:
        if result is Result.FAIL and " on route " not in reason and "mostly on route" not in reason:
            reason += _route_hint(rows)
        verdict.result, verdict.reason = result, reason
        verdict.decided_at = None if at is None else at + warm
        return verdict

    seq_at = seq.crossed_at if seq is not None and seq.crossed_at is not None else None
    if counts.failing is not None and counts.crossed_at is not None and (seq_at is None or counts.crossed_at < seq_at):
        row = counts.failing
        where = f" on route {row.route}" if row.route else ""
        reason = f"{row.name.split('@')[0].replace('_', ' ')}{where}: {row.explanation.note}"
        worst = None if row.route else counts.worst_route(row)
        if worst is not None and (worst.explanation.e_value or 0.0) > 1.0:
            # A pooled test says that users suffer; the route says where.
            reason += f"; mostly on route {worst.route}: {worst.explanation.note.split(': ', 1)[-1]}"
        return decide(Result.FAIL, reason, counts.crossed_at)
    if seq is not None and seq.crossed_at is not None:
        e = seq.result.explanation.e_value or 0.0
        return decide(Result.FAIL, f"sequential error test: e-value {e:.3g} >= {1 / config.sequential.alpha:.3g} "
                      f"({seq.result.explanation.note.split(';')[0]})", seq.crossed_at)
    if final and problems:
        return decide(Result.INCONCLUSIVE, "metrics source problems: " + "; ".join(problems))
    if short:
        return decide(Result.INCONCLUSIVE if final else Result.CONTINUE, f"too little evidence: {short}")
    critical = [r for r in rows if r.critical_failure]
    if final:
        # Kayenta's order: critical failures first, then too many metrics without data.
        if critical:
            return decide(Result.FAIL, f"critical metric failed: {_failing(critical)}")
        if nodata * 2 >= len(config.metrics):
            return decide(Result.FAIL, f"{nodata} of {len(config.metrics)} metrics have no data (>= 50%)")
        if score is None:
            return decide(Result.INCONCLUSIVE, "no metric has data to score")
        if score >= config.classifier.pass_score:
            half_way = doubts(rows)
            if half_way:
                return decide(Result.INCONCLUSIVE, "not shown worse, but not clean either, so not passed: "
                              + "; ".join(half_way) + "; watch longer")
            return decide(Result.PASS, f"score {score:.1f} >= pass {config.classifier.pass_score:g}")
        return decide(Result.FAIL, f"score {score:.1f} < pass {config.classifier.pass_score:g} "
                      f"({verdict.score_class}): {_failing(rows)}")
    at = n - 1
    # Mid-bake, a critical metric without data may still get some: only its final call fails on that.
    critical = [r for r in critical if r.classification is not Classification.NODATA]
    if critical:
        return decide(Result.FAIL, f"critical metric failed at {conf:.4%} confidence: {_failing(critical)}", at)
    if score is not None and score < config.classifier.marginal_score:
        return decide(Result.FAIL, f"score {score:.1f} < marginal {config.classifier.marginal_score:g} at "
                      f"{conf:.4%} confidence: {_failing(rows)}", at)
    errors_ok = not config.sequential.enabled or (seq is not None and seq.shown_not_worse)
    if config.early_pass and not problems and not nodata and all(inside) and errors_ok and not doubts(rows):
        return decide(Result.PASS, f"early pass: every metric shown within its allowance at {conf:.4%} "
                      f"confidence, errors shown not worse", at)
    return decide(Result.CONTINUE, "keep watching: no decisive evidence yet")


def _first_look_that_can_decide(config: CanaryConfig, baseline: Samples, canary: Samples) -> int:
    """Return the smallest prefix length at which an interim judgement could be anything but CONTINUE.

    Before the minimum evidence is reached only the sequential test can decide, and its
    e-process is cumulative, so its first crossing on the whole window is its first crossing
    on every prefix. Skipping the looks before that changes no result, only the replay's cost.
    """
    warm = math.ceil(config.warmup_s / canary.interval_s - 1e-9)
    n = min(len(baseline), len(canary))
    me = config.minimum_evidence
    start = warm + me.intervals
    if me.requests > 0:
        b, c = baseline.get(me.series), canary.get(me.series)
        if b is None or c is None:
            start = n
        else:
            cb = np.nancumsum(np.asarray(b[warm:n], dtype=float))
            cc = np.nancumsum(np.asarray(c[warm:n], dtype=float))
            enough = np.nonzero((cb >= me.requests) & (cc >= me.requests))[0]
            start = max(start, warm + int(enough[0]) + 1) if len(enough) else n
    seq = config.sequential
    if seq.enabled:
        tb, tc = baseline.tail(warm).head(n - warm), canary.tail(warm).head(n - warm)
        outcome = sequential_errors(seq, 1.0, tb, tc, 1.0 - config.confidence, "")
        if outcome is not None and outcome.crossed_at is not None:
            start = min(start, warm + outcome.crossed_at + 1)
    # The count tests are cumulative too (the tail's bounds come from a fixed first stretch).
    counts = count_tests(config, baseline.tail(warm).head(n - warm), canary.tail(warm).head(n - warm))
    if counts.crossed_at is not None:
        start = min(start, warm + counts.crossed_at + 1)
    return max(start, 1)


def replay(config: CanaryConfig, baseline: Samples, canary: Samples) -> Verdict:
    """Replay a recorded window interval by interval; return the first decisive verdict, else the final one.

    This is what the controller's watch would have decided on this data: ``decided_at`` is the
    interval index of an early decision, None when the whole window was needed.
    """
    n = min(len(baseline), len(canary))
    for k in range(_first_look_that_can_decide(config, baseline, canary), n):
        v = judge(config, baseline.head(k), canary.head(k), final=False)
        if v.decided:
            return v
    return judge(config, baseline.head(n), canary.head(n), final=True)
