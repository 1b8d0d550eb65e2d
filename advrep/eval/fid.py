"""Frechet distance and kernel distance between two image sets, in any feature extractor's space.

FID (Heusel et al. 2017) fits a Gaussian to each set's features and reports
``|mu_1 - mu_2|^2 + tr(C_1 + C_2 - 2 (C_1 C_2)^(1/2))``; KID (Binkowski et al. 2018, section 3) is the
unbiased squared MMD with the cubic polynomial kernel ``k(a, b) = (a.b / d + 1)^3``, averaged over
random subsets. Both are usually computed in Inception-v3's pool features; we have no Inception
weights here, so they are computed in the penultimate features of a small classifier trained on the
dataset itself (``advrep.eval.classifier``). Those numbers are called **domain FID / domain KID**
and must be quoted with the classifier's SHA256: they are comparable only between runs scored by the
same classifier, and never with published Inception FIDs.

Features stream through a mean/covariance accumulator (float64 sums), so sets of any size fit in
memory; KID keeps only the first ``keep`` feature rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from ._common import as_features

__all__ = ["FeatureStats", "frechet_distance", "kernel_distance", "feature_stats_of", "domain_fid",
           "sample_batches"]


class FeatureStats:
    """Running count, mean [D] and covariance [D, D] of feature rows, in float64; keeps the first
    ``keep`` rows as well (for KID)."""

    def __init__(self, *, keep: int = 0):
        self.keep = keep
        self.n = 0
        self._sum: np.ndarray | None = None  # [D]
        self._outer: np.ndarray | None = None  # [D, D], sum of x x^T
        self._kept: list[np.ndarray] = []
        self._kept_rows = 0

    def update(self, feats) -> FeatureStats:
        """Add a batch of features [B, D] to the running sums; returns self, so updates chain."""
        x = as_features(feats, "feats").numpy().astype(np.float64)  # [B, D]
        if self._sum is None:
            self._sum, self._outer = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
        elif x.shape[1] != self._sum.shape[0]:
            raise ValueError(f"features of width {x.shape[1]} added to statistics of width "
                             f"{self._sum.shape[0]}; use one extractor for the whole set.")
        self.n += x.shape[0]
        self._sum += x.sum(0)
        self._outer += x.T @ x
        if self._kept_rows < self.keep:
            take = x[: self.keep - self._kept_rows]
            self._kept.append(take)
            self._kept_rows += take.shape[0]
        return self

    @property
    def mean(self) -> np.ndarray:
        """Mean feature vector [D] over everything added so far."""
        self._need(1)
        return self._sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (divides by n - 1), as numpy.cov."""
        self._need(2)
        mu = self.mean
        return (self._outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    @property
    def kept(self) -> np.ndarray:
        """The first ``keep`` feature rows, [min(n, keep), D]."""
        return np.concatenate(self._kept) if self._kept else np.zeros((0, 0))

    def _need(self, n: int) -> None:
        if self.n < n:
            raise ValueError(f"feature statistics need at least {n} rows, got {self.n}; add more images.")


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance via its eigendecomposition; tiny negative eigenvalues
    (round-off) are clipped to zero."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mean1, cov1, mean2, cov2) -> float:
    """The Frechet distance between N(mean1, cov1) and N(mean2, cov2).

    tr (C1 C2)^(1/2) is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix C1^(1/2) C2 C1^(1/2), which has the same eigenvalues as C1 C2; this needs no general
    (complex) matrix square root and cannot return an imaginary part.
    """
    m1, m2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    c1, c2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if m1.shape != m2.shape or c1.shape != c2.shape or c1.shape != (m1.shape[0], m1.shape[0]):
        raise ValueError(f"mean/cov shapes disagree: {m1.shape}, {c1.shape}, {m2.shape}, {c2.shape}.")
    s1 = _sqrt_psd(c1)
    eig = np.linalg.eigvalsh(s1 @ c2 @ s1)
    tr_sqrt = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = m1 - m2
    return float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * tr_sqrt)


def kernel_distance(feats1, feats2, *, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """(mean, std) over ``subsets`` random subsets of the unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3.

    Each subset draws min(subset_size, n1, n2) rows from each set without replacement.
    """
    a = as_features(feats1, "feats1").double()  # [N1, D]
    b = as_features(feats2, "feats2").double()  # [N2, D]
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}.")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 rows in each set, got {a.shape[0]} and {b.shape[0]}.")
    d = a.shape[1]
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=gen)[:m]]  # [m, D]
        y = b[torch.randperm(b.shape[0], generator=gen)[:m]]  # [m, D]
        kxx = (x @ x.T / d + 1) ** 3  # [m, m]
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        off = m * (m - 1)
        mmd = ((kxx.sum() - kxx.diagonal().sum()) / off + (kyy.sum() - kyy.diagonal().sum()) / off
               - 2 * kxy.mean())
        values.append(float(mmd))
    return float(np.mean(values)), float(np.std(values))


def sample_batches(generate: Callable[[int], Tensor], n: int, *, batch_size: int = 500) -> Iterable[Tensor]:
    """Lazily yield ``generate(k)`` batches totalling n images, so a generator's samples can be
    scored without holding them all."""
    if n < 2:
        raise ValueError(f"need at least 2 generated images, got n={n}.")
    for start in range(0, n, batch_size):
        yield generate(min(batch_size, n - start))


@torch.no_grad()
def feature_stats_of(extract: Callable[[Tensor], Tensor], images: Tensor | Iterable[Tensor], *,
                     batch_size: int = 500, keep: int = 0) -> FeatureStats:
    """Stream images ([N, C, H, W], or an iterable of such batches) through ``extract`` into FeatureStats."""
    stats = FeatureStats(keep=keep)
    batches = (images[i:i + batch_size] for i in range(0, images.shape[0], batch_size)) \
        if isinstance(images, Tensor) else images
    for batch in batches:
        stats.update(extract(batch).float().cpu())
    return stats


def domain_fid(extract: Callable[[Tensor], Tensor], generated: Tensor | Iterable[Tensor], real: Tensor, *,
               classifier_sha256: str, batch_size: int = 500, kid_subsets: int = 100,
               kid_subset_size: int = 1000, seed: int = 0) -> dict:
    """Domain FID and KID of ``generated`` images against ``real`` ones, in ``extract``'s features.

    Returns {"domain_fid", "domain_kid", "domain_kid_std", "n_generated", "n_real",
    "classifier_sha256"}; the hash travels with the numbers because they mean nothing without it.
    """
    keep = kid_subset_size * 4
    fake = feature_stats_of(extract, generated, batch_size=batch_size, keep=keep)
    ref = feature_stats_of(extract, real, batch_size=batch_size, keep=keep)
    kid, kid_std = kernel_distance(fake.kept, ref.kept, subsets=kid_subsets, subset_size=kid_subset_size,
                                   seed=seed)
    return {"domain_fid": frechet_distance(fake.mean, fake.cov, ref.mean, ref.cov), "domain_kid": kid,
            "domain_kid_std": kid_std, "n_generated": fake.n, "n_real": ref.n,
            "classifier_sha256": classifier_sha256}
