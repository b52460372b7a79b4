"""Small inline SVG charts built from numbers (no JavaScript, no chart library), for the web UI and the report.

One drawing for both: the web UI's pages and ``report.html`` show the same fitness-per-generation and
reward-component charts, so they come from the same functions here. Axes get "nice" ticks (1, 2, 2.5, 5 x 10^k;
whole numbers only on an integer axis such as generations, each one labelled when there are few), an axis label
with its unit, and optional horizontal reference lines (the task's success threshold). Every label goes through
``rewardgen.safetext.html``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from markupsafe import Markup

from rewardgen.safetext import html as escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


def _fmt(v: float) -> str:
    """Short tick label: 0, 0.05, 12.5, 75k, 1.25M."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a < 0.01:
        return f"{v:.2g}"
    return f"{v:.4g}" if a >= 1000 else f"{v:.3g}"


def nice_ticks(lo: float, hi: float, most: int = 6, integer: bool = False) -> list[float]:
    """At most ``most`` round tick values covering [lo, hi] (whole numbers when ``integer``)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        return []
    if hi == lo:
        return [lo]
    raw = (hi - lo) / max(1, most - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks, k = [], 0
    while first + k * step <= hi + 1e-9 * step:
        ticks.append(round(first + k * step, 10))
        k += 1
    return ticks


#: a chart's points as run files hold them: ``_finite`` keeps those whose x and y are real numbers
Points = list[tuple[Any, Any]]


def _number(v: object) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _finite(points: Points) -> list[tuple[float, float]]:
    """The points whose x and y are finite numbers (run files may hold anything else: it is skipped)."""
    return [(float(x), float(y)) for x, y in points if _number(x) and _number(y)]


class _Scale:
    """y -> pixel for the right axis over [lo, hi] (padded like the left one)."""

    def __init__(self, lo: float, hi: float, top: float, ph: float):
        if hi == lo:
            pad = abs(lo) * 0.1 or 1.0
            lo, hi = lo - pad, hi + pad
        pad = (hi - lo) * 0.05
        self.lo, self.hi, self.top, self.ph = lo - pad, hi + pad, top, ph

    def __call__(self, y: float) -> float:
        return self.top + (1 - (y - self.lo) / (self.hi - self.lo)) * self.ph


def _right_axis(seconds: dict[str, Points], top: float, ph: float) -> _Scale:
    ys = [y for v in seconds.values() for _, y in v] or [0.0]
    return _Scale(min(ys), max(ys), top, ph)


def line_chart(series: dict[str, Points], *, width: int = 360, height: int = 180,
               title: str = "", x_label: str = "", y_label: str = "",
               dots: dict[str, Points] | None = None,
               hlines: dict[str, float] | None = None, integer_x: bool = False, empty: str = "no data",
               styles: dict[str, dict[str, Any]] | None = None, right: dict[str, Points] | None = None,
               right_label: str = "") -> Markup:
    """Polylines for ``series`` (name -> [(x, y)]), scattered points for ``dots`` and dashed horizontal
    ``hlines`` (label -> y), with ticks on both axes, axis labels and a legend.

    ``styles`` (name -> {"color", "dash", "r"}) fixes a series' colour, dash pattern or dot radius;
    ``right`` holds polylines on a second y axis (ticks and ``right_label`` on the right), for two
    measures of different scale against the same x.
    """
    styles = styles or {}
    lines = {k: _finite(v) for k, v in series.items()}
    scatter = {k: _finite(v) for k, v in (dots or {}).items()}
    seconds = {k: _finite(v) for k, v in (right or {}).items()}
    seconds = {k: v for k, v in seconds.items() if v}
    refs = {k: float(v) for k, v in (hlines or {}).items() if _number(v)}
    every = [p for v in list(lines.values()) + list(scatter.values()) for p in v]
    if not every and seconds:  # only right-axis data: draw it, with an empty left axis
        every = [(x, 0.0) for v in seconds.values() for x, _ in v]
    left, right_m, top, bottom = (60 if y_label else 46), (56 if seconds else 10), 18 if title else 8, 32
    legend_rows = len(lines) + len(scatter) + len(seconds) + len(refs)
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
    xs, ys = [p[0] for p in every] + [p[0] for v in seconds.values() for p in v], [p[1] for p in every] + list(refs.values())
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    pad_y = (y1 - y0) * 0.05
    y0, y1 = y0 - pad_y, y1 + pad_y
    if integer_x:  # half a step of margin so the first and last generation's dots are not on the frame
        x0, x1 = x0 - 0.3, x1 + 0.3
    pw, ph = width - left - right_m, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>')
    for y in nice_ticks(y0, y1, most=max(4, ph // 26)):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{sy(y) + 3.5:.1f}" font-size="10" text-anchor="end">{_fmt(y)}</text>')
    # about one label per 55 px, so that labels such as "1.25M" never run into each other
    for x in nice_ticks(x0, x1, most=max(2, pw // 55), integer=integer_x):
        parts.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top + ph}" y2="{top + ph + 3}" stroke="#999"/>'
                     f'<text x="{sx(x):.1f}" y="{top + ph + 13}" font-size="10" text-anchor="middle">{_fmt(x)}</text>')
    if x_label:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph + 26}" font-size="10" text-anchor="middle" '
                     f'fill="#555">{escape(x_label)}</text>')
    if y_label:
        cy = top + ph / 2
        parts.append(f'<text x="12" y="{cy:.1f}" font-size="10" text-anchor="middle" fill="#555" '
                     f'transform="rotate(-90 12 {cy:.1f})">{escape(y_label)}</text>')
    if y0 < 0 < y1:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#ccc" '
                     f'stroke-dasharray="3,3"/>')
    ry = _right_axis(seconds, top, ph)
    if seconds:
        for y in nice_ticks(ry.lo, ry.hi, most=max(5, ph // 22)):  # one more: a lone tick says little
            parts.append(f'<text x="{left + pw + 4}" y="{ry(y) + 3.5:.1f}" font-size="10">{_fmt(y)}</text>')
        if right_label:
            cx, cy = width - 8, top + ph / 2
            parts.append(f'<text x="{cx}" y="{cy:.1f}" font-size="10" text-anchor="middle" fill="#555" '
                         f'transform="rotate(90 {cx} {cy:.1f})">{escape(right_label)}</text>')
    names = list(lines) + list(seconds) + list(scatter)
    row = 0
    for i, name in enumerate(names):
        style = styles.get(name, {})
        color = style.get("color", PALETTE[i % len(PALETTE)])
        if name in lines or name in seconds:
            pts_list = lines[name] if name in lines else seconds[name]
            fy = sy if name in lines else ry
            dash = f' stroke-dasharray="{style["dash"]}"' if style.get("dash") else ""
            pts = " ".join(f"{sx(x):.1f},{fy(y):.1f}" for x, y in pts_list)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{pts}">'
                         f'<title>{escape(name)}</title></polyline>')
            if len(pts_list) <= 30:
                parts.extend(f'<circle cx="{sx(x):.1f}" cy="{fy(y):.1f}" r="{style.get("r", 2.2)}" fill="{color}"/>'
                             for x, y in pts_list)
        else:
            r = style.get("r", 3)
            edge = ' stroke="#333" stroke-width="1"' if r > 3 else ""
            for x, y in scatter[name]:
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{r}" fill="{color}" fill-opacity="0.8"'
                             f'{edge}><title>{escape(name)}: {_fmt(y)} (x={_fmt(x)})</title></circle>')
        ly = height + 14 * row + 10
        row += 1
        axis = " (right axis)" if name in seconds else ""
        parts.append(f'<rect x="{left}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
                     f'<text x="{left + 14}" y="{ly}" font-size="10">{escape(name + axis)}</text>')
    for name, y in refs.items():
        parts.append(f'<line class="hline" x1="{left}" x2="{left + pw}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
                     f'stroke="#b2182b" stroke-width="1.2" stroke-dasharray="6,3"><title>{escape(name)}</title></line>')
        ly = height + 14 * row + 10
        row += 1
        parts.append(f'<line x1="{left}" x2="{left + 10}" y1="{ly - 6.5}" y2="{ly - 6.5}" stroke="#b2182b" '
                     f'stroke-dasharray="3,2"/><text x="{left + 14}" y="{ly}" font-size="10">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def component_chart(training: dict, *, width: int = 320, height: int = 160) -> Markup:
    """Mean of each reward component (and the total) through training, from metrics.json's ``training``."""
    series: dict[str, Points] = {}
    comps = training.get("components") if isinstance(training, dict) else None
    if isinstance(comps, dict):
        for name, curve in list(comps.items())[:8]:
            if isinstance(curve, list):
                series[str(name)] = [(p.get("step"), p.get("mean")) for p in curve if isinstance(p, dict)]
    total = training.get("total_reward") if isinstance(training, dict) else None
    if isinstance(total, list):
        series["total"] = [(p.get("step"), p.get("mean")) for p in total if isinstance(p, dict)]
    return line_chart(series, width=width, height=height, title="reward components (mean per step)",
                      x_label="training env-steps", y_label="reward per step", empty="no training statistics")


