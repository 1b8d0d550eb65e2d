"""Line plots as inline SVG text, for the HTML report: no plotting library, no JavaScript.

One function, ``line_plot_svg``: several named series of (x, y) points on shared axes with "nice" tick
values, an optional log-scale y axis and a legend. Non-finite points are dropped (a diverged loss
leaves a gap, not a broken plot), and long series are averaged into at most ``max_points`` bins so a
400-epoch run stays a few kilobytes per curve.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["COLOURS", "nice_ticks", "line_plot_svg"]

# The "tab10" cycle: distinguishable, and the report's tests look for the first one on screen.
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"nice_ticks needs finite bounds, got [{lo}, {hi}].")
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, value = [], first
    while value <= hi + 1e-9 * step:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt(v: float) -> str:
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.0e}"
    return f"{v:.6g}"


def _binned(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of consecutive runs of points, at most ``max_points`` of them (x sorted ascending)."""
    if len(x) <= max_points:
        return x, y
    edges = np.linspace(0, len(x), max_points + 1).astype(int)
    return (np.array([x[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)]),
            np.array([y[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)]))


def line_plot_svg(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "",
                  xlabel: str = "", ylabel: str = "", width: int = 640, height: int = 300,
                  log_y: bool = False, max_points: int = 1000) -> str:
    """An ``<svg>`` element plotting each named series {name: (xs, ys)} as a polyline.

    log_y: a base-10 y axis (points <= 0 are dropped). Returns SVG markup to embed in HTML as is.

    Example::

        svg = line_plot_svg({"loss_D": ([50, 100, 150], [0.60, 0.40, 0.31])}, xlabel="step")
        Path("plot.svg").write_text(svg)
    """
    left, right, top, bottom = 64, 150, 28 if title else 12, 44
    pw, ph = width - left - right, height - top - bottom  # the plotting area, in pixels
    clean: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (xs, ys) in series.items():
        x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"series {name!r}: {len(x)} x values but {len(y)} y values.")
        keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)
        x, y = x[keep], y[keep]
        order = np.argsort(x, kind="stable")
        x, y = _binned(x[order], y[order], max_points)
        clean[name] = (x, np.log10(y) if log_y else y)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title or ylabel)}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    if title:
        out.append(f'<text x="{left + pw / 2}" y="16" text-anchor="middle" font-size="13">'
                   f'{html.escape(title)}</text>')
    points = [v for x, y in clean.values() for v in zip(x, y, strict=True)]
    if not points:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">'
                   'no finite values to plot</text></svg>')
        return "\n".join(out)
    xs_all = np.array([p[0] for p in points])
    ys_all = np.array([p[1] for p in points])
    x0, x1 = float(xs_all.min()), float(xs_all.max())
    y0, y1 = float(ys_all.min()), float(ys_all.max())
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.04 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return top + (1 - (v - y0) / (y1 - y0)) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>')
    for t in nice_ticks(x0, x1):
        out.append(f'<line x1="{px(t):.1f}" y1="{top + ph}" x2="{px(t):.1f}" y2="{top + ph + 4}" '
                   f'stroke="#555"/><text x="{px(t):.1f}" y="{top + ph + 16}" text-anchor="middle">'
                   f'{_fmt(t)}</text>')
    y_ticks = [float(t) for t in range(math.ceil(y0), math.floor(y1) + 1)] if log_y else nice_ticks(y0, y1)
    if log_y and len(y_ticks) < 2:  # less than a decade: plain ticks on the log values
        y_ticks = nice_ticks(y0, y1)
    for t in y_ticks:
        label = _fmt(10 ** t) if log_y else _fmt(t)
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + pw}" y2="{py(t):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{label}</text>')
    if xlabel:
        out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">'
                   f'{html.escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {top + ph / 2})">{html.escape(ylabel)}'
                   f'{" (log)" if log_y else ""}</text>')
    for i, (name, (x, y)) in enumerate(clean.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(x) == 1:
            out.append(f'<circle cx="{px(x[0]):.1f}" cy="{py(y[0]):.1f}" r="3" fill="{colour}"/>')
        elif len(x):
            pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, y, strict=True))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        ly = top + 8 + 16 * i
        out.append(f'<line x1="{left + pw + 10}" y1="{ly}" x2="{left + pw + 28}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="3"/><text x="{left + pw + 32}" y="{ly + 4}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
