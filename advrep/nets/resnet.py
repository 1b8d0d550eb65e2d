"""Small BigGAN-style residual networks (Brock, Donahue & Simonyan 2019, appendix B) with spectral norm.

Generator: a spectrally normalised linear layer makes the base grid; each residual up-block is
BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 beside a nearest-upsample + 1x1-conv shortcut; a final
BN-ReLU-conv3x3 makes the image. As in unconditional BigGAN, every batch norm's gain and bias are
linear functions of z ("conditional batch norm" fed the latent, no class embedding). Spectral norm on
every layer of G and D, as BigGAN does; orthogonal initialisation.

Feature trunk (the discriminator's F(x), or an encoder): pre-activation residual down-blocks,
ReLU-conv3x3-ReLU-conv3x3-avgpool beside a 1x1-conv + avgpool shortcut (the first block skips the
leading ReLU), one more block at the base resolution, then ReLU and a global sum over positions
(BigGAN's D). An encoder trunk uses batch norm instead of spectral norm (BigBiGAN's E is a ResNet
with batch norm).

Resolutions follow the same ladder as the DCGAN nets (``conv.ladder``), so 8, 16, 28, 32 and 64
pixel images all work. Channels: ``width`` at the finest level, doubling per halving up to 8x.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import add_spectral_norm_, as_images, channels_at, ladder


def init_orthogonal_(module: nn.Module) -> nn.Module:
    """Orthogonal weights and zero biases (BigGAN's initialisation), before spectral norm is attached."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class LatentBatchNorm(nn.Module):
    """Batch norm whose gain (1 + g(z)) and bias b(z) are linear in the latent z (BigGAN's
    unconditional generator). x [B, C, H, W], z [B, latent] -> [B, C, H, W]."""

    def __init__(self, channels: int, latent_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(latent_dim, channels, bias=False)
        self.bias = nn.Linear(latent_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        g = 1.0 + self.gain(z)[:, :, None, None]  # [B, C, 1, 1]
        return self.bn(x) * g + self.bias(z)[:, :, None, None]


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, latent_dim: int):
        super().__init__()
        self.bn1, self.bn2 = LatentBatchNorm(cin, latent_dim), LatentBatchNorm(cout, latent_dim)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, z)), scale_factor=2, mode="nearest")  # [B, cin, 2H, 2W]
        h = self.conv2(F.relu(self.bn2(self.conv1(h), z)))  # [B, cout, 2H, 2W]
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResNetGenerator(nn.Module):
    """G: z [B, latent_dim] -> images [B, C, H, W] in (0, 1)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], width: int = 64):
        super().__init__()
        self.image_shape = tuple(image_shape)
        c, h, w = self.image_shape
        bh, bw, steps = ladder(h, w)
        self.base = (channels_at(steps, width), bh, bw)
        self.fc = nn.Linear(latent_dim, self.base[0] * bh * bw)
        self.blocks = nn.ModuleList(UpBlock(channels_at(level, width), channels_at(max(level - 1, 1), width),
                                            latent_dim) for level in range(steps, 0, -1))
        self.bn = nn.BatchNorm2d(channels_at(1, width))
        self.out = nn.Conv2d(channels_at(1, width), c, 3, 1, 1)
        init_orthogonal_(self)
        add_spectral_norm_(self)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], *self.base)  # [B, C0, bh, bw]
        for block in self.blocks:
            h = block(h, z)
        return self.out(F.relu(self.bn(h)))  # [B, C, H, W]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, *, down: bool, first: bool, batch_norm: bool):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or down) else None
        self.bn1 = nn.BatchNorm2d(cin) if batch_norm and not first else nn.Identity()
        self.bn2 = nn.BatchNorm2d(cout) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(self.bn1(x))  # the image itself is not passed through a ReLU
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        s = x
        if self.first:  # BigGAN's first block: pool, then project (cheaper on the full-size image)
            s = F.avg_pool2d(s, 2) if self.down else s
            s = self.skip(s) if self.skip is not None else s
        else:
            s = self.skip(s) if self.skip is not None else s
            s = F.avg_pool2d(s, 2) if self.down else s
        return (F.avg_pool2d(h, 2) if self.down else h) + s


class ResNetFeatures(nn.Module):
    """Images [B, C, H, W] -> features [B, out_features] (the top block's channels)."""

    def __init__(self, image_shape: tuple[int, int, int], width: int = 64, *, spectral_norm: bool = True,
                 batch_norm: bool = False):
        super().__init__()
        self.image_shape = tuple(image_shape)
        c, h, w = self.image_shape
        _, _, steps = ladder(h, w)
        blocks, cin = [], c
        for level in range(1, steps + 1):
            cout = channels_at(level, width)
            blocks.append(DownBlock(cin, cout, down=True, first=level == 1, batch_norm=batch_norm))
            cin = cout
        blocks.append(DownBlock(cin, cin, down=False, first=False, batch_norm=batch_norm))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin) if batch_norm else nn.Identity()
        self.out_features = cin
        init_orthogonal_(self)
        if spectral_norm:
            add_spectral_norm_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(as_images(x, self.image_shape))  # [B, C_top, bh, bw]
        return F.relu(self.bn(h)).sum(dim=(2, 3))  # [B, C_top]: BigGAN's global sum pooling
