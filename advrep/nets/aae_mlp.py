"""Fully connected networks of the adversarial autoencoder paper's MNIST experiments.

Makhzani et al. 2016, appendix: encoder, decoder and discriminators each have two hidden layers of
1000 ReLU units (3000 for unsupervised clustering), biases, weights drawn from N(0, 0.01^2), no batch
norm; q(z|x) ends in a linear layer, q(y|x) in a softmax, the decoder in a sigmoid. Networks hold no
training logic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def init_aae_(module: nn.Module, std: float = 0.01) -> nn.Module:
    """Weights N(0, std^2), biases zero (appendix A.1)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class ReLUTrunk(nn.Module):
    """in [B, in_dim] -> [B, hidden] through ``depth`` Linear + ReLU layers."""

    def __init__(self, in_dim: int, hidden: int, depth: int = 2):
        super().__init__()
        dims = [in_dim] + [hidden] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.relu(layer(x))
        return x


class CodeDiscriminator(nn.Module):
    """D(code) -> logit [B]: the adversary on the hidden code (z, y, or z joined with a label one-hot)."""

    def __init__(self, in_dim: int, hidden: int = 1000):
        super().__init__()
        self.trunk = ReLUTrunk(in_dim, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(code)).squeeze(1)


class Decoder(nn.Module):
    """p(x|code): code [B, code_dim] -> pixels [B, out_dim] in (0, 1)."""

    def __init__(self, code_dim: int, out_dim: int, hidden: int = 1000):
        super().__init__()
        self.trunk = ReLUTrunk(code_dim, hidden)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.trunk(code)))


class GaussianEncoder(nn.Module):
    """q(z|x): x [B, in_dim] -> (mean [B, latent], std [B, latent] or None).

    Deterministic (std None) or a Gaussian posterior, z = mean + std * eps (the paper's second choice
    of q(z|x), section 2)."""

    def __init__(self, in_dim: int, latent_dim: int, hidden: int = 1000, *, stochastic: bool = False):
        super().__init__()
        self.stochastic = stochastic
        self.trunk = ReLUTrunk(in_dim, hidden)
        self.out = nn.Linear(hidden, latent_dim * (2 if stochastic else 1))

    def head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        a = self.out(h)  # [B, latent] or [B, 2 latent]
        if not self.stochastic:
            return a, None
        mean, pre_std = a.chunk(2, dim=1)
        return mean, F.softplus(pre_std) + 1e-4

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.head(self.trunk(x))


class CategoricalStyleEncoder(nn.Module):
    """q(y|x) and q(z|x) sharing one trunk (appendix A.2): x [B, in_dim] -> (y logits [B, K], z [B, latent]).

    The softmax of the logits is the categorical code y; z is the linear style code."""

    def __init__(self, in_dim: int, classes: int, latent_dim: int, hidden: int = 1000):
        super().__init__()
        self.trunk = ReLUTrunk(in_dim, hidden)
        self.y_head = nn.Linear(hidden, classes)
        self.z_head = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)  # [B, H]
        return self.y_head(h), self.z_head(h)


class ClusterHeads(nn.Module):
    """W_c: a one-hot (or soft) category [B, K] -> its cluster head [B, n] (the paper's section 7)."""

    def __init__(self, classes: int, dim: int, init_scale: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * init_scale)  # [K, n]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.weight  # [B, n]
