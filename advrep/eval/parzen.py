"""Parzen-window log-likelihood of held-out data under a model's samples.

The protocol of Goodfellow et al. 2014 (section 5), which the AAE paper's table 1 follows: put an
isotropic Gaussian of width sigma on each of M generated samples s_i, and score a held-out point x by

    log p(x) = logsumexp_i( -|x - s_i|^2 / (2 sigma^2) ) - log M - (D / 2) log(2 pi sigma^2),

choosing sigma on a validation set (the GAN paper's grid: 10 values log-spaced in [0.1, 1]) and
reporting the test mean with its standard error. The squared distances are computed once per block of
points and reused for every sigma, so a grid costs about one distance matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ._common import as_features

__all__ = ["DEFAULT_SIGMAS", "parzen_log_densities", "parzen_log_likelihood", "parzen_select_sigma",
           "parzen_evaluation"]

DEFAULT_SIGMAS = tuple(float(s) for s in np.logspace(-1, 0, 10))


def _flat(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    return as_features(t.reshape(t.shape[0], -1) if t.dim() > 2 else t, name)


def parzen_log_densities(samples, x, sigmas: Sequence[float], *, batch_size: int = 500) -> torch.Tensor:
    """log p(x_n) for every sigma: [len(sigmas), N] float64. samples [M, ...], x [N, ...] (flattened)."""
    s = _flat(samples, "samples")  # [M, D]
    q = _flat(x, "x")  # [N, D]
    if s.shape[0] == 0 or q.shape[0] == 0:
        raise ValueError(f"need samples and points, got {s.shape[0]} samples and {q.shape[0]} points")
    if s.shape[1] != q.shape[1]:
        raise ValueError(f"samples have {s.shape[1]} dimensions but x has {q.shape[1]}; flatten both alike")
    sig = torch.as_tensor(list(sigmas), dtype=torch.float64)  # [S]
    if sig.numel() == 0 or bool((sig <= 0).any()):
        raise ValueError(f"sigmas must be a non-empty list of positive widths, got {list(sigmas)}")
    m, d = s.shape
    s_sq = s.pow(2).sum(1)  # [M]
    const = -math.log(m) - 0.5 * d * torch.log(2 * math.pi * sig.pow(2))  # [S]
    out = []
    for start in range(0, q.shape[0], batch_size):
        block = q[start:start + batch_size]  # [b, D]
        # |x - s|^2 = |x|^2 + |s|^2 - 2 x.s; clamped because rounding can make it slightly negative.
        sq = (block.pow(2).sum(1, keepdim=True) + s_sq[None] - 2.0 * block @ s.T).clamp_min(0)  # [b, M]
        sq = sq.double()
        # One sigma at a time keeps the temporary at [b, M] instead of [S, b, M].
        out.append(torch.stack([torch.logsumexp(sq / (-2.0 * w * w), dim=1) for w in sig.tolist()])
                   + const[:, None])  # [S, b]
    return torch.cat(out, dim=1)


def parzen_log_likelihood(samples, x, sigma: float, *, batch_size: int = 500) -> dict[str, float]:
    """Mean log-likelihood of x under the Parzen window of width sigma, with its standard error."""
    ll = parzen_log_densities(samples, x, [sigma], batch_size=batch_size)[0]  # [N]
    se = float(ll.std(correction=1) / math.sqrt(ll.numel())) if ll.numel() > 1 else 0.0
    return {"mean": float(ll.mean()), "std_err": se}


def parzen_select_sigma(samples, val_x, sigmas: Sequence[float] = DEFAULT_SIGMAS, *,
                        batch_size: int = 500) -> tuple[float, dict[float, float]]:
    """(the sigma with the highest mean validation log-likelihood, {sigma: that mean})."""
    ll = parzen_log_densities(samples, val_x, sigmas, batch_size=batch_size).mean(dim=1)  # [S]
    scores = {float(s): float(v) for s, v in zip(sigmas, ll, strict=True)}
    return max(scores, key=scores.get), scores


def parzen_evaluation(samples, val_x, test_x, *, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                      batch_size: int = 500) -> dict[str, float]:
    """The full protocol: sigma from validation, then the test log-likelihood and its standard error.

    Keys: parzen_ll, parzen_ll_se, parzen_sigma, parzen_val_ll. Warns through the key
    parzen_sigma_at_edge = 1.0 when the best sigma is the grid's smallest or largest value."""
    sigma, scores = parzen_select_sigma(samples, val_x, sigmas, batch_size=batch_size)
    test = parzen_log_likelihood(samples, test_x, sigma, batch_size=batch_size)
    edge = sigma in (min(scores), max(scores)) and len(scores) > 1
    return {"parzen_ll": test["mean"], "parzen_ll_se": test["std_err"], "parzen_sigma": sigma,
            "parzen_val_ll": scores[sigma], "parzen_sigma_at_edge": float(edge)}
