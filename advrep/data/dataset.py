"""The in-memory dataset container shared by every loader and every method.

Images are always stored in the image view ``[N, C, H, W]`` (float32 in [0, 1]); MLP-based
methods use :meth:`Dataset.flat`, which is a view of the same storage, so the two never drift
apart and no memory is duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import DataError


@dataclass(eq=False, repr=False)  # eq/repr on tensors would compare/print millions of values
class Dataset:
    """Images x [N, C, H, W] (float32 in [0, 1]) with optional labels y [N] (int64), and a name.

    Example::

        data = Dataset(torch.rand(100, 1, 28, 28), torch.randint(0, 10, (100,)), "mine")
        data.flat().shape                    # (100, 784), a view of x
        data.subset(data.y == 3)             # the images labelled 3
    """

    x: torch.Tensor  # [N, C, H, W] float32 in [0, 1]
    y: torch.Tensor | None = None  # [N] int64 class indices, or None when unlabelled
    name: str = "dataset"

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor):
            raise TypeError(f"Dataset.x must be a torch.Tensor, got {type(self.x).__name__}")
        if self.x.ndim != 4:
            raise DataError(f"Dataset.x must have shape [N, C, H, W], got {tuple(self.x.shape)}")
        if not self.x.is_floating_point():
            # uint8 would be ambiguous (0-1 or 0-255?); the loaders do the scaling explicitly.
            raise TypeError(f"Dataset.x must be float32 in [0, 1], got dtype {self.x.dtype}")
        if self.x.dtype != torch.float32:
            self.x = self.x.float()
        if not self.x.is_contiguous():
            # flat() promises a view; that needs contiguous storage.
            self.x = self.x.contiguous()
        if self.y is not None:
            if not isinstance(self.y, torch.Tensor):
                raise TypeError(f"Dataset.y must be a torch.Tensor or None, got {type(self.y).__name__}")
            if self.y.is_floating_point() or self.y.is_complex():
                raise TypeError(f"Dataset.y must hold integer class indices, got dtype {self.y.dtype}")
            if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
                raise DataError(
                    f"Dataset.y must have shape [{self.x.shape[0]}] to match x, got {tuple(self.y.shape)}"
                )
            if self.y.dtype != torch.int64:
                self.y = self.y.long()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def dim(self) -> int:
        """C * H * W: the length of one flattened image."""
        c, h, w = self.image_shape
        return c * h * w

    @property
    def num_classes(self) -> int | None:
        """max label + 1 (None when unlabelled or empty)."""
        if self.y is None or self.y.numel() == 0:
            return None
        return int(self.y.max().item()) + 1

    def flat(self) -> torch.Tensor:
        """Permutation-invariant view ``[N, C*H*W]`` sharing storage with ``x`` (no copy)."""
        return self.x.view(self.x.shape[0], self.dim)  # [N, D]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx: slice | torch.Tensor | list[int]) -> Dataset:
        """Rows selected by a slice, an index tensor/list, or a boolean mask."""
        if isinstance(idx, int):
            # x[3] would drop the batch dimension; a one-image dataset needs a slice or [3].
            raise TypeError("Dataset.subset takes a slice or an index tensor, not an int; use [i] or i:i+1")
        if not isinstance(idx, (slice, torch.Tensor)):
            idx = torch.as_tensor(idx)
        if isinstance(idx, torch.Tensor) and idx.device != self.x.device:
            idx = idx.to(self.x.device)
        y = None if self.y is None else self.y[idx]
        return Dataset(self.x[idx], y, self.name)

    def __repr__(self) -> str:
        labels = "unlabelled" if self.y is None else f"{self.num_classes} classes"
        return f"Dataset(name={self.name!r}, n={len(self)}, image_shape={self.image_shape}, {labels})"
