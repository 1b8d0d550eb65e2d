"""The training loop shared by every method."""

from .loop import TrainingError, lr_scale, train, train_step

__all__ = ["TrainingError", "lr_scale", "train", "train_step"]
