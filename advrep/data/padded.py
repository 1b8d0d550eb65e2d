"""MNIST-format sets padded from 28x28 to 32x32 (``mnist-32``, ``fashion-mnist-32``, ``kmnist-32``).

Convolutional networks that halve the resolution down to 4x4 want a power-of-two size; padding two
background (zero) pixels on each side keeps every digit's pixels exactly as they are, where resizing
would blur them (the usual choice for DCGAN/BigGAN-style networks on MNIST).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .dataset import Dataset
from .errors import DataError
from .mnist import load_mnist_family

PADDED: dict[str, tuple[str, int]] = {
    "mnist-32": ("mnist", 32), "fashion-mnist-32": ("fashion-mnist", 32), "kmnist-32": ("kmnist", 32),
}


def pad_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre [N, C, H, W] in a size x size canvas of zeros; [N, C, size, size]."""
    h, w = x.shape[2:]
    if h > size or w > size:
        raise DataError(f"cannot pad {h}x{w} images to {size}x{size}: they are larger; crop or resize "
                        "instead.")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top))


def load_padded(name: str, split: str, data_dir: Path, download: bool = True) -> Dataset:
    """``name`` from PADDED: the underlying set, padded; labels unchanged."""
    base, size = PADDED[name]
    data = load_mnist_family(base, split, data_dir, download)
    return Dataset(pad_images(data.x, size).contiguous(), data.y, name)
