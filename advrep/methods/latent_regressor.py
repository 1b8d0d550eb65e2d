"""Latent regressors: the BiGAN paper's "LR" and "joint LR" baselines (Donahue, Kraehenbuehl & Darrell
2017, section 4.1 and table 1).

A GAN (x-only discriminator) is trained as usual, and beside it an encoder learns to invert G by
regressing the z that made each sample: E(G(z)) ~ z. The encoder never sees real data while it
trains, only G's samples, so its features on real images are as good as G is at covering the data.

* ``latent_regressor`` (LR): the regression loss trains E only; no gradient reaches G.
* ``joint_latent_regressor`` (joint LR): the regression loss also trains G, with weight
  ``regress_weight`` (0.25, the reference code's --encode_gen_weight). A larger weight lets G make E's
  job easy instead of modelling the data: it can spread z into a few pixel patterns E reads back
  exactly, and at weight 1 the samples degenerate (see docs/methods/baselines.md).

Everything else is the reference code's (jeffdonahue/bigan, train_gan.py, train_mnist.sh): BiGAN's
G, a D with the same trunk but no z input, the non-saturating G loss, an encoder whose output layer
starts at zero, and the uniform prior's regression loss = sigmoid cross-entropy against (z + 1) / 2.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nets import MLPDiscriminator, MLPEncoder, MLPGenerator, init_normal_
from . import losses as L
from .base import Method, encoder_representations
from .gan import gan_generator_loss


class LatentRegressor(Method):
    name = "latent_regressor"
    description = "latent regressor: GAN + E regressing z from G(z), no gradient into G (BiGAN's LR)"
    # regress_weight is the regression loss's weight in G's objective: 0 here, by definition of LR.
    defaults = {"regress_weight": 0.0}
    optimizers = {"D": ("D",), "G": ("G",), "E": ("E",)}
    phases = (("D", "G", "E"),)  # all three step on every batch, from one forward pass
    joint = False  # does the regression loss train G too?

    def build(self) -> nn.ModuleDict:
        cfg = self.cfg
        self.check_regress_weight()
        if cfg.stochastic_encoder:
            raise ValueError(f"method {self.name!r} regresses z with a deterministic encoder, but the config "
                             "sets stochastic_encoder=true; set stochastic_encoder=false.")
        nets = nn.ModuleDict({
            "G": MLPGenerator(cfg.latent_dim, self.data_dim, cfg.hidden, bn_eps=cfg.bn_eps),
            "E": MLPEncoder(self.data_dim, cfg.latent_dim, cfg.hidden, bounded=cfg.prior == "uniform",
                            bn_eps=cfg.bn_eps),
            "D": MLPDiscriminator(self.data_dim, cfg.hidden, bn_eps=cfg.bn_eps),
        })
        init_normal_(nets, cfg.init_std)
        # The reference code zero-initialises the encoder's output layer whenever no discriminator
        # reads E's output (gan.py, Encoder: stddev 0 unless --joint_discrim_weight), so E(x) starts
        # at the prior's centre.
        nn.init.zeros_(nets["E"].out.weight)
        return nets

    def check_regress_weight(self) -> None:
        if self.cfg.regress_weight != 0:
            raise ValueError(f"method {self.name!r} keeps G out of the regression, but regress_weight="
                             f"{self.cfg.regress_weight}; drop the setting, or use joint_latent_regressor "
                             "to train G with it.")

    def losses(self, phase, x, y, rng):
        G, E, D = self.nets["G"], self.nets["E"], self.nets["D"]
        z = self.sample_prior(x.shape[0], rng)  # [B, latent]
        x_fake = G(z)  # [B, D]
        real, fake = D(self.flat(x)), D(x_fake)  # [B] each, separate batch statistics
        # LR: E learns from G's samples as fixed inputs. Joint LR: the same loss also flows into G.
        x_for_e = x_fake if self.joint else x_fake.detach()
        z_pre = E.pre_head(E.features(x_for_e))[0]  # [B, latent], logits of (z + 1) / 2 for the uniform prior
        regress = L.latent_regression_loss(z_pre, z, self.cfg.prior)
        adversarial = gan_generator_loss(real, fake, self.cfg.objective)
        losses = {"D": L.discriminator_loss(real, fake), **self.generator_losses(adversarial, regress)}
        logs = {"D_real": torch.sigmoid(real).mean(), "D_fake": torch.sigmoid(fake).mean(),
                "regress": regress.detach()}
        return losses, logs

    def generator_losses(self, adversarial: torch.Tensor, regress: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"G": adversarial, "E": regress}

    def batch_norm_forward(self, x, y, rng):
        # Population statistics as the reference code gathers them: E and D on real images (the data
        # they are evaluated on), G on prior samples. In training E only ever sees G(z).
        self.nets["D"](self.flat(x))
        self.nets["E"](self.flat(x))
        self.nets["G"](self.sample_prior(x.shape[0], rng))

    def encode(self, x):
        return self.nets["E"](self.flat(x), sample=False)

    def generate(self, z):
        return self.images(self.nets["G"](z))

    def features(self, x):
        # The encoder's representations, and D's penultimate layer: the reference code scores both in
        # its LR runs (NNC_e- and NNC_d), and D here is trained exactly as the D baseline's (`gan`).
        flat = self.flat(x)
        return {**encoder_representations(self.nets["E"], flat), "discriminator": self.nets["D"].features(flat)}


class JointLatentRegressor(LatentRegressor):
    name = "joint_latent_regressor"
    description = "joint latent regressor: LR whose regression loss also trains G (regress_weight 0.25)"
    defaults = {"regress_weight": 0.25}
    # E and G share one optimiser on one loss, as in the reference code, where --encode_gen_weight moves
    # E's parameters into G's update: E then gets regress_weight times the regression gradient.
    optimizers = {"D": ("D",), "EG": ("E", "G")}
    phases = (("D", "EG"),)
    joint = True

    def check_regress_weight(self) -> None:
        if not self.cfg.regress_weight > 0:
            raise ValueError(f"method {self.name!r} trains its encoder only through regress_weight * the "
                             f"regression loss, but regress_weight={self.cfg.regress_weight}; set it above 0 "
                             "(0.25 reproduces the paper) or use latent_regressor.")

    def generator_losses(self, adversarial, regress):
        return {"EG": adversarial + self.cfg.regress_weight * regress}
