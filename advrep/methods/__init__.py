"""Every training method, by name. A new method is one file, one entry here and one config file."""

from __future__ import annotations

from ..config import Config, read_config_file
from .aae import AAE, AAELabelled, AAESupervised
from .aae_semi import AAECluster, AAEDimRed, AAESemi
from .autoencoder import Autoencoder
from .base import Method
from .bigan import ALI, BiGAN
from .bigbigan import BigBiGAN
from .gan import GAN
from .latent_regressor import JointLatentRegressor, LatentRegressor

METHODS: dict[str, type[Method]] = {m.name: m for m in (BiGAN, ALI, GAN, LatentRegressor,
                                                           JointLatentRegressor, Autoencoder, BigBiGAN,
                                                           AAE, AAELabelled, AAESupervised, AAESemi,
                                                           AAECluster, AAEDimRed)}


def get_method(name: str) -> type[Method]:
    """The Method class registered under ``name``; a ValueError lists the registered names otherwise.

    Example: ``get_method("ali").defaults`` -> ``{"prior": "gaussian", "stochastic_encoder": True, ...}``.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}.") from None


def make_config(method: str, *, file: str | None = None, overrides: dict | None = None, **settings) -> Config:
    """Config defaults, then the method's defaults, then a config file, then overrides and settings.

    Example::

        cfg = make_config("bigan", data="digits", hidden=256, latent_dim=16, epochs=20)
        cfg = make_config("ali", file="configs/ali_mnist.toml", overrides={"lr": "1e-4"})  # --set strings
    """
    cfg = Config(method=get_method(method).name).updated(get_method(method).defaults, source=f"method {method}")
    if file is not None:
        cfg = cfg.updated(read_config_file(file), source=str(file))
    cfg = cfg.updated(overrides or {}, source="--set")
    cfg = cfg.updated(settings, source="settings")
    if cfg.method != method:
        raise ValueError(f"settings name method {cfg.method!r} but {method!r} was asked for; drop one.")
    return cfg


def build_method(cfg: Config, image_shape: tuple[int, int, int]) -> Method:
    """A freshly initialised method for images of ``image_shape`` (C, H, W); train it with
    ``advrep.train.train`` or load trained weights with ``advrep.checkpoint.load_model``.

    Example: ``build_method(make_config("bigan", hidden=32, latent_dim=4), (1, 8, 8)).nets.keys()``
    -> ``["G", "E", "D"]``.
    """
    return get_method(cfg.method)(cfg, image_shape)


__all__ = ["METHODS", "Method", "build_method", "get_method", "make_config"]
