"""Joint (x, z) discriminators built on any image feature trunk: BigBiGAN's F(x), H(z) and J(F, H).

BigBiGAN (Donahue & Simonyan 2019, section 2, figure 1): F is a ConvNet on x, H an MLP on z, and J
an MLP on the concatenation of their features. Three scores come out, s_x = theta_x . F(x) (x alone),
s_z = theta_z . H(z) (z alone) and s_xz = J(F(x), H(z)) (the pair). BiGAN and ALI read only the
joint score (``forward``); BigBiGAN hinges all three (``scores``). Networks hold no training logic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import add_spectral_norm_


class MLPFeatures(nn.Module):
    """Flat x [B, D] (or images) -> features [B, hidden]: two leaky-ReLU layers, a trunk for arch=mlp."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.out_features = hidden
        self.fc1, self.fc2 = nn.Linear(in_dim, hidden), nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc1(x.flatten(1)), 0.2)  # [B, hidden]
        return F.leaky_relu(self.fc2(h), 0.2)  # [B, hidden]


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class JointScoreDiscriminator(nn.Module):
    """D(x, z) with F(x), H(z) and J(F(x), H(z)).

    x_trunk: images -> [B, Fx] (``out_features`` attribute), e.g. ``conv.DCGANFeatures``.
    H and J have ``depth`` leaky-ReLU layers of width ``hidden``. With ``spectral_norm`` every layer
    of H, J and the score heads is spectrally normalised (the trunk brings its own setting); without
    it the three score layers start at zero, so every pair scores 0 at step 0 and neither player
    starts ahead (the BiGAN reference code's LinearPredictor).
    """

    def __init__(self, x_trunk: nn.Module, latent_dim: int, hidden: int, *, depth: int = 2,
                 spectral_norm: bool = False, init_std: float = 0.02):
        super().__init__()
        fx = x_trunk.out_features
        self.F = x_trunk
        self.H = _mlp([latent_dim] + [hidden] * depth)  # [B, latent] -> [B, hidden]
        self.J = _mlp([fx + hidden] + [hidden] * depth)  # [B, Fx + hidden] -> [B, hidden]
        self.score_x = nn.Linear(fx, 1)  # theta_x
        self.score_z = nn.Linear(hidden, 1)  # theta_z
        self.score_xz = nn.Linear(hidden, 1)  # J's last layer
        heads = [self.H, self.J, self.score_x, self.score_z, self.score_xz]
        for m in (m for head in heads for m in head.modules() if isinstance(m, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, init_std)
            nn.init.zeros_(m.bias)
        if spectral_norm:
            for head in heads:
                add_spectral_norm_(head)
        else:  # spectral norm of a zero matrix is 0/0, so only the plain heads start at zero
            for score in (self.score_x, self.score_z, self.score_xz):
                nn.init.zeros_(score.weight)

    def scores(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s_x, s_z, s_xz), each [B]."""
        fx = self.F(x)  # [B, Fx]
        hz = self.H(z)  # [B, hidden]
        joint = self.J(torch.cat([fx, hz], dim=1))  # [B, hidden]
        return self.score_x(fx).squeeze(1), self.score_z(hz).squeeze(1), self.score_xz(joint).squeeze(1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The joint score s_xz alone, [B]: the single logit BiGAN's and ALI's losses read."""
        joint = self.J(torch.cat([self.F(x), self.H(z)], dim=1))  # [B, hidden]
        return self.score_xz(joint).squeeze(1)
