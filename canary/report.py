"""Verdict -> human explanation (text) or JSON for the dashboard and the command line."""

from __future__ import annotations

from typing import Any

from .verdict import Verdict


def to_json(verdict: Verdict) -> dict[str, Any]:
    """Return the verdict as a JSON-ready mapping (verdict, score, decided_at, reason, metrics...)."""
    return verdict.to_dict()


def explain_text(verdict: Verdict) -> str:
    """Return a compact explanation: the overall line, then one line per metric."""
    score = "n/a" if verdict.score is None else f"{verdict.score:.1f}"
    when = "" if verdict.decided_at is None else f", decided at interval {verdict.decided_at}"
    lines = [f"{verdict.result.value.upper()} (score {score}, {verdict.intervals} intervals{when}): {verdict.reason}"]
    if verdict.groups:
        parts = [f"{g.name} {'no data' if g.score is None else f'{g.score:.0f}'} (weight {g.weight:g})"
                 for g in verdict.groups]
        lines.append("  groups: " + ", ".join(parts))
    if verdict.thin_routes:
        lines.append("  too little traffic to judge on their own: " + ", ".join(verdict.thin_routes))
    width = max((len(m.name) for m in verdict.metrics), default=0)
    for m in verdict.metrics:
        mark = "!" if m.failed else " "
        crit = " critical" if m.critical and m.counted else ""
        crit += " CRITICAL FAILURE" if m.critical_failure and m.counted else ""
        e = m.explanation
        sizes = f"n={e.n_baseline}/{e.n_canary}"
        cls = m.classification.value
        lines.append(f"{mark} {m.name:<{width}}  {cls:<6} {sizes:<12} [{e.rule.value}{crit}] {e.note}")
    return "\n".join(lines)
