"""Train/validation split used for feature evaluation.

Like the BiGAN reference code, 10k of MNIST's 60k training images are the validation queries and the
other 50k the reference set. The reference code picks its 10k after a seeded shuffle (and never trains
on them); here they are the *last* ``n_val`` images, with no shuffling, so every run and every method
is evaluated on exactly the same images. Training leaves them out only with ``hold_out_val``.
"""

from __future__ import annotations

import operator

__all__ = ["train_val_split"]


def train_val_split(n_train: int, n_val: int = 10000) -> tuple[slice, slice]:
    """(reference slice, validation slice) over a training set of ``n_train`` items.

    E.g. MNIST's 60000 training images -> (slice(0, 50000), slice(50000, 60000)).
    Raises ValueError if there would be no reference items (n_train <= n_val) or no validation items.
    """
    n_train, n_val = operator.index(n_train), operator.index(n_val)  # ints only: 5.5 images is a bug
    if n_val < 1:
        raise ValueError(f"n_val must be >= 1, got {n_val}")
    if n_train <= n_val:
        raise ValueError(f"n_train ({n_train}) must exceed n_val ({n_val}) to leave a reference set")
    cut = n_train - n_val
    return slice(0, cut), slice(cut, n_train)
