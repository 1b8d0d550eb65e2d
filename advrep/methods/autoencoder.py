"""A deterministic autoencoder with BiGAN's networks: the "AE (l2)" and "AE (l1)" baselines of the BiGAN
paper (Donahue, Kraehenbuehl & Darrell 2017, table 1).

The encoder is BiGAN's E (codes squashed into the uniform prior's support [-1, 1]) and the decoder has
exactly G's shape, so the comparison isolates the objective: pixel reconstruction
||x - dec(E(x))|| (squared l2, or l1 with recon_loss=l1), summed over pixels and averaged over the
batch, instead of an adversarial game. Nothing makes the codes follow the prior, so decoding prior
samples (``generate``, the run's sample grids) shows the decoder away from its codes, not a model of
the data; reconstructions dec(E(x)) are the meaningful images.
"""

from __future__ import annotations

from torch import nn

from ..nets import MLPEncoder, MLPGenerator, init_normal_
from . import losses as L
from .base import Method, encoder_representations


class Autoencoder(Method):
    name = "autoencoder"
    description = "autoencoder with BiGAN's encoder and a G-shaped decoder; recon_loss l2 (default) or l1"
    optimizers = {"AE": ("E", "decoder")}
    phases = (("AE",),)

    def build(self) -> nn.ModuleDict:
        cfg = self.cfg
        if cfg.stochastic_encoder:
            raise ValueError(f"method {self.name!r} is a deterministic autoencoder, but the config sets "
                             "stochastic_encoder=true; set stochastic_encoder=false.")
        nets = nn.ModuleDict({
            "E": MLPEncoder(self.data_dim, cfg.latent_dim, cfg.hidden, bounded=cfg.prior == "uniform",
                            bn_eps=cfg.bn_eps),
            "decoder": MLPGenerator(cfg.latent_dim, self.data_dim, cfg.hidden, bn_eps=cfg.bn_eps),
        })
        return init_normal_(nets, cfg.init_std)

    def losses(self, phase, x, y, rng):
        x = self.flat(x)  # [B, D]
        x_hat = self.nets["decoder"](self.nets["E"](x))  # [B, D] in (0, 1)
        loss = L.reconstruction_loss(x, x_hat, self.cfg.recon_loss)
        return {"AE": loss}, {"recon_mse": (x - x_hat.detach()).pow(2).mean()}

    def encode(self, x):
        return self.nets["E"](self.flat(x), sample=False)

    def generate(self, z):
        return self.images(self.nets["decoder"](z))

    def features(self, x):
        return encoder_representations(self.nets["E"], self.flat(x))
