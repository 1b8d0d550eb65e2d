"""Input coercion shared by the evaluation modules.

Every public function in ``advrep.eval`` accepts torch tensors or numpy arrays (or anything
``numpy.asarray`` understands); these helpers turn them into the one form the maths uses: contiguous
float32 CPU tensors for features and int64 numpy arrays for labels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def as_float_tensor(x, name: str, *, ndim: int | None = None, check_finite: bool = True) -> Tensor:
    """Return ``x`` as a contiguous float32 CPU tensor (a copy only when needed).

    A NaN or inf in features almost always means a diverged encoder; every downstream number would
    silently be garbage, so it is rejected here with the offending argument's name.
    """
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        t = torch.as_tensor(np.asarray(x))
    t = t.to(device="cpu", dtype=torch.float32).contiguous()
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    # aminmax is one reduction pass with no [N, D] boolean temporary; NaN or inf shows up in its result
    if check_finite and t.numel() and not bool(torch.isfinite(torch.stack(torch.aminmax(t))).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def as_features(x, name: str) -> Tensor:
    """Features as a [N, D] float32 tensor; a [N] vector is treated as N one-dimensional features."""
    t = as_float_tensor(x, name)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"{name} must be [N, D] features, got shape {tuple(t.shape)}")
    return t


def as_labels(y, name: str, n: int) -> np.ndarray:
    """Labels as an int64 numpy vector of length ``n`` (class ids may be any integers)."""
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape [{n}], got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        # Float labels that are whole numbers (e.g. from a .npy saved as float) are accepted;
        # anything else is a caller mistake worth reporting.
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)
