"""BiGAN (Donahue, Kraehenbuehl & Darrell 2017) and ALI (Dumoulin et al. 2017).

Both learn G: z -> x and E: x -> z against one discriminator on joint pairs, D(x, E(x)) versus
D(G(z), z) (BiGAN eq. 3). At the optimum E = G^-1. ALI is the same game with a Gaussian prior and a
stochastic, reparameterised encoder (ALI section 2.2); here it is a subclass that changes defaults.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nets import bigan_networks
from . import losses as L
from .base import Method, encoder_representations


class BiGAN(Method):
    """G: z -> x, E: x -> z and a joint discriminator D(x, z) (BiGAN eq. 3). Features for evaluation:
    ``z`` (E(x), [B, latent_dim]), ``z_pre`` (before squashing into the prior's support) and
    ``penultimate`` (E's last hidden layer, [B, hidden]: the paper's table 1 features).

    Example::

        cfg = make_config("bigan", data="digits", hidden=256, latent_dim=16, epochs=20)
        train(cfg, "runs/digits")
        feats = load_model("runs/digits").features(x)["penultimate"]   # [B, 256]
    """

    name = "bigan"
    description = "BiGAN: generator, encoder and a joint (x, z) discriminator (Donahue et al.)"
    optimizers = {"D": ("D",), "EG": ("E", "G")}
    phases = (("D", "EG"),)  # all three networks step on every batch, from one forward pass

    def build(self) -> nn.ModuleDict:
        """G, E and D for cfg.arch (``advrep.nets.bigan_networks``)."""
        # cfg.arch picks the networks: the paper's MLPs (default), DCGAN or ResNet image networks.
        return bigan_networks(self.cfg, self.image_shape)

    def losses(self, phase, x, y, rng):
        """One forward pass for all three networks: D's cross-entropy and E/G's loss (``objective``)."""
        G, E, D = self.nets["G"], self.nets["E"], self.nets["D"]
        x = self.flat(x)  # [B, D]
        z = self.sample_prior(x.shape[0], rng)  # [B, latent]
        real = D(x, E(x))  # encoder pair, label 1
        fake = D(G(z), z)  # generator pair, label 0
        losses = {"D": L.discriminator_loss(real, fake), "EG": L.generator_loss(real, fake, self.cfg.objective)}
        logs = {"D_real": torch.sigmoid(real).mean(), "D_fake": torch.sigmoid(fake).mean()}
        return losses, logs

    def encode(self, x):
        """E(x): images [B, C, H, W] -> codes [B, latent_dim] (ALI: the posterior mean)."""
        return self.nets["E"](self.flat(x), sample=False)

    def generate(self, z):
        """G(z): codes [B, latent_dim] -> images [B, C, H, W] in [0, 1]."""
        return self.images(self.nets["G"](z))

    def features(self, x):
        """{"z", "z_pre": [B, latent_dim], "penultimate": [B, hidden]} for images x [B, C, H, W]."""
        return encoder_representations(self.nets["E"], self.flat(x))


class ALI(BiGAN):
    """BiGAN with ALI's defaults: a N(0, I) prior and a reparameterised Gaussian encoder (ALI section
    2.2); ``encode`` returns the posterior mean. Example: ``make_config("ali", data="mnist")``."""

    name = "ali"
    description = "ALI: BiGAN's game with a Gaussian prior and a stochastic encoder (Dumoulin et al.)"
    defaults = {"prior": "gaussian", "stochastic_encoder": True, "weight_decay": 0.0}
