"""A plain GAN (Goodfellow et al. 2014) whose discriminator is the feature extractor: the "D" baseline
of the BiGAN paper (Donahue, Kraehenbuehl & Darrell 2017, table 1).

G and D are BiGAN's networks with the latent input dropped from D: D(x) sees only images, so it
learns to tell data from samples and its penultimate layer is a representation learnt without labels.
There is no encoder; G(z) is sampled as usual.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nets import MLPDiscriminator, MLPGenerator, init_normal_
from . import losses as L
from .base import Method


class GAN(Method):
    name = "gan"
    description = "GAN: G and an x-only D; features = D's penultimate layer (BiGAN's D baseline)"
    optimizers = {"D": ("D",), "G": ("G",)}
    phases = (("D", "G"),)  # simultaneous D and G steps on one batch, as the reference code's update_both
    has_encoder = False

    def build(self) -> nn.ModuleDict:
        cfg = self.cfg
        nets = nn.ModuleDict({
            "G": MLPGenerator(cfg.latent_dim, self.data_dim, cfg.hidden, bn_eps=cfg.bn_eps),
            "D": MLPDiscriminator(self.data_dim, cfg.hidden, bn_eps=cfg.bn_eps),
        })
        return init_normal_(nets, cfg.init_std)  # D's scoring layer starts at zero

    def losses(self, phase, x, y, rng):
        G, D = self.nets["G"], self.nets["D"]
        z = self.sample_prior(x.shape[0], rng)  # [B, latent]
        real = D(self.flat(x))  # [B]; real and generated batches get their own batch-norm statistics
        fake = D(G(z))  # [B]
        losses = {"D": L.discriminator_loss(real, fake),
                  "G": gan_generator_loss(real, fake, self.cfg.objective)}
        return losses, {"D_real": torch.sigmoid(real).mean(), "D_fake": torch.sigmoid(fake).mean()}

    def batch_norm_forward(self, x, y, rng):
        # The reference code accumulates D's population statistics from real images only (its
        # discriminator net is first built on real data, and only that graph's statistics are kept),
        # and the features evaluated are D's on real images; G's come from prior samples.
        self.nets["D"](self.flat(x))
        self.nets["G"](self.sample_prior(x.shape[0], rng))

    def generate(self, z):
        return self.images(self.nets["G"](z))

    def features(self, x):
        return {"discriminator": self.nets["D"].features(self.flat(x))}  # [B, hidden]


def _minimax_generator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return -L.discriminator_loss(real, fake)


def _inverse_generator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return L.nonsaturating_generator_loss(fake)


# Config.objective picks G's loss: the non-saturating one the reference code uses, or the minimax game.
GENERATOR_LOSSES = {"inverse": _inverse_generator_loss, "minimax": _minimax_generator_loss}


def gan_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, objective: str) -> torch.Tensor:
    try:
        loss = GENERATOR_LOSSES[objective]
    except KeyError:
        raise ValueError(f"unknown objective {objective!r}; choose one of "
                         f"{', '.join(GENERATOR_LOSSES)}.") from None
    return loss(real_logits, fake_logits)
