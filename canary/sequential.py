"""Anytime-valid sequential tests on error counts (e-processes), pure numpy.

Model. Within one interval, errors on each side are (close to) Poisson in the number of
requests served, so *conditional on the total number of errors* e_t in the interval, the
canary's share is Binomial(e_t, q_t) with

    q_t(theta) = theta * rho_t / (theta * rho_t + 1 - rho_t),

where rho_t is the canary's share of requests in that interval and theta the ratio of the
canary's error rate to the baseline's. Conditioning removes the unknown baseline rate (a
nuisance) exactly, and rho_t lets traffic shares differ from interval to interval.

Fail test. H0: theta <= theta0. For each alternative theta1 > theta0 the likelihood ratio
prod_t (q1/q0)^c_t ((1-q1)/(1-q0))^(b_t) has expectation <= 1 under every theta <= theta0
(its one-interval expectation is increasing in q and equals 1 at q0), so it is a test
supermartingale; a weighted mixture over a grid of theta1 is one too. By Ville's inequality
P(sup_t E_t >= 1/alpha) <= alpha: the watch may look after every interval, forever, and the
chance of ever failing a canary that is not worse than allowed stays below alpha. (With
Binomial rather than Poisson request outcomes the exact conditional law is hypergeometric,
which is smaller in convex order (Hoeffding 1963), so the bound still holds at theta0 = 1.)
The baseline-has-zero-errors case needs no special handling: every canary error multiplies
the large-theta components by about 1/q0.

Pass tests (for an early pass): the mirror image, H0: theta >= theta_hi against smaller
theta, and a one-sample test H0: p_canary >= p_tol for the canary's absolute error rate,
which is what can be shown when neither side has errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Alternatives as multiples of theta0 and their prior weights. Most weight sits on large
# ratios because a release that breaks a route multiplies the error rate many times over,
# and every unit of weight there is paid back as speed; the smaller ratios keep power for
# moderate regressions on services that already have a background error rate.
FAIL_MULTIPLIERS = (1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)
FAIL_WEIGHTS = (0.05, 0.05, 0.1, 0.1, 0.2, 0.25, 0.25)
# Alternatives for the pass test, as fractions of the allowed ratio (or allowed rate).
PASS_FRACTIONS = (0.7, 0.5, 0.25, 0.0)
PASS_WEIGHTS = (0.25, 0.25, 0.25, 0.25)


@dataclass(frozen=True)
class ErrorCounts:
    """Per-interval error and request counts of both sides, as integer arrays."""

    canary_errors: np.ndarray
    canary_requests: np.ndarray
    baseline_errors: np.ndarray
    baseline_requests: np.ndarray

    @classmethod
    def from_values(cls, ce: list[float], cr: list[float], be: list[float], br: list[float]) -> ErrorCounts:
        """Build from per-interval values; missing values count as an interval without data.

        Counts from Prometheus' increase() are extrapolated and fractional; they are rounded,
        because the likelihood ratios are only supermartingales for whole counts.
        """
        def clean(v: list[float]) -> np.ndarray:
            a = np.asarray(v, dtype=float)
            return np.rint(np.where(np.isfinite(a) & (a > 0), a, 0.0))

        n = min(len(ce), len(cr), len(be), len(br))
        arrays = [clean(x[:n]) for x in (ce, cr, be, br)]
        missing = np.zeros(n, dtype=bool)
        for x in (ce, cr, be, br):
            missing |= ~np.isfinite(np.asarray(x[:n], dtype=float))
        # An interval where any of the four values is missing carries no evidence either way.
        arrays = [np.where(missing, 0.0, a) for a in arrays]
        # More errors than requests is a scrape artefact; cap so the model stays meaningful.
        arrays[0] = np.minimum(arrays[0], arrays[1])
        arrays[2] = np.minimum(arrays[2], arrays[3])
        return cls(*arrays)

    def totals(self) -> tuple[int, int, int, int]:
        """Return (canary errors, canary requests, baseline errors, baseline requests)."""
        return (int(self.canary_errors.sum()), int(self.canary_requests.sum()),
                int(self.baseline_errors.sum()), int(self.baseline_requests.sum()))


def _log_weighted_sum(logs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return log(sum_j w_j exp(logs[j])) column-wise, without overflow."""
    top = logs.max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.asarray(top + np.log((weights[:, None] * np.exp(logs - top[None, :])).sum(axis=0)), dtype=float)


