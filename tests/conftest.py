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
