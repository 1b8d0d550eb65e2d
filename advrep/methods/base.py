"""What every method provides to the training loop, the evaluator and the CLI.

A method owns its networks (``self.nets``, an nn.ModuleDict) and says, for each phase of a training
step, which optimiser updates which networks and with which loss. The loop owns everything else:
optimisers, schedules, precision, logging and checkpoints. To add a method: subclass, fill in the
class attributes and ``build``/``losses``, and register it in ``advrep.methods.METHODS``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..config import Config
from ..nets import get_prior

Losses = dict[str, torch.Tensor]


class Method:
    """A trainable model: its networks (``self.nets``) and, for the loop, which optimiser trains which
    networks from which loss (see the module docstring). Users mostly call ``encode``, ``generate``,
    ``sample_prior``, ``reconstruct`` and ``features`` on a trained one.

    Example::

        model = load_model("runs/digits")               # a BiGAN trained on [1, 8, 8] digits
        z = model.encode(x)                               # x [B, 1, 8, 8] -> [B, latent_dim]
        x_new = model.generate(model.sample_prior(16))    # [16, 1, 8, 8] in [0, 1]
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}  # settings that differ from Config's defaults
    optimizers: ClassVar[dict[str, tuple[str, ...]]] = {}  # optimiser name -> networks it updates
    # Each phase is one forward pass whose losses update several optimisers at once; phases run in
    # order, each after the previous one's optimiser steps (e.g. an AAE's reconstruction then
    # regularisation). BiGAN has one phase: D, E and G all step on the same batch.
    phases: ClassVar[tuple[tuple[str, ...], ...]] = ()
    has_encoder: ClassVar[bool] = True
    has_generator: ClassVar[bool] = True

    def __init__(self, cfg: Config, image_shape: tuple[int, int, int]):
        self.cfg = cfg
        self.image_shape = tuple(image_shape)  # (C, H, W)
        self.data_dim = image_shape[0] * image_shape[1] * image_shape[2]
        self.nets = self.build()

    # --- to implement -------------------------------------------------------------------------
    def build(self) -> nn.ModuleDict:
        """The method's networks by name (e.g. G, E, D), built from ``self.cfg`` and ``self.image_shape``."""
        raise NotImplementedError

    def losses(self, phase: int, x: torch.Tensor, y: torch.Tensor | None,
               rng: torch.Generator | None) -> tuple[Losses, dict[str, torch.Tensor]]:
        """(loss per optimiser named in ``phases[phase]``, extra scalars to log). x: [B, C, H, W]."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named representations of x ([B, C, H, W]) for evaluation, each [B, F]; nets in eval mode."""
        raise NotImplementedError

    # --- optional hooks --------------------------------------------------------------------------
    def prepare(self, train: Any) -> None:
        """Called once by the loop with the training Dataset before the first step (also on resume),
        e.g. to pick a seeded labelled subset for semi-supervised methods. Must be deterministic."""

    def after_step(self, step: int) -> None:
        """Called after every optimiser step, e.g. to update an exponential moving average of G."""

    def lr_multipliers(self) -> dict[str, float]:
        """Learning rate per optimiser name, as a multiple of ``cfg.lr`` (missing names: 1). The loop
        applies it when it builds the optimisers and at every epoch's schedule update."""
        return {}

    def optimizer(self, name: str, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer | None:
        """The optimiser for ``name`` at learning rate ``lr``, or None for the loop's Adam (cfg.beta1,
        beta2, weight_decay). E.g. the AAE paper's momentum SGD, one per cost."""
        return None

    def lr_schedule(self, epoch: int) -> float | None:
        """The learning rates' multiple during ``epoch``, or None for the loop's schedule (constant for
        cfg.epochs, then exponential decay); e.g. the AAE paper's 10x drops at fixed epochs."""
        return None

    def extra_metrics(self, train: Any, test: Any) -> dict[str, float]:
        """Method-specific numbers that ``evaluate`` adds to its results (nets in eval mode), e.g. a
        semi-supervised classifier's test error or a clustering error. Plain floats."""
        return {}

    def figures(self, data: Any, out_dir: Any) -> list:
        """Method-specific PNGs ``advrep eval`` writes into ``out_dir`` (paths returned), e.g. a grid of
        styles rendered as every class."""
        return []

    def batch_norm_forward(self, x: torch.Tensor, y: torch.Tensor | None,
                           rng: torch.Generator | None) -> None:
        """Forward passes (train mode, no gradients) whose batch statistics evaluation averages into each
        batch norm's population statistics (``evaluate.refresh_batch_norm``). Default: the first phase's
        losses. Override when a network trains on other inputs than it is evaluated on, e.g. an encoder
        trained only on G(z) but evaluated on real images."""
        self.losses(0, x, y, rng)

    # --- shared helpers ------------------------------------------------------------------------
    def sample_prior(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """n codes z ~ p(z) from ``cfg.prior``, [n, latent_dim] on the networks' device; feed them to
        ``generate``. Pass a seeded ``torch.Generator`` for repeatable draws."""
        device = next(self.nets.parameters()).device
        return get_prior(self.cfg.prior)(n, self.cfg.latent_dim, generator=rng, device=device)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) as [B, latent_dim] (the posterior mean for stochastic encoders)."""
        raise NotImplementedError(f"method {self.name!r} has no encoder")

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) as images [B, C, H, W]."""
        raise NotImplementedError(f"method {self.name!r} has no generator")

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(E(x)): images [B, C, H, W] -> images [B, C, H, W]."""
        return self.generate(self.encode(x))

    def parameters_of(self, optimiser: str) -> list[nn.Parameter]:
        """Every parameter of the networks that optimiser ``optimiser`` updates (``optimizers``)."""
        return [p for net in self.optimizers[optimiser] for p in self.nets[net].parameters()]

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] -> rows [B, C*H*W], the MLPs' input."""
        return x.reshape(x.shape[0], -1)  # [B, C*H*W]

    def images(self, x_flat: torch.Tensor) -> torch.Tensor:
        """Rows [B, C*H*W] -> images [B, C, H, W] of ``self.image_shape``."""
        return x_flat.reshape(x_flat.shape[0], *self.image_shape)


def encoder_representations(E: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What evaluation reads from a BiGAN-style encoder E, for its input x (flat [B, D] for MLPs):
    ``penultimate`` [B, hidden], ``z_pre`` [B, latent] (the posterior mean before it is squashed into the
    prior's support; the reference code's 1NN "on z") and ``z`` = E(x) [B, latent]."""
    h = E.features(x)
    pre = E.pre_head(h)[0]
    return {"z": E.squash(pre), "z_pre": pre, "penultimate": h}

