"""Fully connected networks of the BiGAN paper's permutation-invariant MNIST experiments.

The shapes follow the authors' reference code (jeffdonahue/bigan, net.py `mnist_mlp` and
`deconvnet_mnist_mlp` with --nogain --nobias): 1024-1024 hidden layers, no biases anywhere, batch
norm with no learned scale or shift (none on the first layer of E and D), leaky ReLU (0.2) in the
encoder and discriminator, ReLU in the generator, a linear skip from z into the generator's second
layer, and a discriminator that sees x first and gets a linear projection of z added at its second
layer. Networks hold no training logic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Weights N(0, std), biases zero, as in the reference code (and DCGAN).

    A discriminator's final scoring layer starts at zero (the reference code's LinearPredictor), so
    every pair scores 0.5 at step 0 and neither player starts ahead.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, (JointDiscriminator, MLPDiscriminator)):
            nn.init.zeros_(m.out.weight)
    return module


def _bn(width: int, eps: float) -> nn.BatchNorm1d:
    # The reference MNIST runs pass --nogain --nobias: normalise only, no learned affine. Its batch
    # norm adds 1e-8 to the variance; `eps` is cfg.bn_eps (default PyTorch's 1e-5).
    return nn.BatchNorm1d(width, eps=eps, affine=False)


class MLPGenerator(nn.Module):
    """G: z [B, latent_dim] -> x [B, out_dim] in (0, 1)."""

    def __init__(self, latent_dim: int, out_dim: int, hidden: int = 1024, *, bn_eps: float = 1e-5):
        super().__init__()
        self.fc1 = nn.Linear(latent_dim, hidden, bias=False)
        self.bn1 = _bn(hidden, bn_eps)
        self.fc2 = nn.Linear(hidden, hidden, bias=False)
        self.skip = nn.Linear(latent_dim, hidden, bias=False)  # z re-enters at layer 2
        self.bn2 = _bn(hidden, bn_eps)
        self.out = nn.Linear(hidden, out_dim, bias=False)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.fc1(z)))  # [B, H]
        h = F.relu(self.bn2(self.fc2(h) + self.skip(z)))  # [B, H]
        return self.out(h)  # [B, D]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))


class MLPEncoder(nn.Module):
    """E: x [B, in_dim] -> z [B, latent_dim].

    ``bounded``: z = 2 * sigmoid(a) - 1, inside the support of the uniform prior on [-1, 1]
    (the reference code's --encode_normalize). ``stochastic``: ALI's reparameterised Gaussian
    posterior, z = mu + softplus(s) * eps.
    """

    def __init__(self, in_dim: int, latent_dim: int, hidden: int = 1024, *, bounded: bool = True,
                 stochastic: bool = False, bn_eps: float = 1e-5):
        super().__init__()
        self.bounded, self.stochastic = bounded, stochastic
        self.fc1 = nn.Linear(in_dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, hidden, bias=False)
        self.bn2 = _bn(hidden, bn_eps)
        self.out = nn.Linear(hidden, latent_dim * (2 if stochastic else 1), bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, [B, hidden]: the features the BiGAN paper evaluates."""
        h = F.leaky_relu(self.fc1(x), 0.2)  # [B, H]
        return F.leaky_relu(self.bn2(self.fc2(h)), 0.2)  # [B, H]

    def head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, std) of q(z|x) from penultimate features; std is None when deterministic."""
        mean, std = self.pre_head(h)
        return self.squash(mean), std

    def pre_head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(pre-squash mean [B, latent], std or None). The reference code's 1NN 'on z' uses the
        pre-sigmoid mean (its ``l2distable`` for the uniform prior)."""
        a = self.out(h)
        if self.stochastic:
            mean, pre_std = a.chunk(2, dim=1)
            return mean, F.softplus(pre_std) + 1e-4
        return a, None

    def squash(self, a: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sigmoid(a) - 1.0 if self.bounded else a

    def forward(self, x: torch.Tensor, *, sample: bool = True) -> torch.Tensor:
        mean, std = self.head(self.features(x))
        if std is None or not sample:
            return mean
        return mean + std * torch.randn_like(std)


class JointDiscriminator(nn.Module):
    """D(x, z) -> logit [B]: x through two layers, z projected linearly into the second."""

    def __init__(self, in_dim: int, latent_dim: int, hidden: int = 1024, *, bn_eps: float = 1e-5):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, hidden, bias=False)
        self.z_proj = nn.Linear(latent_dim, hidden, bias=False)
        self.bn2 = _bn(hidden, bn_eps)
        self.out = nn.Linear(hidden, 1, bias=False)

    def features(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # Real pairs and generated pairs are scored in separate calls, so each gets its own batch
        # statistics, as in the reference code.
        h = F.leaky_relu(self.fc1(x), 0.2)  # [B, H]
        return F.leaky_relu(self.bn2(self.fc2(h) + self.z_proj(z)), 0.2)  # [B, H]

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x, z)).squeeze(1)


class MLPDiscriminator(nn.Module):
    """D(x) -> logit [B], for the plain GAN baseline; ``features`` is its penultimate layer."""

    def __init__(self, in_dim: int, hidden: int = 1024, *, bn_eps: float = 1e-5):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, hidden, bias=False)
        self.bn2 = _bn(hidden, bn_eps)
        self.out = nn.Linear(hidden, 1, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc1(x), 0.2)  # [B, H]
        return F.leaky_relu(self.bn2(self.fc2(h)), 0.2)  # [B, H]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).squeeze(1)
