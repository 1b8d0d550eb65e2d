"""Networks picked by ``Config.arch``: one place where methods get their G, E and D.

``mlp`` is the BiGAN paper's permutation-invariant MLPs (``mlp.py``), ``dcgan`` strided
convolutions (``conv.py``), ``resnet`` BigGAN-style residual blocks with spectral norm
(``resnet.py``). Every builder takes the config and the image shape (C, H, W) the network works at,
and returns an initialised module. Widths: ``cfg.hidden`` for MLP layers (and the DCGAN trunk's
fully connected output), ``cfg.width`` for convolution channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from ..config import Config
from .conv import DCGANFeatures, DCGANGenerator, ImageEncoder, add_spectral_norm_
from .joint import JointScoreDiscriminator, MLPFeatures
from .mlp import JointDiscriminator, MLPEncoder, MLPGenerator, init_normal_
from .resnet import ResNetFeatures, ResNetGenerator

Shape = tuple[int, int, int]


def _mlp_generator(cfg: Config, shape: Shape) -> nn.Module:
    return init_normal_(MLPGenerator(cfg.latent_dim, math.prod(shape), cfg.hidden, bn_eps=cfg.bn_eps), cfg.init_std)


GENERATORS: dict[str, Callable[[Config, Shape], nn.Module]] = {
    "mlp": _mlp_generator,
    "dcgan": lambda cfg, shape: DCGANGenerator(cfg.latent_dim, shape, cfg.width),
    "resnet": lambda cfg, shape: ResNetGenerator(cfg.latent_dim, shape, cfg.width),
}

# Encoder trunks use batch norm and no spectral norm (BigBiGAN's E is a batch-normalised ResNet).
ENCODER_TRUNKS: dict[str, Callable[[Config, Shape], nn.Module]] = {
    "dcgan": lambda cfg, shape: DCGANFeatures(shape, cfg.width, cfg.hidden, batch_norm=True),
    "resnet": lambda cfg, shape: ResNetFeatures(shape, cfg.width, spectral_norm=False, batch_norm=True),
}


def _mlp_x_trunk(cfg: Config, shape: Shape) -> nn.Module:
    trunk = MLPFeatures(math.prod(shape), cfg.hidden)
    return add_spectral_norm_(trunk) if cfg.spectral_norm else trunk


# The discriminator's F(x): spectral norm replaces batch norm where it is on (always for resnet).
DISCRIMINATOR_TRUNKS: dict[str, Callable[[Config, Shape], nn.Module]] = {
    "mlp": _mlp_x_trunk,
    "dcgan": lambda cfg, shape: DCGANFeatures(shape, cfg.width, cfg.hidden, batch_norm=not cfg.spectral_norm,
                                              spectral_norm=cfg.spectral_norm),
    "resnet": lambda cfg, shape: ResNetFeatures(shape, cfg.width, spectral_norm=True, batch_norm=False),
}


def _check_arch(cfg: Config, table: dict) -> None:
    if cfg.arch not in table:
        raise ValueError(f"arch {cfg.arch!r} is not available here; choose one of {', '.join(table)}.")


def make_generator(cfg: Config, shape: Shape) -> nn.Module:
    """G: z [B, latent_dim] -> images [B, C, H, W] (mlp: flat [B, C*H*W]) in (0, 1)."""
    _check_arch(cfg, GENERATORS)
    return GENERATORS[cfg.arch](cfg, tuple(shape))


def make_encoder(cfg: Config, shape: Shape, *, stochastic: bool) -> nn.Module:
    """E: x -> z [B, latent_dim], with MLPEncoder's interface (features, pre_head, squash, ...)."""
    bounded = cfg.prior == "uniform"
    if cfg.arch == "mlp":
        encoder = MLPEncoder(math.prod(shape), cfg.latent_dim, cfg.hidden, bounded=bounded,
                             stochastic=stochastic, bn_eps=cfg.bn_eps)
        return init_normal_(encoder, cfg.init_std)
    _check_arch(cfg, ENCODER_TRUNKS)
    return ImageEncoder(ENCODER_TRUNKS[cfg.arch](cfg, tuple(shape)), cfg.latent_dim, bounded=bounded,
                        stochastic=stochastic)


def make_joint_discriminator(cfg: Config, shape: Shape) -> JointScoreDiscriminator:
    """BigBiGAN's F/H/J discriminator on x of ``shape``; ``forward`` is its joint score alone."""
    _check_arch(cfg, DISCRIMINATOR_TRUNKS)
    sn = cfg.spectral_norm or cfg.arch == "resnet"
    return JointScoreDiscriminator(DISCRIMINATOR_TRUNKS[cfg.arch](cfg, tuple(shape)), cfg.latent_dim,
                                   cfg.hidden, spectral_norm=sn, init_std=cfg.init_std)


def _mlp_bigan(cfg: Config, shape: Shape) -> nn.ModuleDict:
    # Exactly the networks and initialisation BiGAN always had (the paper's MNIST MLPs).
    data_dim = math.prod(shape)
    nets = nn.ModuleDict({
        "G": MLPGenerator(cfg.latent_dim, data_dim, cfg.hidden, bn_eps=cfg.bn_eps),
        "E": MLPEncoder(data_dim, cfg.latent_dim, cfg.hidden, bounded=cfg.prior == "uniform",
                        stochastic=cfg.stochastic_encoder, bn_eps=cfg.bn_eps),
        "D": JointDiscriminator(data_dim, cfg.latent_dim, cfg.hidden, bn_eps=cfg.bn_eps),
    })
    return init_normal_(nets, cfg.init_std)


def _image_bigan(cfg: Config, shape: Shape) -> nn.ModuleDict:
    return nn.ModuleDict({
        "G": make_generator(cfg, shape),
        "E": make_encoder(cfg, shape, stochastic=cfg.stochastic_encoder),
        "D": make_joint_discriminator(cfg, shape),
    })


BIGAN_NETWORKS: dict[str, Callable[[Config, Shape], nn.ModuleDict]] = {
    "mlp": _mlp_bigan, "dcgan": _image_bigan, "resnet": _image_bigan,
}


def bigan_networks(cfg: Config, shape: Shape) -> nn.ModuleDict:
    """G, E and a joint D for BiGAN and ALI, by ``cfg.arch``."""
    _check_arch(cfg, BIGAN_NETWORKS)
    return BIGAN_NETWORKS[cfg.arch](cfg, tuple(shape))
