"""Inline SVG charts, drawn on the server: canary against baseline for one metric over the bake."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 360, 120, 24
COLOURS = {"canary": "#d9480f", "baseline": "#1c7ed6"}


def _points(values: Sequence[float | None], lo: float, hi: float, count: int) -> list[str]:
    span = (hi - lo) or 1.0
    step = (WIDTH - 2 * PAD) / max(count - 1, 1)
    out = []
    for i, v in enumerate(values):
        if v is None:
            continue
        x = PAD + i * step
        y = HEIGHT - PAD - (v - lo) / span * (HEIGHT - 2 * PAD)
        out.append(f"{x:.1f},{y:.1f}")
    return out


def series_chart(name: str, canary: Sequence[float | None], baseline: Sequence[float | None],
                 *, interval_s: float | None = None) -> str:
    """An SVG line chart of both series (gaps where a value is missing), with its scale and legend."""
    known = [v for v in [*canary, *baseline] if v is not None]
    count = max(len(canary), len(baseline))
    if not known or count == 0:
        return f'<p class="muted">no samples for {escape(name)}</p>'
    lo, hi = min(known), max(known)
    if lo == hi:
        lo, hi = lo - 1.0, hi + 1.0
    lines = []
    for label, values in (("baseline", baseline), ("canary", canary)):
        pts = _points(values, lo, hi, count)
        if len(pts) == 1:
            x, y = pts[0].split(",")
            lines.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{COLOURS[label]}"/>')
        elif pts:
            lines.append(f'<polyline fill="none" stroke="{COLOURS[label]}" stroke-width="2" '
                         f'points="{" ".join(pts)}"><title>{label}</title></polyline>')
    span = f"{count} intervals" + (f" of {interval_s:g}s" if interval_s else "")
    return (f'<svg class="chart" role="img" aria-label="{escape(name)}: canary against baseline" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" data-metric="{escape(name)}">'
            f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" fill="#fafafa" '
            f'stroke="#ddd"/>'
            f'<text x="2" y="{PAD - 6}" font-size="10">{hi:.4g}</text>'
            f'<text x="2" y="{HEIGHT - 6}" font-size="10">{lo:.4g}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" font-size="10" text-anchor="end">{span}</text>'
            f'<text x="{PAD + 4}" y="{PAD + 12}" font-size="10" fill="{COLOURS["canary"]}">canary</text>'
            f'<text x="{PAD + 50}" y="{PAD + 12}" font-size="10" fill="{COLOURS["baseline"]}">baseline</text>'
            + "".join(lines) + "</svg>")
