"""Train/validation split used for feature evaluation.

Like the BiGAN reference code, 10k of MNIST's 60k training images are the validation queries and the
other 50k the reference set. Two choices of the 10k (config ``val_split``):

* ``"last"`` (default): the last ``n_val`` images, no shuffling.
* ``"bigan_code"``: the reference code's own 10k. Its ``load.py`` shuffles the training set with
  scikit-learn's ``shuffle`` and ``lib/rng.py``'s ``numpy.random.RandomState(42)``, whose first draw
  in ``train_mnist.sh``'s runs (no ``--seed``) is that shuffle, and holds out positions 50000 on. That
  permutation is ``RandomState(42).permutation(60000)``; raw-pixel 1NN on it is 97.20, the figure the
  design notes give for the authors' protocol (97.12 on the last 10k). On a training set of another
  size (a subset, another dataset) it is the same seeded recipe, not the authors' images.

Either way every run and every method is evaluated on exactly the same images. Training leaves them
out only with ``hold_out_val``.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

__all__ = ["VAL_SPLITS", "train_val_split"]

VAL_SPLITS = ("last", "bigan_code")
BIGAN_CODE_SEED = 42  # lib/rng.py of github.com/jeffdonahue/bigan


def train_val_split(n_train: int, n_val: int = 10000, *, order: str = "last"
                    ) -> tuple[slice | torch.Tensor, slice | torch.Tensor]:
    """(reference, validation) indices over a training set of ``n_train`` items.

    ``order="last"``: slices, e.g. MNIST's 60000 training images -> (slice(0, 50000), slice(50000, 60000)).
    ``order="bigan_code"``: sorted int64 index tensors, the BiGAN reference code's seeded shuffle (module
    docstring). Raises ValueError if there would be no reference items (n_train <= n_val), no validation
    items, or ``order`` is unknown.
    """
    n_train, n_val = operator.index(n_train), operator.index(n_val)  # ints only: 5.5 images is a bug
    if n_val < 1:
        raise ValueError(f"n_val must be >= 1, got {n_val}")
    if n_train <= n_val:
        raise ValueError(f"n_train ({n_train}) must exceed n_val ({n_val}) to leave a reference set")
    cut = n_train - n_val
    if order == "last":
        return slice(0, cut), slice(cut, n_train)
    if order == "bigan_code":
        perm = np.random.RandomState(BIGAN_CODE_SEED).permutation(n_train)
        return torch.from_numpy(np.sort(perm[:cut])), torch.from_numpy(np.sort(perm[cut:]))
    raise ValueError(f"unknown validation split order {order!r}; choose one of {', '.join(VAL_SPLITS)}.")
