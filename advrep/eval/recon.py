"""Reconstruction quality of an encoder/generator pair, x -> G(E(x)).

The raw error alone is hard to read: its scale depends on the data, and a model that ignores its input
and outputs a typical sample already scores a finite number.  So the error is reported next to the
error of pairing each reconstruction with a *different* random input; their ratio is ~1 when G(E(x))
carries no information about which x it came from and 0 for perfect reconstruction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import as_float_tensor

__all__ = ["reconstruction_errors", "random_derangement"]


def random_derangement(n: int, *, seed: int = 0) -> Tensor:
    """A random permutation of range(n) with no fixed points ([n] int64), reproducible from ``seed``.

    Built as one random n-cycle (Sattolo's construction: shuffle, then send each element to its
    successor), so it never needs rejection sampling.  Not uniform over all derangements, which does
    not matter here: every element is paired with a uniformly random other element.
    """
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # [n]
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)  # order[i] -> order[i + 1]
    return perm


def reconstruction_errors(x, x_hat, *, seed: int = 0) -> dict:
    """Per-sample L2 errors of reconstructions x_hat of x (both [N, ...], N >= 2, same shape).

    Returns plain floats:
      recon_error        mean_i |x_i - x_hat_i|          (L2 norm over all non-batch dims)
      random_pair_error  mean_i |x_perm(i) - x_hat_i|    perm: a random derangement (no fixed points)
      recon_ratio        recon_error / random_pair_error (0 = perfect; ~1 = ignores its input;
                         NaN if random_pair_error is 0, i.e. every x and x_hat is the same image)
      recon_mse          mean squared error per element
    """
    x = as_float_tensor(x, "x")
    x_hat = as_float_tensor(x_hat, "x_hat")
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}")
    if x.dim() < 1 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples along dim 0, got shape {tuple(x.shape)}")
    xf, rf = x.reshape(x.shape[0], -1), x_hat.reshape(x.shape[0], -1)  # [N, P]
    perm = random_derangement(x.shape[0], seed=seed)  # [N]
    # float64 for the means: tens of thousands of errors summed in float32 lose digits for no reason
    err = (xf - rf).norm(dim=1).double()  # [N]
    rand = (xf[perm] - rf).norm(dim=1).double()  # [N]
    recon, rand_mean = float(err.mean()), float(rand.mean())
    return {
        "recon_error": recon,
        "random_pair_error": rand_mean,
        "recon_ratio": recon / rand_mean if rand_mean > 0 else float("nan"),
        "recon_mse": float((xf.double() - rf.double()).pow(2).mean()) if xf.shape[1] else 0.0,
    }
