"""The training loop shared by every method."""

from .loop import GeneratorCollapsed, TrainingError, lr_scale, train, train_step

__all__ = ["GeneratorCollapsed", "TrainingError", "lr_scale", "train", "train_step"]
