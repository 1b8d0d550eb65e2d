"""Shared fixtures. Tests never download: MNIST comes from ../shared/data/mnist (or $ADVREP_TEST_MNIST)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("ADVREP_TEST_MNIST", REPO.parent / "shared" / "data" / "mnist"))

# Two cores: keep torch from oversubscribing them when pytest runs beside other work.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {MNIST_DIR}; set ADVREP_TEST_MNIST")
    return MNIST_DIR


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a URL in a test is a bug: fail it loudly."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def collapsed_generator(monkeypatch):
    """Training builds methods whose MLP G draws one image for every latent, for good: layer 2 sees a
    constant, batch norm makes it 0, and ReLU passes no gradient back from 0."""
    import advrep.train.loop as loop

    build = loop.build_method

    def collapsed(cfg, image_shape):
        method = build(cfg, image_shape)
        with torch.no_grad():
            method.nets["G"].fc2.weight.zero_()
            method.nets["G"].skip.weight.zero_()
        return method

    monkeypatch.setattr(loop, "build_method", collapsed)
    return monkeypatch


@pytest.fixture(scope="session")
def noisy_digits():
    """(train, test): 10,240 noisy copies of the embedded digits' training images, enough for the 10k
    validation split that keep_best scores on, and the digits' test split."""
    from advrep.data import Dataset, load_dataset

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    gen = torch.Generator().manual_seed(0)
    reps = -(-10240 // len(train))
    x = (train.x.repeat(reps, 1, 1, 1)[:10240] + 0.15 * torch.randn(10240, *train.image_shape, generator=gen))
    return Dataset(x.clamp(0, 1), train.y.repeat(reps)[:10240], "noisy-digits"), test