def training_chart(training: dict, fitness: float | None = None, *, width: int = 420,
                   height: int = 160) -> Markup:
    """Each finished training episode's return (its own reward, left axis) against the task's fitness
    measured on the same episode (right axis), and the trusted fitness as a star at the end: a reward
    that rises while fitness stays flat is what reward hacking looks like."""
    eps = training.get("episodes") if isinstance(training, dict) else None
    eps = [p for p in eps if isinstance(p, dict)] if isinstance(eps, list) else []
    returns = [(p.get("step"), p.get("return")) for p in eps]
    fits = [(p.get("step"), p.get("fitness")) for p in eps]
    right = {"fitness while training": fits}
    styles: dict[str, dict[str, Any]] = {"episode return (its reward)": {"color": "#d6604d"},
                                         "fitness while training": {"color": "#1b7837"}}
    done = _finite(fits)
    if _number(fitness) and done:
        right["trusted fitness (evaluation)"] = [(done[-1][0], fitness)]
        styles["trusted fitness (evaluation)"] = {"color": "#f0a030", "r": 5}
    return line_chart({"episode return (its reward)": returns}, right=right, styles=styles, width=width,
                      height=height, title="its reward vs fitness through training", x_label="training env-steps",
                      y_label="return", right_label="fitness", empty="no finished training episodes")


