"""A small CNN trained on the dataset itself, whose penultimate features score sample quality.

Inception-v3 weights are not available here (and an ImageNet network sees MNIST digits poorly anyway),
so sample quality is measured in the features of a classifier trained on the same data: "domain FID"
(``advrep.eval.fid``). Such a number is meaningful only together with the exact classifier, so a
saved classifier is a directory holding

    classifier.safetensors   the weights (loading never executes code)
    classifier.json          its settings, test accuracy and the weights file's SHA256

and ``load_classifier`` refuses weights whose hash differs from the JSON's. Quote the hash beside
every domain-FID number.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["ClassifierError", "DomainClassifier", "train_classifier", "save_classifier", "load_classifier",
           "file_sha256"]

FORMAT = "advrep-domain-classifier-1"
WEIGHTS, INFO = "classifier.safetensors", "classifier.json"


class ClassifierError(ValueError):
    """A saved domain classifier that is missing, corrupt, altered or does not fit the data."""


class DomainClassifier(nn.Module):
    """Three stages of 3x3 convolution, batch norm and ReLU (width, 2 width, 4 width channels), 2x2 max
    pooling between them, global average pooling, one hidden layer (the features) and the class
    logits. x [B, C, H, W] -> logits [B, num_classes]. Small on purpose: about 2M multiply-adds per
    28x28 image at width 16, so it trains on MNIST in minutes on a CPU."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, *, width: int = 16,
                 feature_dim: int = 128):
        super().__init__()
        c, h, w = image_shape
        if min(h, w) < 4:
            raise ValueError(f"the domain classifier needs images of at least 4x4 pixels, got {h}x{w}.")
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.width, self.feature_dim = width, feature_dim

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.convs = nn.Sequential(*stage(c, width), nn.MaxPool2d(2),  # [B, w, H/2, W/2]
                                   *stage(width, 2 * width), nn.MaxPool2d(2),  # [B, 2w, H/4, W/4]
                                   *stage(2 * width, 4 * width))  # [B, 4w, H/4, W/4]
        self.fc = nn.Linear(4 * width, feature_dim)
        self.out = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, [B, feature_dim]: what domain FID compares."""
        h = self.convs(x).mean(dim=(2, 3))  # [B, 4 * width]
        return F.relu(self.fc(h))  # [B, feature_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, num_classes] for images x [B, C, H, W]."""
        return self.out(self.features(x))

    def settings(self) -> dict:
        """What rebuilds this network (saved beside its weights): image shape, classes, widths."""
        return {"image_shape": list(self.image_shape), "num_classes": self.num_classes, "width": self.width,
                "feature_dim": self.feature_dim}


@torch.no_grad()
def accuracy(model: DomainClassifier, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1000) -> float:
    """Percent of x classified as y, in eval mode."""
    was = model.training
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, x.shape[0], batch_size))
    model.train(was)
    return 100.0 * correct / max(1, x.shape[0])


def train_classifier(train_x: torch.Tensor, train_y: torch.Tensor, *, test_x: torch.Tensor | None = None,
                     test_y: torch.Tensor | None = None, epochs: int = 3, batch_size: int = 128,
                     lr: float = 3e-3, width: int = 16, feature_dim: int = 128,
                     seed: int = 0) -> tuple[DomainClassifier, dict]:
    """Fit a DomainClassifier with Adam and cross-entropy; (model in eval mode, info dict).

    Deterministic for a given seed on the CPU: initialisation and shuffling draw from their own seeded
    generators, and the global RNG state is restored afterwards.
    """
    if train_y is None:
        raise ValueError("train_classifier needs labels; the dataset has none (a domain classifier is "
                         "trained to predict the classes).")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    num_classes = int(train_y.max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(tuple(train_x.shape[1:]), num_classes, width=width, feature_dim=feature_dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    n = train_x.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    info = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "n_train": n,
            "train_accuracy": accuracy(model, train_x, train_y)}
    if test_x is not None and test_y is not None:
        info["test_accuracy"] = accuracy(model, test_x, test_y)
    return model, info


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def save_classifier(model: DomainClassifier, directory: str | os.PathLike, info: dict | None = None) -> str:
    """Write the weights and the JSON (settings, ``info``, the weights' SHA256); returns the hash."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(weights), metadata={"format": FORMAT})
    digest = file_sha256(weights)
    record = {"format": FORMAT, **model.settings(), **(info or {}), "sha256": digest}
    tmp = directory / f".{INFO}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, directory / INFO)
    return digest


def load_classifier(directory: str | os.PathLike) -> tuple[DomainClassifier, dict]:
    """(model in eval mode, its JSON record) from a directory written by ``save_classifier``."""
    directory = Path(directory)
    weights, info_path = directory / WEIGHTS, directory / INFO
    for path in (weights, info_path):
        if not path.is_file():
            raise ClassifierError(f"domain classifier {directory} lacks {path.name}; train one with "
                             "`advrep train-classifier --data NAME --out DIR`.")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise ClassifierError(f"{info_path} is not valid JSON ({exc}); retrain the classifier.") from exc
    if info.get("format") != FORMAT:
        raise ClassifierError(f"{info_path} is not an advrep domain classifier "
                              f"(format {info.get('format')!r}).")
    digest = file_sha256(weights)
    if digest != info.get("sha256"):
        raise ClassifierError(f"{weights} has SHA256 {digest}, but {info_path} records {info.get('sha256')}: "
                              "the weights were changed or replaced, so its domain FIDs would not be "
                              "comparable. Retrain it, or restore the original file.")
    model = DomainClassifier(tuple(info["image_shape"]), info["num_classes"], width=info["width"],
                             feature_dim=info["feature_dim"])
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), info
