"""Images (and labels) from NumPy ``.npy`` / ``.npz`` files.

Conventions
-----------
* ``.npy``: one array of images; no labels.  ``split="train"`` returns all of it; there is no
  test split (asking for one is an error rather than silently evaluating on training data).
* ``.npz`` with ``x_train`` / ``x_test`` (and optional ``y_train`` / ``y_test``): the split picks
  the pair.  ``.npz`` with ``x`` (and optional ``y``): everything is the train split.  An
  ``.npz`` holding exactly one array (e.g. ``np.savez(path, images)``) is read as ``x``.
* Values: uint8 (0-255, scaled by 1/255), bool (0/1), or float already in [0, 1].
* Shapes: ``[N, H, W]`` (C = 1), ``[N, C, H, W]`` with C in {1, 3}, ``[N, H, W, C]`` with C in
  {1, 3} (transposed), or flat ``[N, D]`` read as ``[N, 1, s, s]`` when D = s*s is a perfect
  square, else ``[N, 1, 1, D]``.  When both axis 1 and axis 3 could be channels (e.g.
  ``[N, 3, 32, 3]``), channels-first wins.
* Labels: integers >= 0, shape ``[N]`` (``[N, 1]`` is squeezed).

Files are always opened with ``allow_pickle=False``: a data file must never run code.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .dataset import Dataset
from .errors import DataError

_LOAD_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def images_from_array(arr: np.ndarray, source: str = "array") -> torch.Tensor:
    """Validate and convert an image array to a float32 tensor [N, C, H, W] in [0, 1]."""
    arr = np.asarray(arr)
    kind = arr.dtype.kind
    if kind not in "buf":
        hint = " (if the values are 0-255, convert with x.astype(np.uint8))" if kind == "i" else ""
        raise DataError(
            f"{source}: unsupported image dtype {arr.dtype}; images must be uint8 (0-255), bool, or float "
            f"in [0, 1]{hint}."
        )
    if kind == "u" and arr.dtype != np.uint8:
        raise DataError(
            f"{source}: unsupported image dtype {arr.dtype}; use uint8 (0-255) or float in [0, 1]."
        )
    if arr.ndim not in (2, 3, 4):
        raise DataError(
            f"{source}: images array has {arr.ndim} dimension(s), shape {list(arr.shape)}; expected "
            f"[N, D], [N, H, W], [N, C, H, W] or [N, H, W, C]."
        )
    if arr.size == 0:
        raise DataError(f"{source}: images array is empty (shape {list(arr.shape)}).")

    if arr.ndim == 2:  # [N, D]
        n, d = arr.shape
        s = math.isqrt(d)
        arr = arr.reshape(n, 1, s, s) if s * s == d else arr.reshape(n, 1, 1, d)
    elif arr.ndim == 3:  # [N, H, W]
        arr = arr[:, None]
    elif arr.shape[1] not in (1, 3):
        if arr.shape[3] not in (1, 3):
            raise DataError(
                f"{source}: 4-D images array of shape {list(arr.shape)} has neither 1 or 3 channels on "
                f"axis 1 ([N, C, H, W]) nor on axis 3 ([N, H, W, C])."
            )
        arr = arr.transpose(0, 3, 1, 2)  # [N, H, W, C] -> [N, C, H, W]

    if kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            bad = int(arr.size - np.count_nonzero(finite))
            raise DataError(
                f"{source}: {bad} of {arr.size} image values are NaN or inf; clean the data first."
            )
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            hint = " (it looks like 0-255 data: divide by 255)" if lo >= 0.0 and hi <= 255.0 else ""
            raise DataError(
                f"{source}: float image values span [{lo:g}, {hi:g}], outside [0, 1]; scale to [0, 1]{hint}."
            )
        out = arr.astype(np.float32)
    elif kind == "u":
        out = np.divide(arr, 255, dtype=np.float32)
    else:
        out = arr.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(out))  # [N, C, H, W]


def labels_from_array(y: np.ndarray, n: int, source: str = "array") -> torch.Tensor:
    """Validate and convert class labels to an int64 tensor [n]."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " (one-hot labels? use y.argmax(1))" if y.ndim == 2 else ""
        raise DataError(f"{source}: labels must have shape [N], got {list(y.shape)}{hint}.")
    if y.shape[0] != n:
        raise DataError(f"{source}: {n} images but {y.shape[0]} labels; they must have the same count.")
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise DataError(
                f"{source}: labels must be whole numbers (class indices), got fractional/NaN values."
            )
    elif y.dtype.kind not in "iub":
        raise DataError(f"{source}: unsupported label dtype {y.dtype}; labels must be integer class indices.")
    if y.size and y.min() < 0:
        raise DataError(
            f"{source}: labels must be class indices 0..K-1, found negative label {int(y.min())}."
        )
    return torch.from_numpy(y.astype(np.int64))  # [N]


def _no_test_split(path: Path, what: str) -> DataError:
    return DataError(
        f"{path} has no test split ({what}). Use split='train' for all of it, or save an .npz with "
        f"x_train/y_train/x_test/y_test arrays."
    )


def load_array_file(
    path: str | os.PathLike, split: str = "train", *, kind: str | None = None, name: str | None = None
) -> Dataset:
    """Load a ``.npy`` / ``.npz`` file (see the module docstring).  ``kind`` forces "npy"/"npz"."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"array file {path} does not exist.")
    kind = kind or path.suffix.lower().lstrip(".")
    if kind not in ("npy", "npz"):
        raise DataError(f"{path}: unsupported array file type {path.suffix!r}; use .npy or .npz.")
    name = name or path.stem
    try:
        loaded = np.load(path, allow_pickle=False)
    except _LOAD_ERRORS as e:
        raise DataError(
            f"cannot load {path} as a {kind} file ({e}). It must be a numeric array saved with np.save / "
            f"np.savez (object arrays / pickles are refused)."
        ) from None

    if isinstance(loaded, np.ndarray):
        if kind == "npz":
            raise DataError(f"{path} is a single .npy array, not an .npz archive; use npy:{path}.")
        if split != "train":
            raise _no_test_split(path, "a .npy file holds a single array")
        return Dataset(images_from_array(loaded, str(path)), None, name)

    with loaded as archive:
        if kind == "npy":
            raise DataError(f"{path} is an .npz archive, not a .npy array; use npz:{path}.")
        keys = sorted(archive.files)
        if "x_train" in keys or "x_test" in keys:
            xk, yk = f"x_{split}", f"y_{split}"
            if xk not in keys:
                raise DataError(f"{path} has no {xk!r} array for the {split} split (keys: {keys}).")
        elif "x" in keys:
            if split != "train":
                raise _no_test_split(path, "it has 'x' but no 'x_test'")
            xk, yk = "x", "y"
        elif len(keys) == 1:
            if split != "train":
                raise _no_test_split(path, "it holds a single array")
            xk, yk = keys[0], None
        else:
            raise DataError(
                f"{path} has no 'x' array (keys: {keys}); save images as 'x' (labels as 'y'), or as "
                f"x_train/y_train/x_test/y_test."
            )
        try:
            x_arr = archive[xk]
            y_arr = archive[yk] if yk is not None and yk in keys else None
        except _LOAD_ERRORS as e:
            raise DataError(
                f"cannot read arrays from {path} ({e}); object arrays / pickles are refused."
            ) from None

    x = images_from_array(x_arr, f"{path}[{xk!r}]")
    y = None if y_arr is None else labels_from_array(y_arr, x.shape[0], f"{path}[{yk!r}]")
    return Dataset(x, y, name)
