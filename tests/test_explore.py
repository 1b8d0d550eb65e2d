"""advrep.explore and `advrep sample --interpolate --neighbours`: interpolations between encoded real
images and the real images nearest to samples."""

import math

import pytest
import torch
from PIL import Image

from advrep.cli import main
from advrep.explore import PATHS, interpolate, interpolation_grid, nearest_real, neighbour_grid
from advrep.methods import build_method, make_config
from advrep.train import train

IMAGE = (1, 8, 8)


def tiny(name="bigan", **kw):
    torch.manual_seed(0)
    cfg = make_config(name, hidden=16, latent_dim=3, image_shape=list(IMAGE), **kw)
    method = build_method(cfg, IMAGE)
    with torch.no_grad():  # freshly built output layers start at zero (G(z) = 0.5 everywhere): stir them
        for p in method.nets.parameters():
            p.add_(0.3 * torch.randn_like(p))
    method.nets.eval()
    return method


def images(n, seed=0):
    return torch.rand(n, *IMAGE, generator=torch.Generator().manual_seed(seed))  # [n, 1, 8, 8]


@pytest.mark.parametrize("name", ["bigan", "ali", "aae"])
def test_interpolation_ends_are_the_reconstructions(name):
    method = tiny(name)
    x_a, x_b = images(3, 0), images(3, 1)
    frames = interpolate(method, x_a, x_b, steps=5)
    assert frames.shape == (3, 5, *IMAGE)
    with torch.no_grad():
        torch.testing.assert_close(frames[:, 0], method.reconstruct(x_a))
        torch.testing.assert_close(frames[:, -1], method.reconstruct(x_b))
        z_mid = (method.encode(x_a) + method.encode(x_b)) / 2  # t = 0.5 on the straight line
        torch.testing.assert_close(frames[:, 2], method.generate(z_mid))
    assert not torch.allclose(frames[:, 2], frames[:, 0])  # the middle is somewhere else


def test_paths_linear_midpoint_and_slerp_keeps_the_norm():
    a = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 3.0], [2.0, 2.0]])  # second pair is parallel: slerp falls back to the line
    t = torch.linspace(0, 1, 5)
    line = PATHS["linear"](a, b, t)
    assert line.shape == (2, 5, 2)
    torch.testing.assert_close(line[:, 2], (a + b) / 2)
    arc = PATHS["slerp"](a, b, t)
    torch.testing.assert_close(arc[:, 0], a)
    torch.testing.assert_close(arc[:, -1], b)
    torch.testing.assert_close(arc[0].norm(dim=1), torch.full((5,), 3.0))  # a quarter circle of radius 3
    torch.testing.assert_close(arc[0, 2], torch.tensor([3 / math.sqrt(2), 3 / math.sqrt(2)]))
    torch.testing.assert_close(arc[1], line[1])


def test_interpolation_grid_rows_start_and_end_with_the_real_images():
    method = tiny()
    x = images(10)
    grid = interpolation_grid(method, x, pairs=4, steps=3, seed=1)
    assert grid.shape == (4 * 5, *IMAGE)
    rows = grid.reshape(4, 5, *IMAGE)
    for row in rows:
        first = [i for i in range(10) if torch.equal(x[i], row[0])]
        last = [i for i in range(10) if torch.equal(x[i], row[-1])]
        assert len(first) == 1 and len(last) == 1 and first != last


def test_nearest_real_matches_a_brute_force_search():
    method = tiny()
    train_x = images(50, 3)
    found = nearest_real(method, train_x, n=4, k=3, seed=2)
    with torch.no_grad():
        samples = method.generate(method.sample_prior(4, torch.Generator().manual_seed(2)))
    torch.testing.assert_close(found.samples, samples)
    d = torch.cdist(samples.reshape(4, -1).double(), train_x.reshape(50, -1).double())  # [4, 50]
    expected_d, expected_i = d.topk(3, largest=False)
    assert torch.equal(found.indices, expected_i)
    torch.testing.assert_close(found.distances.double(), expected_d, atol=1e-4, rtol=1e-4)
    assert torch.equal(found.neighbours, train_x[expected_i.reshape(-1)].reshape(4, 3, *IMAGE))
    assert neighbour_grid(found).shape == (4 * 4, *IMAGE)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs both an encoder and a generator.*no encoder"):
        interpolate(tiny("gan"), images(2), images(2))
    # aae_supervised encodes the style z but generates from [one-hot(label), z]: no path between encodings
    with pytest.raises(ValueError, match=r"codes of shape \(3,\) but its generator takes codes of width 13"):
        interpolate(tiny("aae_supervised"), images(2), images(2))
    with pytest.raises(ValueError, match="unknown interpolation path 'curvy'; choose one of linear, slerp"):
        interpolate(tiny(), images(2), images(2), path="curvy")
    with pytest.raises(ValueError, match="steps must be >= 2"):
        interpolate(tiny(), images(2), images(2), steps=1)
    with pytest.raises(ValueError, match="k must be between 1 and the 5 training images, got 6"):
        nearest_real(tiny(), images(5), k=6)
    with pytest.raises(ValueError, match="pass the data the model was trained on"):
        nearest_real(tiny(), torch.rand(5, 1, 4, 4))


def test_cli_sample_writes_interpolations_and_neighbours(tmp_path, capsys):
    cfg = make_config("bigan", data="digits", hidden=16, latent_dim=4, epochs=1, decay_epochs=0,
                      progress=False)
    run = tmp_path / "run"
    train(cfg, run)
    assert main(["sample", str(run), "-n", "16", "--interpolate", "--neighbours", "--pairs", "3",
                 "--steps", "4", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "interpolations.png" in out and "neighbours.png" in out
    # make_grid: side = count * 8 + (count + 1) * 2 pixels of padding
    assert Image.open(run / "interpolations.png").size == (6 * 8 + 7 * 2, 3 * 8 + 4 * 2)
    assert Image.open(run / "neighbours.png").size == (3 * 8 + 4 * 2, 8 * 8 + 9 * 2)
