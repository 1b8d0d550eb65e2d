"""Image grids for samples and reconstructions, written as PNG with Pillow.

Images are floats in [0, 1] (values outside are clamped, NaN becomes 0), as torch tensors or numpy
arrays, shaped [N, C, H, W] with C in {1, 3}, [N, H, W] (grayscale), or flat [N, P] when P is a square
(grayscale side x side) or three times a square (RGB) -- the flat form is what MLP decoders emit.
Files are written atomically (temporary file + os.replace), so a crashed or concurrent run never leaves
a half-written PNG where a viewer or a later step expects a whole one.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["make_grid", "save_grid", "pair_grid"]


def _as_nchw(images, name: str = "images") -> np.ndarray:
    """float32 [N, C, H, W] with C in {1, 3}, from any of the accepted layouts."""
    if isinstance(images, torch.Tensor):
        images = images.detach().to("cpu", torch.float32).numpy()
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 2:  # [N, P]: a square image, or three square channels
        side = math.isqrt(x.shape[1])
        side3 = math.isqrt(x.shape[1] // 3)
        if side * side == x.shape[1]:
            x = x.reshape(x.shape[0], 1, side, side)
        elif x.shape[1] % 3 == 0 and 3 * side3 * side3 == x.shape[1]:
            x = x.reshape(x.shape[0], 3, side3, side3)
        else:
            raise ValueError(f"flat {name} of shape {x.shape} are not square images (P = s^2 or 3 s^2)")
    elif x.ndim == 3:  # [N, H, W]
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be [N, C, H, W] with C in (1, 3), [N, H, W] or [N, P]; got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return x


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 by rounding; NaN -> 0, out-of-range values clamped."""
    return np.rint(np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)


def make_grid(images, *, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile images into one uint8 picture: [H', W'] for grayscale, [H', W', 3] for RGB.

    nrow: images per row (as in torchvision), default ceil(sqrt(N)); the last row may be partly empty
    (filled with pad_value).  padding: pixels between images and around the border.
    Size: H' = rows * H + (rows + 1) * padding, W' = cols * W + (cols + 1) * padding,
    with cols = min(nrow, N) and rows = ceil(N / cols).
    """
    x = _as_nchw(images)  # [N, C, H, W]
    n, c, h, w = x.shape
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if nrow < 1 or padding < 0:
        raise ValueError(f"need nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    fill = _to_uint8(np.float32(pad_value))
    canvas = np.full((rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding, c), fill, np.uint8)
    tiles = _to_uint8(x).transpose(0, 2, 3, 1)  # [N, H, W, C]
    for i in range(n):
        top = padding + (i // cols) * (h + padding)
        left = padding + (i % cols) * (w + padding)
        canvas[top : top + h, left : left + w] = tiles[i]
    return canvas[:, :, 0] if c == 1 else canvas


def _write_png(array: np.ndarray, path) -> Path:
    """Write a uint8 [H, W] / [H, W, 3] array to ``path`` as PNG, atomically; returns the Path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives in the destination folder so os.replace is a same-filesystem rename; a
    # unique name opened with "x" (rather than tempfile.mkstemp, whose files are private, mode 0600)
    # keeps the usual umask-based permissions on the final PNG.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            Image.fromarray(np.ascontiguousarray(array)).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_grid(images, path, *, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> Path:
    """Write ``make_grid(images, ...)`` to ``path`` as a PNG (parent folders created); returns the Path.

    Example: ``save_grid(model.generate(model.sample_prior(64)), "samples.png", nrow=8)``.
    """
    return _write_png(make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value), path)


def pair_grid(x, x_hat, path, *, ncol: int = 10, padding: int = 2, pad_value: float = 1.0) -> Path:
    """Originals beside their reconstructions: each row reads x_0, G(E(x_0)), x_1, G(E(x_1)), ...

    ``ncol`` is the number of (x, x_hat) pairs per row, so rows are 2 * ncol images wide (fewer if
    there are fewer pairs).  x and x_hat must have the same shape; returns the Path written.
    """
    a, b = _as_nchw(x, "x"), _as_nchw(x_hat, "x_hat")
    if a.shape != b.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {a.shape} and {b.shape}")
    if ncol < 1:
        raise ValueError(f"ncol must be >= 1, got {ncol}")
    both = np.stack([a, b], axis=1).reshape(-1, *a.shape[1:])  # [2N, C, H, W]: x_0, x_hat_0, x_1, ...
    return save_grid(both, path, nrow=2 * min(ncol, a.shape[0]), padding=padding, pad_value=pad_value)
