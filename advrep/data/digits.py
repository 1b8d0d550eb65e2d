"""scikit-learn's bundled 8x8 handwritten digits (1797 images): a tiny, always-offline set.

Values are 0..16 in the original; we divide by 16 to reach [0, 1].  The split is fixed:
stratified 80/20 train/test with ``random_state=0`` (1437 train, 360 test), and each split
keeps the original sample order (sorted indices) so it is deterministic and unshuffled.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .dataset import Dataset

SEED = 0
TEST_FRACTION = 0.2


@functools.lru_cache(maxsize=1)
def _split_indices() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # Imported lazily: sklearn import costs ~0.5 s and only this loader needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # [1797, 8, 8] in [0, 1]
    labels = bunch.target.astype(np.int64)  # [1797]
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SEED
    )
    return images, labels, np.sort(train_idx), np.sort(test_idx)


def load_digits_dataset(split: str = "train") -> Dataset:
    """One split of the digits set as x [N, 1, 8, 8], y [N]."""
    images, labels, train_idx, test_idx = _split_indices()
    idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy(images[idx]).unsqueeze(1)  # fancy indexing copies: [N, 1, 8, 8]
    y = torch.from_numpy(labels[idx])  # [N]
    return Dataset(x, y, "digits")
