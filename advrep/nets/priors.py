"""Latent priors p(z): samplers keyed by name, so methods and inversion share one definition."""

from __future__ import annotations

import math

import torch


def uniform(n: int, dim: int, *, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """U[-1, 1]^dim, the BiGAN paper's prior. [n, dim]"""
    return torch.rand(n, dim, generator=generator, device=device) * 2.0 - 1.0


def gaussian(n: int, dim: int, *, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """N(0, I), ALI's prior. [n, dim]"""
    return torch.randn(n, dim, generator=generator, device=device)


def uniform_log_density(z: torch.Tensor) -> torch.Tensor:
    """log p(z) per row: constant inside [-1, 1]^d, -inf outside. [B]"""
    inside = (z.abs() <= 1).all(dim=1)
    value = -z.shape[1] * math.log(2.0)
    return torch.where(inside, torch.full_like(z[:, 0], value), torch.full_like(z[:, 0], -math.inf))


def gaussian_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per row. [B]"""
    return -0.5 * (z.pow(2).sum(dim=1) + z.shape[1] * math.log(2 * math.pi))


# --- the adversarial autoencoder paper's 2-D priors (Makhzani et al. 2016, figures 2 and 4) ---------
# Both are built from ``components`` labelled parts, so a label can pick where a code must land
# (section 3: label information in the adversarial regularisation). Codes of more than two dimensions
# are read as pairs of 2-D coordinates that all share one component.

MIXTURE_RADIUS = 4.0  # distance of each component's mean from the origin
MIXTURE_RADIAL_STD = 0.8  # spread along the ray through the mean ...
MIXTURE_TANGENTIAL_STD = 0.2  # ... and across it: the paper's elongated petals
SWISS_ROLL_TURNS = 2.0  # turns of the spiral
SWISS_ROLL_RADIUS = 4.0  # radius at its outer end


def _pairs(dim: int, prior: str) -> int:
    if dim < 2 or dim % 2:
        raise ValueError(f"prior {prior!r} lives in 2-D pairs, so latent_dim must be even; got {dim}. "
                         "Set latent_dim=2 (or another even number).")
    return dim // 2


def _components(n: int, labels: torch.Tensor | None, components: int, generator, device) -> torch.Tensor:
    """The component of each row: the given labels, or uniformly random ones. [n] int64"""
    if labels is None:
        return torch.randint(0, components, (n,), generator=generator, device=device)
    labels = labels.to(device=device, dtype=torch.long).reshape(-1)
    if labels.shape[0] != n or (n and (labels.min() < 0 or labels.max() >= components)):
        raise ValueError(f"labels must be {n} integers in [0, {components}), got shape {tuple(labels.shape)}"
                         f" with range [{int(labels.min()) if n else 0}, {int(labels.max()) if n else 0}].")
    return labels


def gaussian_mixture(n: int, dim: int, *, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu", labels: torch.Tensor | None = None,
                     components: int = 10) -> torch.Tensor:
    """A mixture of ``components`` elongated 2-D Gaussians with means evenly spaced on a circle;
    component k points at angle 2 pi k / components. ``labels`` [n] picks each row's component. [n, dim]"""
    pairs = _pairs(dim, "mixture10")
    k = _components(n, labels, components, generator, device)  # [n]
    angle = (2 * math.pi / components) * k.to(torch.float32)  # [n]
    eps = torch.randn(n, pairs, 2, generator=generator, device=device)  # [n, P, 2]
    radial = MIXTURE_RADIUS + MIXTURE_RADIAL_STD * eps[..., 0]  # [n, P] along the ray
    across = MIXTURE_TANGENTIAL_STD * eps[..., 1]  # [n, P] perpendicular to it
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]  # [n, 1]
    z = torch.stack([radial * cos - across * sin, radial * sin + across * cos], dim=-1)  # [n, P, 2]
    return z.reshape(n, dim)


def swiss_roll(n: int, dim: int, *, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu", labels: torch.Tensor | None = None,
               components: int = 10) -> torch.Tensor:
    """Points on a 2-D spiral (the paper's swiss roll), cut into ``components`` consecutive pieces of
    equal probability; ``labels`` [n] picks the piece. A point at position t in [0, 1] along the roll
    sits at radius R t and angle 2 pi turns t, with t = sqrt(u) for u uniform, so the density per unit
    of arc length is roughly even; piece k holds u in [k, k + 1) / components. [n, dim]"""
    pairs = _pairs(dim, "swiss_roll")
    k = _components(n, labels, components, generator, device)  # [n]
    u = (k[:, None].to(torch.float32) + torch.rand(n, pairs, generator=generator, device=device)) / components
    t = u.sqrt()  # [n, P]
    angle = 2 * math.pi * SWISS_ROLL_TURNS * t
    radius = SWISS_ROLL_RADIUS * t
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1).reshape(n, dim)


def swiss_roll_piece(z: torch.Tensor, components: int = 10) -> torch.Tensor:
    """Inverse of ``swiss_roll`` for points on the roll: the piece each 2-D point came from. [n] int64"""
    t = z[:, :2].norm(dim=1) / SWISS_ROLL_RADIUS  # radius = R t
    return (t.pow(2) * components).floor().clamp(0, components - 1).long()


def categorical(n: int, classes: int, *, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu", labels: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot vectors of uniformly random (or the given) classes: the AAE's prior on y. [n, classes]"""
    k = _components(n, labels, classes, generator, device)
    return torch.nn.functional.one_hot(k, classes).to(torch.float32)


PRIORS = {"uniform": uniform, "gaussian": gaussian, "mixture10": gaussian_mixture,
          "swiss_roll": swiss_roll}
LOG_DENSITIES = {"uniform": uniform_log_density, "gaussian": gaussian_log_density}
# Priors made of labelled components, which can place a code by its label (AAE section 3).
CONDITIONAL_PRIORS = {"mixture10": gaussian_mixture, "swiss_roll": swiss_roll}


def get_prior(name: str):
    try:
        return PRIORS[name]
    except KeyError:
        raise ValueError(f"unknown prior {name!r}; choose one of {', '.join(PRIORS)}.") from None