def _share(theta: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Return q = theta*rho / (theta*rho + 1 - rho), the canary's expected share of errors."""
    num = theta[:, None] * rho[None, :]
    return np.asarray(num / (num + (1.0 - rho)[None, :]), dtype=float)


def _log_mixture_path(counts: ErrorCounts, theta_null: float, thetas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return log E_t after each interval for the mixture of likelihood ratios theta1 : theta_null."""
    c, b = counts.canary_errors, counts.baseline_errors
    nc, nb = counts.canary_requests, counts.baseline_requests
    both = (nc > 0) & (nb > 0)
    # An interval where one side served nothing says nothing about the ratio of rates.
    rho = np.where(both, nc / np.maximum(nc + nb, 1.0), 0.5)
    c = np.where(both, c, 0.0)
    b = np.where(both, b, 0.0)
    q0 = _share(np.array([theta_null]), rho)[0]
    q1 = _share(thetas, rho)
    with np.errstate(divide="ignore"):
        step = c[None, :] * (np.log(q1) - np.log(q0)[None, :]) + b[None, :] * (
            np.log1p(-q1) - np.log1p(-q0)[None, :]
        )
    step = np.where(np.isnan(step), 0.0, step)
    paths = np.cumsum(step, axis=1)
    return _log_weighted_sum(paths, weights)


def fail_evalues(counts: ErrorCounts, allowed_increase: float) -> np.ndarray:
    """Return the e-process against H0 'canary error rate <= allowed_increase x baseline', per interval."""
    if len(counts.canary_errors) == 0:
        return np.zeros(0)
    thetas = allowed_increase * np.asarray(FAIL_MULTIPLIERS)
    log_e = _log_mixture_path(counts, allowed_increase, thetas, np.asarray(FAIL_WEIGHTS))
    return np.asarray(np.exp(log_e), dtype=float)


def ratio_pass_evalues(counts: ErrorCounts, allowed_increase: float) -> np.ndarray:
    """Return the e-process against H0 'canary error rate >= allowed_increase x baseline', per interval."""
    if len(counts.canary_errors) == 0:
        return np.zeros(0)
    # theta1 = 0 would make every canary error fatal to that component; keep it tiny instead.
    thetas = allowed_increase * np.maximum(np.asarray(PASS_FRACTIONS), 1e-3)
    log_e = _log_mixture_path(counts, allowed_increase, thetas, np.asarray(PASS_WEIGHTS))
    return np.asarray(np.exp(log_e), dtype=float)


def absolute_pass_evalues(counts: ErrorCounts, tolerated_rate: float) -> np.ndarray:
    """Return the e-process against H0 'canary error rate >= tolerated_rate' (one sample, per request)."""
    c = np.cumsum(counts.canary_errors)
    n = np.cumsum(counts.canary_requests)
    if len(c) == 0 or tolerated_rate <= 0:
        return np.zeros(len(c))
    p0 = min(tolerated_rate, 1.0 - 1e-12)
    logs = []
    for frac in PASS_FRACTIONS:
        p1 = p0 * frac
        with np.errstate(divide="ignore", invalid="ignore"):
            err_term = np.where(c > 0, c * (math.log(p1) - math.log(p0)) if p1 > 0 else -np.inf, 0.0)
        logs.append(err_term + (n - c) * (math.log1p(-p1) - math.log1p(-p0)))
    return np.asarray(np.exp(_log_weighted_sum(np.vstack(logs), np.asarray(PASS_WEIGHTS))), dtype=float)


def first_crossing(evalues: np.ndarray, threshold: float) -> int | None:
    """Return the index of the first interval whose e-value reaches threshold, or None."""
    hits = np.nonzero(evalues >= threshold)[0]
    return int(hits[0]) if len(hits) else None
