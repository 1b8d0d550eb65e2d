"""Classification and clustering error of discrete assignments, as the AAE paper reports them.

* ``classification_error``: percent of queries whose predicted class differs from the label (the
  semi-supervised test error of section 5, table 2);
* ``clustering_error``: every cluster takes the majority label of the training points assigned to it,
  then test points are classified through their cluster (section 6, table 3);
* ``mean_std``: the "mean (std)" over seeds that table 2 prints.

Plain numbers out; inputs may be torch tensors or numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import as_labels

__all__ = ["classification_error", "cluster_labels", "clustering_error", "mean_std"]


def classification_error(pred, y) -> float:
    """Percent of entries where pred != y; both [N] integer class ids."""
    pred_arr = as_labels(pred, "pred", len(pred))
    y_arr = as_labels(y, "y", len(pred_arr))
    if len(y_arr) == 0:
        raise ValueError("classification_error needs at least one prediction, got none")
    return float(100.0 * np.mean(pred_arr != y_arr))


def cluster_labels(assign, y, *, clusters: int | None = None) -> np.ndarray:
    """The majority label of each cluster's points: [clusters] int64.

    assign [N]: cluster ids in [0, clusters); y [N]: labels. Ties go to the smallest label. A cluster
    with no points takes the majority label of all points, so a test point that lands there is still
    classified (and counted as an error when that guess is wrong)."""
    a = as_labels(assign, "assign", len(assign))
    labels = as_labels(y, "y", len(a))
    if len(a) == 0:
        raise ValueError("cluster_labels needs at least one assigned point, got none")
    if a.min() < 0:
        raise ValueError(f"cluster ids must be >= 0, got {int(a.min())}")
    k = int(a.max()) + 1 if clusters is None else clusters
    if a.max() >= k:
        raise ValueError(f"cluster id {int(a.max())} is outside [0, {k}); pass clusters= the number of "
                         "clusters")
    if labels.min() < 0:
        raise ValueError(f"labels must be >= 0, got {int(labels.min())}")
    n_labels = int(labels.max()) + 1
    counts = np.zeros((k, n_labels), dtype=np.int64)  # [K, C]
    np.add.at(counts, (a, labels), 1)
    majority = counts.argmax(axis=1)  # first maximum: ties go to the smallest label
    overall = int(np.bincount(labels).argmax())
    majority[counts.sum(axis=1) == 0] = overall
    return majority.astype(np.int64)


def clustering_error(train_assign, train_y, test_assign, test_y, *, clusters: int | None = None) -> float:
    """Percent test error when each cluster predicts the majority label of its training points."""
    train_a = as_labels(train_assign, "train_assign", len(train_assign))
    test_a = as_labels(test_assign, "test_assign", len(test_assign))
    k = clusters if clusters is not None else int(max(train_a.max(initial=-1), test_a.max(initial=-1))) + 1
    mapping = cluster_labels(train_a, train_y, clusters=k)
    if len(test_a) and (test_a.min() < 0 or test_a.max() >= k):
        raise ValueError(f"test cluster ids must lie in [0, {k}), got [{int(test_a.min())}, "
                         f"{int(test_a.max())}]")
    return classification_error(mapping[test_a], test_y)


def mean_std(values) -> tuple[float, float]:
    """(mean, sample standard deviation) of a few runs' numbers; std is 0 for a single run."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("mean_std needs at least one value")
    if not all(math.isfinite(x) for x in v):
        raise ValueError(f"mean_std got a non-finite value in {v}")
    mean = sum(v) / len(v)
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return mean, std
