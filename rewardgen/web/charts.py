"""Small inline SVG charts drawn on the server (no JavaScript, no chart library)."""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:.3g}k" if abs(v) < 1e6 else f"{v:.2g}"
    if abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _finite(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points
            if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]


def line_chart(series: dict[str, list[tuple[float, float]]], *, width: int = 360, height: int = 180,
               title: str = "", x_label: str = "", dots: dict[str, list[tuple[float, float]]] | None = None,
               empty: str = "no data") -> Markup:
    """Polylines for ``series`` (name -> [(x, y)]) and scattered points for ``dots``, with a legend."""
    lines = {k: _finite(v) for k, v in series.items()}
    scatter = {k: _finite(v) for k, v in (dots or {}).items()}
    every = [p for v in list(lines.values()) + list(scatter.values()) for p in v]
    left, right, top, bottom = 46, 8, 18 if title else 8, 30
    legend_rows = len(lines) + len(scatter)
    legend_h = 14 * legend_rows
    h_total = height + legend_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{h_total}" '
             f'viewBox="0 0 {width} {h_total}" role="img" aria-label="{escape(title or "chart")}">']
    if title:
        parts.append(f'<text x="{left}" y="12" font-size="11" font-weight="bold">{escape(title)}</text>')
    if not every:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" font-size="11" text-anchor="middle" '
                     f'fill="#888">{escape(empty)}</text></svg>')
        return Markup("".join(parts))
    xs, ys = [p[0] for p in every], [p[1] for p in every]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>')
    for y in (y0, (y0 + y1) / 2, y1):
        parts.append(f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" font-size="10" text-anchor="end">{_fmt(y)}</text>')
    for x, anchor in ((x0, "start"), (x1, "end")):
        parts.append(f'<text x="{sx(x):.1f}" y="{top + ph + 12}" font-size="10" text-anchor="{anchor}">{_fmt(x)}</text>')
    if x_label:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph + 24}" font-size="10" text-anchor="middle" '
                     f'fill="#555">{escape(x_label)}</text>')
    if y0 < 0 < y1:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#ddd" '
                     f'stroke-dasharray="3,3"/>')
    names = list(lines) + list(scatter)
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        if name in lines:
            pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in lines[name])
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{pts}">'
                         f'<title>{escape(name)}</title></polyline>')
        else:
            for x, y in scatter[name]:
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}" fill-opacity="0.7">'
                             f'<title>{escape(name)}: {_fmt(y)} (x={_fmt(x)})</title></circle>')
        ly = height + 14 * i + 10
        parts.append(f'<rect x="{left}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
                     f'<text x="{left + 14}" y="{ly}" font-size="10">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def component_chart(training: dict, *, width: int = 320, height: int = 160) -> Markup:
    """Mean of each reward component (and the total) through training, from metrics.json's ``training``."""
    series: dict[str, list[tuple[float, float]]] = {}
    comps = training.get("components") if isinstance(training, dict) else None
    if isinstance(comps, dict):
        for name, curve in list(comps.items())[:8]:
            if isinstance(curve, list):
                series[str(name)] = [(p.get("step"), p.get("mean")) for p in curve if isinstance(p, dict)]
    total = training.get("total_reward") if isinstance(training, dict) else None
    if isinstance(total, list):
        series["total"] = [(p.get("step"), p.get("mean")) for p in total if isinstance(p, dict)]
    return line_chart(series, width=width, height=height, title="reward components (mean per step)",
                      x_label="training env-steps", empty="no training statistics")


def fitness_chart(generations: list[dict], *, width: int = 560, height: int = 220) -> Markup:
    """Trusted fitness of every candidate (dots) and the best so far (line), per generation."""
    dots, best, so_far = [], [], None
    for gen in sorted(generations, key=lambda g: g.get("generation", 0)):
        g = gen.get("generation", 0)
        for c in gen.get("candidates", []):
            if c.get("fitness") is not None:
                dots.append((g, c["fitness"]))
        b = (gen.get("best") or {}).get("fitness")
        if b is not None:
            so_far = b if so_far is None else max(so_far, b)
        if so_far is not None:
            best.append((g, so_far))
    return line_chart({"best so far": best}, dots={"candidates": dots}, width=width, height=height,
                      title="trusted fitness per generation", x_label="generation",
                      empty="no finished generation yet")
