"""Line plots as PNG, drawn with Pillow alone (matplotlib is not a dependency).

Enough for loss curves: named series against step, linear or log y axis, numbered ticks, a legend.
Written atomically through ``advrep.images``' PNG writer, like the image grids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..images import _write_png

__all__ = ["line_plot"]

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75))


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round numbers spanning [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def line_plot(series: Mapping[str, Sequence[float] | torch.Tensor], path, *, x: Sequence[float] | None = None,
              title: str = "", xlabel: str = "step", ylabel: str = "", log_y: bool = False,
              size: tuple[int, int] = (720, 440)) -> Path:
    """Plot each named series (all the same length, against ``x`` or 0, 1, ...) into a PNG at ``path``."""
    ys = {name: [float(v) for v in (s.tolist() if isinstance(s, torch.Tensor) else s)]
          for name, s in series.items()}
    lengths = {k: len(v) for k, v in ys.items()}
    if not ys or min(lengths.values()) == 0:
        raise ValueError(f"line_plot: every series needs at least one value; got lengths {lengths}.")
    n = len(next(iter(ys.values())))
    if any(v != n for v in lengths.values()):
        raise ValueError(f"line_plot: series differ in length: {lengths}.")
    xs = [float(v) for v in x] if x is not None else [float(i) for i in range(n)]
    if len(xs) != n:
        raise ValueError(f"line_plot: x has {len(xs)} values but the series have {n}.")

    def shown(v: float) -> bool:
        return math.isfinite(v) and (v > 0 or not log_y)

    def fy(v: float) -> float:
        return math.log10(v) if log_y else v

    finite = [fy(v) for s in ys.values() for v in s if shown(v)]
    if not finite:
        why = " (log scale needs positive values)." if log_y else "."
        raise ValueError("line_plot: no finite value to plot" + why)
    y_lo, y_hi = min(finite), max(finite)
    if y_hi - y_lo < 1e-12:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    x_lo, x_hi = min(xs), max(xs)
    if x_hi <= x_lo:
        x_hi = x_lo + 1

    w, h = size
    left, right, top, bottom = 78, 20, (34 if title else 16), 48
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()

    def px(xv: float, yv: float) -> tuple[float, float]:
        return (left + (xv - x_lo) / (x_hi - x_lo) * (w - left - right),
                h - bottom - (yv - y_lo) / (y_hi - y_lo) * (h - top - bottom))

    if not log_y:
        y_ticks = [(t, t) for t in _ticks(y_lo, y_hi)]
    elif y_hi - y_lo < 1:  # less than a decade: round values, placed on the log scale
        y_ticks = [(math.log10(v), v) for v in _ticks(10 ** y_lo, 10 ** y_hi) if v > 0]
    else:
        y_ticks = [(float(e), 10.0 ** e) for e in range(math.ceil(y_lo), math.floor(y_hi) + 1)]
    for t, value in y_ticks:
        _, yy = px(x_lo, t)
        draw.line([(left, yy), (w - right, yy)], fill=(232, 232, 232))
        draw.text((4, yy - 6), _label(value), fill=(0, 0, 0), font=font)
    for t in _ticks(x_lo, x_hi):
        xx, _ = px(t, y_lo)
        draw.line([(xx, top), (xx, h - bottom)], fill=(232, 232, 232))
        draw.text((xx - 10, h - bottom + 6), _label(t), fill=(0, 0, 0), font=font)
    draw.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    for i, (name, s) in enumerate(ys.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = [px(xv, fy(v)) for xv, v in zip(xs, s, strict=True) if shown(v)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
        legend_y = top + 10 + 14 * i
        draw.line([(w - right - 170, legend_y), (w - right - 150, legend_y)], fill=colour, width=2)
        draw.text((w - right - 145, legend_y - 6), name, fill=(0, 0, 0), font=font)
    if title:
        draw.text((left, 10), title, fill=(0, 0, 0), font=font)
    draw.text(((left + w - right) // 2 - 3 * len(xlabel), h - 18), xlabel, fill=(0, 0, 0), font=font)
    if ylabel:
        draw.text((4, top - 14), ylabel + (" (log)" if log_y else ""), fill=(0, 0, 0), font=font)
    return _write_png(np.asarray(img), path)
