"""Looking inside a trained model: latent interpolations between real images, and the real images
nearest to generated samples.

Interpolation (Radford et al. 2016, DCGAN section 6.1 "walking in the latent space"; the ALI paper
shows it between encoded real faces): encode two held-out images, walk the straight line (or the great
circle, White 2016 "Sampling Generative Networks", for Gaussian priors) between their codes and decode
each point. Smooth, plausible in-betweens say the generator's latent
space is organised; the end columns show how faithful the reconstructions G(E(x)) are.

Nearest neighbours (the GAN literature's memorisation check, e.g. Goodfellow et al. 2014 figure 2):
for each sample G(z), the training images closest to it in pixel space. A sample that copies one
training image sits at a near-zero distance from it.

``advrep sample RUN --interpolate`` and ``--neighbours`` write these grids as PNGs; ``advrep report``
embeds them. Every function here takes a trained ``advrep.methods.Method`` and runs it in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .eval.knn import nearest_neighbours
from .images import save_grid

__all__ = ["PATHS", "interpolate", "interpolation_grid", "Neighbours", "nearest_real", "neighbour_grid",
           "save_interpolations", "save_neighbours", "explore_run"]


def _lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """(1 - t) a + t b for codes a, b [P, d] and fractions t [S]: [P, S, d]."""
    t = t.view(1, -1, 1)
    return (1 - t) * a[:, None] + t * b[:, None]


def _slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation (White 2016): sin((1-t) w)/sin(w) a + sin(t w)/sin(w) b, w the
    angle between a and b. Under a Gaussian prior, points on the straight line near the middle have a
    norm the prior almost never draws; the great circle keeps it. Falls back to lerp for parallel codes.
    a, b [P, d], t [S] -> [P, S, d]."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1.0, 1.0)  # [P]
    omega = torch.arccos(cos)[:, None, None]  # [P, 1, 1]
    t = t.view(1, -1, 1)
    sin = torch.sin(omega)
    near = sin.abs() < 1e-6
    safe = torch.where(near, torch.ones_like(sin), sin)
    arc = torch.sin((1 - t) * omega) / safe * a[:, None] + torch.sin(t * omega) / safe * b[:, None]
    return torch.where(near, _lerp(a, b, t.view(-1)), arc)


# path name -> (codes a [P, d], codes b [P, d], fractions t [S]) -> codes [P, S, d]
PATHS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {"linear": _lerp, "slerp": _slerp}


def _check_invertible(method) -> None:
    if not (method.has_encoder and method.has_generator):
        raise ValueError(f"method {method.cfg.method!r} needs both an encoder and a generator to interpolate "
                         "between real images; it has "
                         f"{'an encoder' if method.has_encoder else 'no encoder'} and "
                         f"{'a generator' if method.has_generator else 'no generator'}.")


def _device(method) -> torch.device:
    return next(method.nets.parameters()).device


@torch.no_grad()
def interpolate(method, x_a: Tensor, x_b: Tensor, *, steps: int = 8, path: str = "linear") -> Tensor:
    """Decode ``steps`` evenly spaced points from E(x_a) to E(x_b), both ends included.

    x_a, x_b: images [P, C, H, W]. Returns images [P, steps, C, H, W] (column 0 is G(E(x_a)), the last
    G(E(x_b))). path: "linear" or "slerp" (``PATHS``).

    Example::

        model = load_model("runs/digits")
        x = load_dataset("digits", "test").x            # [360, 1, 8, 8]
        frames = interpolate(model, x[:4], x[4:8])       # [4, 8, 1, 8, 8]
    """
    _check_invertible(method)
    if path not in PATHS:
        raise ValueError(f"unknown interpolation path {path!r}; choose one of {', '.join(PATHS)}.")
    if steps < 2:
        raise ValueError(f"interpolate: steps must be >= 2 (both ends), got {steps}.")
    if x_a.shape != x_b.shape or x_a.ndim != 4:
        raise ValueError(f"interpolate: x_a and x_b must be image batches [P, C, H, W] of one shape, got "
                         f"{tuple(x_a.shape)} and {tuple(x_b.shape)}.")
    method.nets.eval()
    device = _device(method)
    z_a, z_b = method.encode(x_a.to(device)), method.encode(x_b.to(device))  # [P, d] each
    width = method.sample_prior(1, torch.Generator(device).manual_seed(0)).shape[1]
    if z_a.ndim != 2 or z_a.shape[1] != width:
        raise ValueError(f"method {method.cfg.method!r} encodes to codes of shape {tuple(z_a.shape[1:])} "
                         f"but its generator takes codes of width {width}; interpolating between encoded "
                         "images needs the same code.")
    t = torch.linspace(0, 1, steps, device=device)  # [S]
    codes = PATHS[path](z_a, z_b, t)  # [P, S, d]
    images = method.generate(codes.reshape(-1, codes.shape[-1]))  # [P * S, C, H, W]
    return images.reshape(x_a.shape[0], steps, *images.shape[1:]).cpu()


def _pick_pairs(n: int, pairs: int, seed: int) -> tuple[Tensor, Tensor]:
    """``pairs`` (i, j) index pairs into n images, i != j, drawn from ``seed``: two [pairs] tensors."""
    if n < 2:
        raise ValueError(f"interpolation needs at least 2 images, got {n}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    need = 2 * pairs
    order = order.repeat((need + n - 1) // n)[:need]  # reuse images when there are fewer than 2 * pairs
    a, b = order[0::2], order[1::2]
    same = a == b
    b[same] = (b[same] + 1) % n
    return a, b


def interpolation_grid(method, x: Tensor, *, pairs: int = 8, steps: int = 8, path: str = "linear",
                       seed: int = 0) -> Tensor:
    """Rows of [x_a, G(path from E(x_a) to E(x_b)) ..., x_b] for ``pairs`` random pairs of the images x
    ([N, C, H, W]); returns images [pairs * (steps + 2), C, H, W], to tile ``steps + 2`` per row."""
    a, b = _pick_pairs(len(x), pairs, seed)
    x_a, x_b = x[a], x[b]  # [P, C, H, W]
    frames = interpolate(method, x_a, x_b, steps=steps, path=path)  # [P, S, C, H, W]
    rows = torch.cat([x_a[:, None].cpu(), frames, x_b[:, None].cpu()], dim=1)  # [P, S + 2, C, H, W]
    return rows.reshape(-1, *rows.shape[2:])


def save_interpolations(method, x: Tensor, out: str | Path, *, pairs: int = 8, steps: int = 8,
                        path: str = "linear", seed: int = 0) -> Path:
    """Write ``interpolation_grid`` as a PNG (one pair per row, real images at both ends); returns it."""
    grid = interpolation_grid(method, x, pairs=pairs, steps=steps, path=path, seed=seed)
    return save_grid(grid, out, nrow=steps + 2)


@dataclass
class Neighbours:
    samples: Tensor  # [n, C, H, W] generated images G(z)
    neighbours: Tensor  # [n, k, C, H, W] the k nearest training images of each, nearest first
    indices: Tensor  # [n, k] int64 rows of the training images
    distances: Tensor  # [n, k] Euclidean pixel distances


@torch.no_grad()
def nearest_real(method, x_train: Tensor, *, n: int = 8, k: int = 5, seed: int = 0) -> Neighbours:
    """Generate ``n`` samples and find the ``k`` training images nearest to each in pixel space (exact
    Euclidean search, ``advrep.eval.knn.nearest_neighbours``). x_train: [N, C, H, W].

    Example::

        found = nearest_real(model, load_dataset("digits", "train").x, n=4, k=3)
        found.distances          # [4, 3], nearest first; near 0 would mean a copied training image
    """
    if not method.has_generator:
        raise ValueError(f"method {method.cfg.method!r} has no generator to sample from.")
    if not 1 <= k <= len(x_train):
        raise ValueError(f"nearest_real: k must be between 1 and the {len(x_train)} training images, "
                         f"got {k}.")
    method.nets.eval()
    device = _device(method)
    z = method.sample_prior(n, torch.Generator(device).manual_seed(seed))
    samples = method.generate(z).cpu().float()  # [n, C, H, W]
    if samples.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"samples have shape {tuple(samples.shape[1:])} but the training images "
                         f"{tuple(x_train.shape[1:])}; pass the data the model was trained on.")
    dist, idx = nearest_neighbours(samples.reshape(n, -1), x_train.reshape(len(x_train), -1).float(), k=k)
    return Neighbours(samples, x_train[idx.reshape(-1)].reshape(n, k, *x_train.shape[1:]), idx, dist)


def neighbour_grid(found: Neighbours) -> Tensor:
    """Rows of [sample, its k nearest training images]: images [n * (k + 1), C, H, W]."""
    rows = torch.cat([found.samples[:, None], found.neighbours.float()], dim=1)  # [n, k + 1, C, H, W]
    return rows.reshape(-1, *rows.shape[2:])


def save_neighbours(method, x_train: Tensor, out: str | Path, *, n: int = 8, k: int = 5,
                    seed: int = 0) -> tuple[Path, Neighbours]:
    """Write ``neighbour_grid`` as a PNG (a sample, then its k nearest training images, per row)."""
    found = nearest_real(method, x_train, n=n, k=k, seed=seed)
    return save_grid(neighbour_grid(found), out, nrow=k + 1), found


def explore_run(method, out_dir: str | Path, *, interpolate: bool = True, neighbours: bool = True,
                data: str | None = None, data_dir: str | None = None, pairs: int = 8, steps: int = 8,
                k: int = 5, n: int = 8, path: str = "linear", seed: int = 0, run: str | None = None) -> list[Path]:
    """What ``advrep sample RUN --interpolate --neighbours`` writes: interpolations.png between test
    images and neighbours.png against the training images of ``data``, by default the run's own dataset
    (``method.cfg.data``, read from ``data_dir`` or the run's data_dir; ``run`` names the run in errors;
    see :func:`advrep.data.load_run_dataset`). Returns the paths written."""
    from .data import load_run_dataset

    out_dir = Path(out_dir)
    where = dict(data=data, data_dir=data_dir, run=run)
    written = []
    if interpolate:
        test = load_run_dataset(method.cfg, "test", **where)
        written.append(save_interpolations(method, test.x, out_dir / "interpolations.png", pairs=pairs,
                                           steps=steps, path=path, seed=seed))
    if neighbours:
        train = load_run_dataset(method.cfg, "train", **where)
        written.append(save_neighbours(method, train.x, out_dir / "neighbours.png", n=n, k=k, seed=seed)[0])
    return written
