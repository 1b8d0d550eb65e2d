"""Tests for advrep.images: grid layout, PNG output, clamping, reconstruction pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from advrep.images import make_grid, pair_grid, save_grid


def _read(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im)


@pytest.mark.parametrize(
    "n, nrow, padding, expect_hw",
    [
        (7, 3, 2, (3 * 5 + 4 * 2, 3 * 4 + 4 * 2)),  # 3 rows x 3 cols, last row partly empty
        (7, None, 2, (3 * 5 + 4 * 2, 3 * 4 + 4 * 2)),  # default nrow = ceil(sqrt(7)) = 3
        (4, 10, 1, (1 * 5 + 2 * 1, 4 * 4 + 5 * 1)),  # fewer images than nrow: one row of 4
        (6, 2, 0, (3 * 5, 2 * 4)),  # no padding
    ],
)
def test_save_grid_size_grayscale(tmp_path, n, nrow, padding, expect_hw):
    images = torch.rand(n, 1, 5, 4)
    path = save_grid(images, tmp_path / "g.png", nrow=nrow, padding=padding)
    assert path == tmp_path / "g.png"
    arr = _read(path)
    assert arr.shape == expect_hw and arr.dtype == np.uint8  # mode "L"
    # [N, H, W] is the same picture as [N, 1, H, W]
    np.testing.assert_array_equal(arr, make_grid(images[:, 0], nrow=nrow, padding=padding))


def test_save_grid_rgb_and_values(tmp_path):
    images = np.zeros((2, 3, 2, 2), dtype=np.float32)
    images[0, 0] = 1.0  # red
    images[1, 2] = 0.5  # half blue
    arr = _read(save_grid(images, tmp_path / "rgb.png", nrow=2, padding=1, pad_value=0.0))
    assert arr.shape == (1 * 2 + 2 * 1, 2 * 2 + 3 * 1, 3)
    np.testing.assert_array_equal(arr[1, 1], [255, 0, 0])
    np.testing.assert_array_equal(arr[1, 4], [0, 0, 128])  # round(0.5 * 255) = 128
    np.testing.assert_array_equal(arr[0, 0], [0, 0, 0])  # padding


def test_values_are_clamped_and_nan_is_black(tmp_path):
    images = torch.tensor([[[-1.0, 2.0], [float("nan"), 0.2]]])  # [1, 2, 2]
    arr = _read(save_grid(images, tmp_path / "c.png", padding=1, pad_value=1.0))
    expect = [[255, 255, 255, 255], [255, 0, 255, 255], [255, 0, 51, 255], [255, 255, 255, 255]]
    np.testing.assert_array_equal(arr, expect)  # -1 -> 0, 2 -> 255, NaN -> 0, 0.2 -> 51; border 255


def test_flat_images_are_reshaped():
    flat = np.random.default_rng(0).random((3, 784))
    grid = make_grid(flat, nrow=3, padding=0)
    assert grid.shape == (28, 84)
    np.testing.assert_array_equal(grid[:, 28:56], np.rint(flat[1].reshape(28, 28) * 255).astype(np.uint8))
    assert make_grid(np.zeros((2, 3 * 16)), padding=0).shape == (4, 8, 3)


def test_pair_grid_interleaves_originals_and_reconstructions(tmp_path):
    n, h, w = 5, 3, 3
    x = torch.stack([torch.full((1, h, w), i / 16) for i in range(n)])  # image i has value i / 16
    x_hat = 1.0 - x  # (binary fractions, so no pixel value lands on a rounding half-way point)
    arr = _read(pair_grid(x, x_hat, tmp_path / "sub" / "pairs.png", ncol=2))  # parent folder created
    # rows of 2 pairs = 4 images wide; 5 pairs -> 3 rows
    assert arr.shape == (3 * h + 4 * 2, 4 * w + 5 * 2)

    def cell(i):  # pixel value of grid cell i (row-major)
        r, c = divmod(i, 4)
        return arr[2 + r * (h + 2), 2 + c * (w + 2)]

    for i in range(n):
        assert cell(2 * i) == round(i / 16 * 255)  # x_i
        assert cell(2 * i + 1) == round((1 - i / 16) * 255)  # its reconstruction right beside it


def test_writes_atomically_and_overwrites(tmp_path):
    path = tmp_path / "a.png"
    save_grid(torch.zeros(1, 2, 2), path)
    save_grid(torch.ones(4, 2, 2), path)  # replaces the old file
    assert _read(path).shape == (2 * 2 + 3 * 2, 2 * 2 + 3 * 2)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left behind


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        make_grid(torch.zeros(2, 2, 4, 4))  # two channels
    with pytest.raises(ValueError):
        make_grid(torch.zeros(0, 1, 4, 4))
    with pytest.raises(ValueError):
        make_grid(np.zeros((2, 10)))  # not a square
    with pytest.raises(ValueError):
        pair_grid(torch.zeros(2, 4, 4), torch.zeros(3, 4, 4), tmp_path / "p.png")
    assert not list(tmp_path.iterdir())