def fitness_chart(generations: Sequence[Mapping[str, Any]], *, width: int = 560, height: int = 220,
                  threshold: float | None = None,
                  fitness_label: str = "trusted fitness", median: bool = False,
                  winner: tuple[int, float, str] | None = None) -> Markup:
    """Trusted fitness of every candidate (dots) and the best so far (line), per generation, with the
    task's success threshold as a dashed line. ``fitness_label`` names the measure and its unit;
    ``median`` adds each generation's median, ``winner`` (generation, fitness, "G/C") marks the run's best.

    ``generations`` are run.json's generation summaries (``generation``, ``best``, ``candidates`` with
    ``fitness``), which the web UI reads and the report rebuilds from the candidates' files."""
    dots: Points = []
    best: Points = []
    medians: Points = []
    so_far: float | None = None
    for gen in sorted(generations, key=lambda g: g.get("generation", 0)):
        g = gen.get("generation", 0)
        fits = [c["fitness"] for c in gen.get("candidates", []) if _number(c.get("fitness"))]
        dots.extend((g, f) for f in fits)
        if fits:
            medians.append((g, statistics.median(fits)))
        b = (gen.get("best") or {}).get("fitness")
        if _number(b):
            so_far = b if so_far is None else max(so_far, b)
        if so_far is not None:
            best.append((g, so_far))
    series = {"best so far": best}
    styles: dict[str, dict[str, Any]] = {"best so far": {"color": "#1b7837"}, "candidates": {"color": "#999"},
              "median": {"color": "#2166ac", "dash": "5,3"}}
    if median:
        series["median"] = medians
    points = {"candidates": dots}
    if winner is not None:
        name = f"winner {winner[2]}"
        points[name] = [(winner[0], winner[1])]
        styles[name] = {"color": "#f0a030", "r": 6}
    hlines = {f"success threshold ({_fmt(threshold)})": threshold} if threshold is not None else None
    return line_chart(series, dots=points, width=width, height=height, styles=styles,
                      title="trusted fitness per generation", x_label="generation", y_label=fitness_label,
                      hlines=hlines, integer_x=True, empty="no finished generation yet")
