"""Where the CPU time went, PURE: compare py-spy samples of the canary and the baseline by function.

py-spy's raw output holds one collapsed stack per line (``outer (file.py:12);inner
(file.py:40) 17``: frames from the outermost, then the number of samples). A sample's
leaf frame is the line that was running, so the share of samples whose leaf is a given
function and line is that line's share of the process's CPU time (py-spy records only
threads that are running, not idle ones). Comparing those shares between canary and
baseline, sampled for the same seconds, says which lines take a larger share of the CPU on
the canary. The interval of a difference is Wald's for two proportions, widened by a design
factor because consecutive samples of one busy loop are not independent.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scipy.special import ndtri

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):(?P<line>\d+)\)$")
# Samples 10 ms apart within one slow request are strongly correlated; treating every
# fourth as independent keeps the interval honest for runs of ~40 ms.
DESIGN_EFFECT = 4.0


@dataclass(frozen=True)
class Frame:
    """One code location: function name, file and line."""

    function: str
    file: str
    line: int

    def __str__(self) -> str:
        """Return e.g. ``get_feed (sample_app/routes/feed.py:27)``."""
        return f"{self.function} ({self.file}:{self.line})"


def parse_frame(text: str) -> Frame:
    """Parse ``function (file:line)``; a frame without a location keeps the text as its function."""
    m = _FRAME.match(text.strip())
    if m is None:
        return Frame(text.strip(), "", 0)
    return Frame(m.group("function"), m.group("file"), int(m.group("line")))


def leaf_counts(raw: str) -> Counter[Frame]:
    """Return samples per leaf frame from py-spy's raw (collapsed stacks) output; malformed lines are skipped."""
    out: Counter[Frame] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out[parse_frame(stack.rsplit(";", 1)[-1])] += int(count)
    return out


@dataclass(frozen=True)
class FunctionShift:
    """One line's share of CPU samples on each side, and the difference with its interval."""

    frame: Frame
    canary_share: float
    baseline_share: float
    difference: float
    interval: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (shares as fractions)."""
        return {"function": self.frame.function, "file": self.frame.file, "line": self.frame.line,
                "canary_share": round(self.canary_share, 4), "baseline_share": round(self.baseline_share, 4),
                "difference": round(self.difference, 4),
                "interval": [round(self.interval[0], 4), round(self.interval[1], 4)]}

    def describe(self) -> str:
        """Return e.g. ``get_feed (sample_app/routes/feed.py:27): 41% of CPU samples vs 2% (+39 points [33, 45])``."""
        lo, hi = self.interval
        return (f"{self.frame}: {100 * self.canary_share:.0f}% of CPU samples vs {100 * self.baseline_share:.0f}% "
                f"(+{100 * self.difference:.0f} points [{100 * lo:.0f}, {100 * hi:.0f}])")


@dataclass(frozen=True)
class ProfileDiff:
    """The comparison of two profiles taken over the same seconds."""

    seconds: float
    canary_samples: int
    baseline_samples: int
    grown: list[FunctionShift] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {"seconds": self.seconds, "canary_samples": self.canary_samples,
                "baseline_samples": self.baseline_samples, "grown": [g.to_dict() for g in self.grown],
                "problems": list(self.problems)}


def compare_profiles(baseline: Counter[Frame], canary: Counter[Frame], *, seconds: float, confidence: float = 0.98,
                     top: int = 5) -> ProfileDiff:
    """Return the lines whose share of CPU samples grew most on the canary, shown beyond chance."""
    nb, nc = sum(baseline.values()), sum(canary.values())
    if nb == 0 or nc == 0:
        return ProfileDiff(seconds, nc, nb, [], ["no CPU samples on the " + ("canary" if nc == 0 else "baseline")])
    z = float(ndtri(1.0 - (1.0 - confidence) / 2.0))
    shifts: list[FunctionShift] = []
    for frame in set(baseline) | set(canary):
        pc, pb = canary[frame] / nc, baseline[frame] / nb
        se = math.sqrt(DESIGN_EFFECT * (pc * (1 - pc) / nc + pb * (1 - pb) / nb))
        d = pc - pb
        if d - z * se > 0:
            shifts.append(FunctionShift(frame, pc, pb, d, (d - z * se, d + z * se)))
    shifts.sort(key=lambda s: s.difference, reverse=True)
    return ProfileDiff(seconds, nc, nb, shifts[:top])


def where_the_time_went(diff: ProfileDiff, count: int = 3) -> str:
    """Return a reason suffix naming the lines that grew most, or why the profile cannot say."""
    if diff.grown:
        return "where the time went: " + "; ".join(g.describe() for g in diff.grown[:count])
    if diff.problems:
        return "profile: " + "; ".join(diff.problems)
    return f"profile: no line's share of CPU samples shown to grow ({diff.canary_samples} canary samples)"
