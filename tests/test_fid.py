"""Domain FID / KID: the distances against independent computations, and the domain classifier."""

import hashlib
import json

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from advrep.data import load_dataset
from advrep.eval import (
    ClassifierError,
    FeatureStats,
    domain_fid,
    feature_stats_of,
    frechet_distance,
    kernel_distance,
    load_classifier,
    sample_batches,
    save_classifier,
    train_classifier,
)


def gaussians(n, d, seed, shift=0.0, scale=1.0):
    """n draws of one correlated Gaussian (the mixing matrix is fixed), moved and scaled. [n, d]"""
    a = np.random.default_rng(100 + d).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ a * scale + shift


def reference_fid(x, y):
    """The textbook formula with a general matrix square root (as pytorch-fid computes it)."""
    m1, m2 = x.mean(0), y.mean(0)
    c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm_on_random_gaussians():
    x, y = gaussians(400, 6, 0), gaussians(300, 6, 1, shift=0.3, scale=1.5)
    stats_x = FeatureStats().update(x)
    stats_y = FeatureStats().update(y)
    got = frechet_distance(stats_x.mean, stats_x.cov, stats_y.mean, stats_y.cov)
    assert got == pytest.approx(reference_fid(x, y), rel=1e-6)
    assert got > 1.0


def test_frechet_distance_closed_forms():
    d = 5
    a, b = np.arange(1.0, d + 1), np.full(d, 2.0)
    # Diagonal covariances: sum (sqrt(a_i) - sqrt(b_i))^2 plus the squared mean difference.
    m = np.linspace(-1, 1, d)
    want = (m ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(np.zeros(d), np.diag(a), m, np.diag(b)) == pytest.approx(want, rel=1e-10)
    # A set against itself is 0, against itself shifted by m exactly |m|^2 (same covariance).
    x = gaussians(500, d, 2)
    s, t = FeatureStats().update(x), FeatureStats().update(x + m)
    assert abs(frechet_distance(s.mean, s.cov, s.mean, s.cov)) < 1e-9
    assert frechet_distance(s.mean, s.cov, t.mean, t.cov) == pytest.approx((m ** 2).sum(), abs=1e-8)
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_streaming_statistics_equal_numpy_over_uneven_batches():
    x = gaussians(257, 7, 3, shift=2.0)
    stats = FeatureStats(keep=100)
    for start, stop in ((0, 1), (1, 64), (64, 200), (200, 257)):
        stats.update(torch.from_numpy(x[start:stop]).float())
    x32 = x.astype(np.float32).astype(np.float64)  # what the float32 tensors held
    assert stats.n == 257
    np.testing.assert_allclose(stats.mean, x32.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x32, rowvar=False), rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(stats.kept, x32[:100])
    with pytest.raises(ValueError, match="width"):
        stats.update(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least 2"):
        _ = FeatureStats().update(torch.zeros(1, 3)).cov


def test_kernel_distance_matches_numpy_and_is_near_zero_for_one_distribution():
    x, y = gaussians(60, 4, 4), gaussians(60, 4, 5, shift=1.0)
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1) ** 3

    m = x.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    want = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    # One subset holding every row: the estimate does not depend on the order the rows were drawn in.
    got, std = kernel_distance(x, y, subsets=1, subset_size=m)
    assert got == pytest.approx(want, rel=1e-5) and std == 0.0
    same, _ = kernel_distance(gaussians(2000, 4, 6), gaussians(2000, 4, 7), subsets=20, subset_size=500)
    assert abs(same) < 0.1 * got


@pytest.fixture(scope="module")
def digits_classifier():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    model, info = train_classifier(train.x, train.y, test_x=test.x, test_y=test.y, epochs=2, batch_size=32,
                                   lr=3e-3, width=16, feature_dim=32, seed=0)
    return model, info, train, test


def test_domain_classifier_learns_and_domain_fid_grows_with_noise_and_blur(digits_classifier):
    model, info, train, test = digits_classifier
    assert info["test_accuracy"] > 85.0  # a classifier whose features know the digits
    ref = feature_stats_of(model.features, train.x)

    def fid(x):
        s = feature_stats_of(model.features, x)
        return frechet_distance(s.mean, s.cov, ref.mean, ref.cov)

    base = fid(test.x)
    noise = torch.randn(test.x.shape, generator=torch.Generator().manual_seed(0))
    noisy = [fid((test.x + s * noise).clamp(0, 1)) for s in (0.1, 0.2, 0.4)]
    kernel = torch.tensor([1.0, 2.0, 1.0]).outer(torch.tensor([1.0, 2.0, 1.0])) / 16
    blurred, x = [], test.x
    for _ in range(2):
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel[None, None])
        blurred.append(fid(x))
    # real test vs real train is small next to what corruption adds, and each step adds more
    assert base < 0.25 * noisy[0] and base < 0.25 * blurred[-1]
    assert noisy == sorted(noisy) and blurred == sorted(blurred)
    assert abs(fid(train.x)) < 1e-6


def test_domain_fid_reports_the_hash_and_streams_generated_batches(digits_classifier):
    model, _, train, test = digits_classifier
    calls = []

    def generate(k):
        calls.append(k)
        return test.x[sum(calls) - k: sum(calls)]

    out = domain_fid(model.features, sample_batches(generate, 300, batch_size=128), train.x,
                     classifier_sha256="abc", kid_subsets=5, kid_subset_size=100)
    assert calls == [128, 128, 44] and out["n_generated"] == 300 and out["n_real"] == len(train)
    assert out["classifier_sha256"] == "abc"
    whole = feature_stats_of(model.features, test.x[:300])
    ref = feature_stats_of(model.features, train.x)
    want = frechet_distance(whole.mean, whole.cov, ref.mean, ref.cov)
    assert out["domain_fid"] == pytest.approx(want, rel=1e-4)


def test_saved_classifier_round_trips_and_refuses_altered_weights(digits_classifier, tmp_path):
    model, info, _, test = digits_classifier
    digest = save_classifier(model, tmp_path / "clf", {"data": "digits", **info})
    weights = tmp_path / "clf" / "classifier.safetensors"
    assert digest == hashlib.sha256(weights.read_bytes()).hexdigest()
    loaded, record = load_classifier(tmp_path / "clf")
    assert record["sha256"] == digest and record["data"] == "digits"
    with torch.no_grad():
        assert torch.equal(loaded.features(test.x[:20]), model.features(test.x[:20]))
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1  # one flipped bit in the last weight
    weights.write_bytes(bytes(raw))
    with pytest.raises(ClassifierError, match="SHA256"):
        load_classifier(tmp_path / "clf")
    with pytest.raises(ClassifierError, match="train-classifier"):
        load_classifier(tmp_path / "missing")
    (tmp_path / "clf" / "classifier.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ClassifierError, match="not an advrep"):
        load_classifier(tmp_path / "clf")
