"""Scatter plots of 2-D codes coloured by label, drawn with Pillow (no matplotlib), and the figures
``advrep eval`` writes for a trained method.

The AAE paper's figures 2, 4 and 11 are such plots: the hidden codes of held-out images, one colour
per digit, so a reader sees whether the aggregated posterior filled the prior and how the classes
lie in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .images import _write_png, save_grid

__all__ = ["PALETTE", "scatter_image", "save_scatter", "method_figures"]

# Ten well-separated colours (the "tab10" cycle), then a few more for up to 20 labels.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
           (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
           (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229)]


def scatter_image(points, labels=None, *, size: int = 640, margin: int = 24, dot: int = 2,
                  clip_percentile: float = 0.5, seed: int = 0) -> np.ndarray:
    """points [N, 2] (and labels [N] ints, or None) -> an RGB uint8 picture [size, size + legend, 3].

    The view spans the [p, 100 - p] percentiles of each axis (p = clip_percentile), so a few far
    outliers do not squeeze the rest into a corner; points are drawn in a seeded random order so that
    no class is always painted on top."""
    pts = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    pts = pts.astype(np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must be [N, 2] with N >= 1, got shape {pts.shape}; project codes to 2-D "
                         "first")
    if not np.isfinite(pts).all():
        raise ValueError("points contain NaN or inf")
    if labels is None:
        lab = np.zeros(len(pts), dtype=np.int64)
    else:
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        lab = lab.astype(np.int64).reshape(-1)
        if len(lab) != len(pts):
            raise ValueError(f"labels must have {len(pts)} entries to match points, got {len(lab)}")
    lo = np.percentile(pts, clip_percentile, axis=0)
    hi = np.percentile(pts, 100 - clip_percentile, axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    lo, span = lo - 0.05 * span, span * 1.1
    inner = size - 2 * margin
    px = margin + (pts[:, 0] - lo[0]) / span[0] * inner
    py = margin + (1 - (pts[:, 1] - lo[1]) / span[1]) * inner  # y grows upwards, as on paper
    classes = sorted(set(lab.tolist()))
    legend = 90 if labels is not None else 0
    img = Image.new("RGB", (size + legend, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle([margin, margin, size - margin, size - margin], outline=(200, 200, 200))
    order = np.random.default_rng(seed).permutation(len(pts))
    for i in order:
        x, y = px[i], py[i]
        if margin <= x <= size - margin and margin <= y <= size - margin:
            colour = PALETTE[classes.index(lab[i]) % len(PALETTE)]
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=colour)
    if labels is not None:
        for j, c in enumerate(classes):
            top = margin + 18 * j
            draw.rectangle([size + 8, top, size + 20, top + 12], fill=PALETTE[j % len(PALETTE)])
            draw.text((size + 26, top), str(c), fill=(0, 0, 0))
    return np.asarray(img)


def save_scatter(points, labels, path, **kwargs) -> Path:
    """Write ``scatter_image(points, labels, ...)`` to ``path`` as a PNG; returns the Path."""
    return _write_png(scatter_image(points, labels, **kwargs), path)


@torch.no_grad()
def method_figures(method, data, out_dir, *, n_points: int = 5000, n_samples: int = 100,
                   seed: int = 0) -> list[Path]:
    """The PNGs ``advrep eval`` writes: samples G(z), the 2-D code scatter of ``data`` coloured by label
    (when the code is 2-D), and whatever the method adds in ``Method.figures``. Nets in eval mode."""
    out_dir = Path(out_dir)
    method.nets.eval()
    device = next(method.nets.parameters()).device
    written: list[Path] = []
    rng = torch.Generator(device=device).manual_seed(seed)
    if method.has_generator:
        x = method.generate(method.sample_prior(n_samples, rng))
        written.append(save_grid(x.cpu(), out_dir / "samples.png", nrow=10))
    if method.has_encoder:
        x = data.x[:n_points].to(device)
        z = torch.cat([method.encode(x[i:i + 1000]).cpu() for i in range(0, len(x), 1000)])
        if z.shape[1] == 2:
            y = data.y[:n_points] if data.y is not None else None
            written.append(save_scatter(z, y, out_dir / "latent_scatter.png"))
    written.extend(method.figures(data, out_dir))
    return written
