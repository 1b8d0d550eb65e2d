"""BigBiGAN (Donahue & Simonyan, *Large Scale Adversarial Representation Learning*, NeurIPS 2019).

BiGAN's game (G: z -> x, E: x -> z, D on pairs) with the changes of the paper's section 2:

* the discriminator has three parts, F(x) a ConvNet, H(z) an MLP, and J(F, H) an MLP, and three
  scores, s_x (x alone), s_z (z alone) and s_xz (the pair); D hinges each score separately and E and
  G push on their sum (``losses.bigbigan_losses``). ``unary_scores=False`` keeps only s_xz;
* the encoder is stochastic, z = mu(x) + softplus(s(x)) * eps, reparameterised (``stochastic_encoder``);
* E may see its input at a higher resolution than G produces (``encoder_scale`` = s: the dataset holds
  the high-resolution images, G makes H/s x W/s, and D's x-input is the data average-pooled by s);
* E may learn faster than G and D (``encoder_lr_mult``);
* samples come from an exponential moving average of G's weights (``ema_decay``), as in BigGAN.

Where the paper trains BigGAN/RevNet networks on ImageNet, the defaults here are small DCGAN-style
networks with a spectrally normalised discriminator (``arch``), sized for MNIST on a CPU.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import make_encoder, make_generator, make_joint_discriminator
from . import losses as L
from .base import Method


class BigBiGAN(Method):
    name = "bigbigan"
    description = ("BigBiGAN: stochastic encoder, EMA generator, F(x)/H(z)/J discriminator with hinged unary "
                   "and joint scores (Donahue & Simonyan)")
    defaults = {"arch": "dcgan", "prior": "gaussian", "stochastic_encoder": True, "spectral_norm": True,
                "latent_dim": 64, "hidden": 256, "width": 32, "ema_decay": 0.999, "weight_decay": 0.0,
                "lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "epochs": 20, "decay_epochs": 0}
    # E gets its own optimiser so that it can have its own learning rate; all three step on one batch.
    optimizers = {"D": ("D",), "E": ("E",), "G": ("G",)}
    phases = (("D", "E", "G"),)

    def __init__(self, cfg, image_shape):
        c, h, w = image_shape
        s = cfg.encoder_scale
        if h % s or w % s:
            raise ValueError(f"encoder_scale={s} must divide the image size {h}x{w} (G makes H/s x W/s); "
                             "choose a divisor, or resize the data.")
        if not 0.0 <= cfg.ema_decay < 1.0:
            raise ValueError(f"ema_decay={cfg.ema_decay} must be in [0, 1) (0 turns the average off); "
                             "BigGAN uses 0.9999, short runs 0.999.")
        self.gen_shape = (c, h // s, w // s)  # what G makes and D's F(x) sees
        super().__init__(cfg, image_shape)

    def build(self) -> nn.ModuleDict:
        cfg = self.cfg
        nets = nn.ModuleDict({
            "G": make_generator(cfg, self.gen_shape),
            "E": make_encoder(cfg, self.image_shape, stochastic=cfg.stochastic_encoder),
            "D": make_joint_discriminator(cfg, self.gen_shape),
        })
        if cfg.ema_decay > 0:
            # No optimiser updates it (it is in no entry of `optimizers`); after_step averages G into it,
            # and being in self.nets it is checkpointed with the rest.
            nets["G_ema"] = copy.deepcopy(nets["G"]).requires_grad_(False)
        return nets

    def lr_multipliers(self) -> dict[str, float]:
        return {"E": self.cfg.encoder_lr_mult}

    # --- resolutions ---------------------------------------------------------------------------
    def to_generator_resolution(self, x: torch.Tensor) -> torch.Tensor:
        """Data [B, C, H, W] -> [B, C, H/s, W/s] by s x s average pooling (identity for s = 1)."""
        s = self.cfg.encoder_scale
        return F.avg_pool2d(x, s) if s > 1 else x

    def to_data_resolution(self, x: torch.Tensor) -> torch.Tensor:
        """G's images [B, C, H/s, W/s] -> [B, C, H, W] by bilinear upsampling (stays in [0, 1])."""
        s = self.cfg.encoder_scale
        return F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False) if s > 1 else x

    # --- training ------------------------------------------------------------------------------
    def losses(self, phase, x, y, rng):
        G, E, D = self.nets["G"], self.nets["E"], self.nets["D"]
        n = x.shape[0]
        z_hat = E(self.flat(x))  # [B, latent]: a reparameterised sample of q(z|x) at full resolution
        z = self.sample_prior(n, rng)  # [B, latent]
        x_fake = G(z).reshape(n, *self.gen_shape)  # [B, C, h, w]
        real = D.scores(self.to_generator_resolution(x), z_hat)  # encoder pairs, y = +1
        fake = D.scores(x_fake, z)  # generator pairs, y = -1
        d_loss, eg_loss = L.bigbigan_losses(real, fake, unary=self.cfg.unary_scores)
        # One loss for E and G: backward with inputs= restricts each to its own networks, and E's
        # gradient only flows through the encoder pairs, G's only through the generator pairs.
        losses = {"D": d_loss, "E": eg_loss, "G": eg_loss}
        logs = {f"{name}_{side}": scores[i].mean() for i, name in enumerate(("s_x", "s_z", "s_xz"))
                for side, scores in (("real", real), ("fake", fake))}
        return losses, logs

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if "G_ema" not in self.nets:
            return
        # The decay ramps up over the first steps, min(decay, (1 + t) / (10 + t)) (TensorFlow's
        # ExponentialMovingAverage with num_updates), so early averages do not remember the random init.
        decay = min(self.cfg.ema_decay, (1.0 + step) / (10.0 + step))
        G, G_ema = self.nets["G"], self.nets["G_ema"]
        for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
            p_ema.lerp_(p, 1.0 - decay)
        # Batch-norm statistics and spectral-norm power-iteration vectors are copied, not averaged.
        for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
            b_ema.copy_(b)

    # --- using the model -----------------------------------------------------------------------
    def encode(self, x):
        return self.nets["E"](self.flat(x), sample=False)  # the posterior mean

    def generate(self, z):
        """G(z) from the averaged weights when there are any, at the data's resolution [B, C, H, W]."""
        G = self.nets["G_ema"] if "G_ema" in self.nets else self.nets["G"]
        return self.to_data_resolution(G(z).reshape(z.shape[0], *self.gen_shape))

    def features(self, x):
        E = self.nets["E"]
        h = E.features(self.flat(x))  # [B, F]: the trunk's pooled features (the paper's avgpool)
        mean = E.pre_head(h)[0]  # [B, latent]
        return {"z": E.squash(mean), "penultimate": h}
