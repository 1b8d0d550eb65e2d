"""Linear evaluation of frozen features: a multinomial logistic-regression probe and BigBiGAN's BN+CReLU head.

The probe minimises the same objective as scikit-learn's ``LogisticRegression`` (multinomial, L2 on the
weights but not the bias), ``mean cross-entropy + weight_decay / 2 * |W|^2``, so with the default
``weight_decay = 1 / n_train`` (sklearn's ``C = 1``) the two reach the same solution.  Full-batch L-BFGS
is the default: with ~10 classes every step is two skinny matrix products over the feature matrix,
so 100 iterations on 60k x 1024 features take seconds on two cores, with no learning rate to tune and
no randomness.  Minibatch Adam is available for feature sets too large for that.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import as_features, as_labels

__all__ = ["linear_probe", "bn_crelu", "feature_stats"]


def feature_stats(feats, *, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-feature (mean [D], std [D]) as batch norm computes them: std = sqrt(biased var + eps).

    Compute these on the training features and pass them to ``bn_crelu`` for the test features too.
    """
    x = as_features(feats, "feats")  # [N, D]
    if x.shape[0] == 0:
        raise ValueError("feats is empty")
    var, mean = torch.var_mean(x, dim=0, correction=0)  # [D], [D]
    return mean, (var + eps).sqrt()


def bn_crelu(feats, mean=None, std=None, *, eps: float = 1e-5) -> Tensor:
    """BigBiGAN's linear-evaluation input: h = (feats - mean) / std, returned as [ReLU(h), ReLU(-h)].

    feats [N, D] -> [N, 2D] float32.  The batch norm has no learned scale or shift.  ``mean``/``std``
    default to the statistics of ``feats`` itself (see ``feature_stats``); pass the training set's
    statistics when transforming test features, so both go through the same map.  CReLU keeps the
    sign information a plain ReLU would throw away while keeping the head's input non-negative.
    """
    x = as_features(feats, "feats")  # [N, D]
    if mean is None or std is None:
        own_mean, own_std = feature_stats(x, eps=eps)
        mean = own_mean if mean is None else mean
        std = own_std if std is None else std
    mean = as_features(mean, "mean").reshape(-1)  # [D]
    std = as_features(std, "std").reshape(-1)  # [D]
    if mean.shape[0] != x.shape[1] or std.shape[0] != x.shape[1]:
        raise ValueError(f"mean/std must have {x.shape[1]} entries, got {mean.shape[0]} and {std.shape[0]}")
    if bool((std <= 0).any()):
        raise ValueError("std must be positive")
    h = (x - mean) / std  # [N, D]
    return torch.cat([F.relu(h), F.relu(-h)], dim=1)  # [N, 2D]


def _standardize(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    """Scale both sets with the training mean/std; constant features become 0 rather than NaN."""
    var, mean = torch.var_mean(train, dim=0, correction=0)  # [D]
    std = var.sqrt()
    std = torch.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def _fit_lbfgs(x: Tensor, y: Tensor, n_cls: int, *, iters: int, lr: float, wd: float) -> tuple[Tensor, Tensor]:
    """Full-batch L-BFGS with strong-Wolfe line search from zeros (convex problem: no seed needed)."""
    w = torch.zeros(n_cls, x.shape[1], requires_grad=True)  # [C, D]
    b = torch.zeros(n_cls, requires_grad=True)  # [C]
    opt = torch.optim.LBFGS(
        [w, b],
        lr=lr,
        max_iter=iters,
        max_eval=int(iters * 1.5) + 10,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(torch.addmm(b, x, w.T), y) + 0.5 * wd * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _fit_adam(
    x: Tensor, y: Tensor, n_cls: int, *, epochs: int, lr: float, wd: float, batch_size: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Minibatch Adam on the same objective; the generator seeds the shuffles, so runs repeat exactly."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(n_cls, x.shape[1], requires_grad=True)  # [C, D]
    b = torch.zeros(n_cls, requires_grad=True)  # [C]
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for s in range(0, x.shape[0], batch_size):
            idx = perm[s : s + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(torch.addmm(b, x[idx], w.T), y[idx]) + 0.5 * wd * (w * w).sum()
            loss.backward()
            opt.step()
    return w.detach(), b.detach()


def linear_probe(
    train_feats,
    train_labels,
    test_feats,
    test_labels,
    *,
    epochs: int = 100,
    lr: float | None = None,
    weight_decay: float | None = None,
    batch_size: int | None = None,
    standardize: bool = True,
    seed: int = 0,
    optimizer: str = "lbfgs",
) -> float:
    """Test accuracy in percent (0-100) of a multinomial logistic regression fitted on the train features.

    epochs: L-BFGS iterations ("lbfgs") or passes over the data ("adam").
    lr: step size; default 1.0 for L-BFGS (scaled by its line search), 1e-3 for Adam.
    weight_decay: L2 coefficient on the mean loss; default 1 / n_train, i.e. sklearn's C = 1.
    batch_size: Adam minibatch size (default 256); L-BFGS always uses the full batch.
    standardize: scale features by the training mean/std first (as one would before sklearn).
    seed: seeds Adam's shuffling; L-BFGS is deterministic anyway.  Same inputs + seed -> same result.
    """
    train = as_features(train_feats, "train_feats")  # [N, D]
    test = as_features(test_feats, "test_feats")  # [T, D]
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train features have {train.shape[1]} dims but test features have {test.shape[1]}")
    y_train = as_labels(train_labels, "train_labels", train.shape[0])
    y_test = as_labels(test_labels, "test_labels", test.shape[0])
    if train.shape[0] == 0 or test.shape[0] == 0:
        raise ValueError("train and test features must be non-empty")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    classes, y_idx = np.unique(y_train, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("linear_probe needs at least two classes in train_labels")
    y = torch.from_numpy(y_idx.reshape(-1).astype(np.int64))  # [N] class indices 0..C-1
    if standardize:
        train, test = _standardize(train, test)
    wd = 1.0 / train.shape[0] if weight_decay is None else float(weight_decay)
    with torch.enable_grad():
        if optimizer == "lbfgs":
            w, b = _fit_lbfgs(train, y, len(classes), iters=epochs, lr=1.0 if lr is None else lr, wd=wd)
        elif optimizer == "adam":
            w, b = _fit_adam(
                train,
                y,
                len(classes),
                epochs=epochs,
                lr=1e-3 if lr is None else lr,
                wd=wd,
                batch_size=256 if batch_size is None else batch_size,
                seed=seed,
            )
        else:
            raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    pred = classes[torch.addmm(b, test, w.T).argmax(1).numpy()]  # [T] original label values
    return float(100.0 * np.mean(pred == y_test))
