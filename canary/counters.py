"""Pure counter and histogram arithmetic, the way Prometheus does it (rate() resets, histogram_quantile)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def counter_increase(previous: float | None, current: float) -> float:
    """Return how much a counter grew since the previous reading.

    A value lower than the previous one means the process restarted and the counter began
    again at zero (Prometheus' rate() rule), so the whole new value is the increase.
    Without a previous reading there is no interval yet: NaN.
    """
    if previous is None or math.isnan(previous) or math.isnan(current):
        return math.nan
    return current - previous if current >= previous else current


def is_server_error(status: str) -> bool:
    """True for a server error (status 5xx); 499 (client went away) is not the server's fault."""
    return status.isdigit() and int(status) >= 500


def is_unexpected(status: str) -> bool:
    """True for an answer that is neither 2xx nor 3xx; 499 (the client went away) is nobody's answer."""
    return status.isdigit() and not 200 <= int(status) < 400 and int(status) != 499


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Return the q-quantile of a histogram given as (upper bound, cumulative count) pairs.

    Same estimate as PromQL's histogram_quantile: linear interpolation inside the bucket
    holding the rank; a rank in the +Inf bucket returns the largest finite bound; no
    observations give NaN.
    """
    ordered = sorted((float(le), float(c)) for le, c in buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    # Buckets scraped at slightly different moments can be non-monotonic; Prometheus
    # forces monotonicity the same way.
    fixed: list[tuple[float, float]] = []
    running = 0.0
    for le, c in ordered:
        running = max(running, c)
        fixed.append((le, running))
    total = fixed[-1][1]
    if total <= 0 or math.isnan(total):
        return math.nan
    rank = q * total
    index = next(i for i, (_, c) in enumerate(fixed) if c >= rank)
    if index == len(fixed) - 1:
        return fixed[-2][0]
    upper, count = fixed[index]
    if index == 0:
        if upper <= 0:
            return upper
        lower, below = 0.0, 0.0
    else:
        lower, below = fixed[index - 1]
    if count == below:
        return upper
    return lower + (upper - lower) * (rank - below) / (count - below)
