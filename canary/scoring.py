"""Kayenta's weighted-sum scorer, PURE: per-group scores and the summary score.

A group's score is the share of its counted metrics that pass (a ``mustHaveData`` metric
without data counts as failed, any other metric without data is left out). One difference
from Kayenta, on purpose: Kayenta scores a group in which no metric had data as 100 with its
full weight; here such a group is left out and the other groups' weights are scaled up. The
summary is then never above Kayenta's (with weights w, group scores s <= 100, data groups D
and empty groups E: sum_D w s / sum_D w <= (sum_D w s + 100 sum_E w) / (sum_D w + sum_E w),
because sum_D w s <= 100 sum_D w), so a canary whose latency data went missing cannot pass
on the strength of the data it lacks; the unit tests check the inequality on random cases.
"""

from __future__ import annotations

from .config_model import CanaryConfig
from .verdict import Classification, GroupScore, MetricResult


def group_scores(config: CanaryConfig, rows: list[MetricResult]) -> list[GroupScore]:
    """Return one GroupScore per weighted group, in the configuration's order."""
    out: list[GroupScore] = []
    for group, weight in config.classifier.group_weights.items():
        mine = [r for r in rows if r.group == group and r.counted]
        counted = [r for r in mine if r.classification is not Classification.NODATA]
        passes = sum(r.classification is Classification.PASS for r in counted)
        score = 100.0 * passes / len(counted) if counted else None
        out.append(GroupScore(group, weight, score, passes, len(counted), len(mine) - len(counted)))
    return out


def summary_score(groups: list[GroupScore]) -> float | None:
    """Return the weighted mean of the group scores; groups without data (or weight) are left out."""
    total = weight_sum = 0.0
    for g in groups:
        if g.score is None or g.weight <= 0:
            continue
        total += g.weight * g.score
        weight_sum += g.weight
    return total / weight_sum if weight_sum > 0 else None


def kayenta_summary_score(groups: list[GroupScore]) -> float:
    """Kayenta's WeightedSumScorer on the same groups: a group without data scores 100 (for comparison)."""
    weight_sum = sum(g.weight for g in groups)
    if weight_sum <= 0:
        return 0.0
    return sum(g.weight * (100.0 if g.score is None else g.score) for g in groups) / weight_sum
