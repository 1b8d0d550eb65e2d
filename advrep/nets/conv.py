"""DCGAN-style convolutional networks (Radford et al. 2016), parametrised by image size and channels.

One generator and one feature trunk serve every size: both walk a ladder of resolutions from a small
base grid (4x4 for 8/16/32/64 pixels, 7x7 for 28) to the image, doubling or halving once per layer
with 4x4 stride-2 (transposed) convolutions. Channel counts grow by 2x per halving from ``width`` at
the image end, capped at 8 * width, as in DCGAN (64-128-256-512 for 64x64 images).

The trunk maps images to a feature vector; encoders and discriminators put their heads on it
(``ImageEncoder`` here, the F/H/J joint discriminator in ``joint.py``). Every image network also
accepts flat input [B, C*H*W], so methods written for the MLPs (BiGAN, ALI) can pass either form.
Networks hold no training logic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from .mlp import init_normal_


def ladder(height: int, width: int) -> tuple[int, int, int]:
    """(base height, base width, number of 2x steps) for an image of height x width.

    The number of steps n is the largest for which both sides divide by 2^n and stay >= 4, so
    28 -> 14 -> 7 (n = 2), 32 -> 16 -> 8 -> 4 (n = 3), 8 -> 4 (n = 1).
    """
    steps = 0
    while all(s % 2 ** (steps + 1) == 0 and s // 2 ** (steps + 1) >= 4 for s in (height, width)):
        steps += 1
    if steps == 0:
        raise ValueError(f"image size {height}x{width} cannot be halved to a >= 4-pixel grid, which the "
                         "convolutional networks need; use sides like 8, 16, 28, 32 or 64, or arch=mlp.")
    return height // 2 ** steps, width // 2 ** steps, steps


def channels_at(level: int, width: int) -> int:
    """Channels after ``level`` halvings (level 1 = first conv layer): width * 2^(level-1), capped."""
    return width * min(2 ** (level - 1), 8)


def as_images(x: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """[B, C*H*W] or [B, C, H, W] -> [B, C, H, W]; a clear error for anything else."""
    if x.dim() == 2 and x.shape[1] == image_shape[0] * image_shape[1] * image_shape[2]:
        return x.reshape(x.shape[0], *image_shape)
    if x.dim() == 4 and tuple(x.shape[1:]) == tuple(image_shape):
        return x
    raise ValueError(f"network built for images {tuple(image_shape)} got input of shape {tuple(x.shape)}; "
                     "pass [B, C, H, W] or its flat [B, C*H*W] form at that size.")


def add_spectral_norm_(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every linear and convolutional layer: each weight
    is divided by its largest singular value, estimated by one power iteration per training forward.
    Attach it after initialising the plain weights, so the power iteration starts from those."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and not parametrize.is_parametrized(m):
            spectral_norm(m)
    return module


class DCGANGenerator(nn.Module):
    """G: z [B, latent_dim] -> images [B, C, H, W] in (0, 1).

    A linear layer makes the base grid, then transposed convolutions double it; batch norm and ReLU
    after every layer but the last, a sigmoid at the end (our data live in [0, 1]).
    """

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], width: int = 64):
        super().__init__()
        self.image_shape = tuple(image_shape)
        c, h, w = self.image_shape
        bh, bw, steps = ladder(h, w)
        self.base = (channels_at(steps, width), bh, bw)
        self.fc = nn.Linear(latent_dim, self.base[0] * bh * bw, bias=False)
        self.bn0 = nn.BatchNorm1d(self.base[0] * bh * bw)
        layers: list[nn.Module] = []
        for level in range(steps, 1, -1):  # base grid -> one step short of the image
            cin, cout = channels_at(level, width), channels_at(level - 1, width)
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        layers.append(nn.ConvTranspose2d(channels_at(1, width), c, 4, 2, 1))
        self.up = nn.Sequential(*layers)
        init_normal_(self, 0.02)  # DCGAN's N(0, 0.02)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn0(self.fc(z)))  # [B, C0 * bh * bw]
        return self.up(h.view(z.shape[0], *self.base))  # [B, C, H, W]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))


class DCGANFeatures(nn.Module):
    """Images [B, C, H, W] -> features [B, out_features]: strided 4x4 convolutions down the ladder,
    leaky ReLU (0.2), then one fully connected layer.

    ``batch_norm`` after every layer but the first (DCGAN's discriminator and encoder);
    ``spectral_norm`` on every layer (SN-DCGAN, Miyato et al.), normally without batch norm.
    """

    def __init__(self, image_shape: tuple[int, int, int], width: int = 64, out_features: int = 256, *,
                 batch_norm: bool = True, spectral_norm: bool = False):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.out_features = out_features
        c, h, w = self.image_shape
        bh, bw, steps = ladder(h, w)
        layers: list[nn.Module] = []
        cin = c
        for level in range(1, steps + 1):
            cout = channels_at(level, width)
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=not batch_norm))
            if batch_norm and level > 1:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            cin = cout
        self.down = nn.Sequential(*layers)
        self.fc = nn.Linear(cin * bh * bw, out_features, bias=not batch_norm)
        self.bn = nn.BatchNorm1d(out_features) if batch_norm else nn.Identity()
        init_normal_(self, 0.02)
        if spectral_norm:
            add_spectral_norm_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(as_images(x, self.image_shape)).flatten(1)  # [B, C_base * bh * bw]
        return F.leaky_relu(self.bn(self.fc(h)), 0.2)  # [B, out_features]


class ImageEncoder(nn.Module):
    """E: x -> z [B, latent_dim] on any feature trunk, with MLPEncoder's interface (features, pre_head,
    head, squash, forward(sample=)), so BiGAN, ALI and BigBiGAN use either interchangeably.

    ``stochastic``: q(z|x) = N(mu, softplus(s)^2), sampled by reparameterisation (ALI section 2.2,
    BigBiGAN section 2). ``bounded``: z = 2 sigmoid(a) - 1, inside the uniform prior's support.
    """

    def __init__(self, trunk: nn.Module, latent_dim: int, *, bounded: bool = False, stochastic: bool = False):
        super().__init__()
        self.bounded, self.stochastic = bounded, stochastic
        self.trunk = trunk
        self.out = nn.Linear(trunk.out_features, latent_dim * (2 if stochastic else 1))
        nn.init.normal_(self.out.weight, 0.0, 0.02)
        nn.init.zeros_(self.out.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output, [B, F]: the representation the linear evaluations read."""
        return self.trunk(x)

    def pre_head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        a = self.out(h)  # [B, latent] or [B, 2 * latent]
        if self.stochastic:
            mean, pre_std = a.chunk(2, dim=1)
            return mean, F.softplus(pre_std) + 1e-4
        return a, None

    def squash(self, a: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sigmoid(a) - 1.0 if self.bounded else a

    def head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mean, std = self.pre_head(h)
        return self.squash(mean), std

    def forward(self, x: torch.Tensor, *, sample: bool = True) -> torch.Tensor:
        mean, std = self.head(self.features(x))
        if std is None or not sample:
            return mean
        return mean + std * torch.randn_like(std)
