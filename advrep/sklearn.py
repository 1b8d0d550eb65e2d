"""advrep's encoders as scikit-learn transformers: BiGAN, ALI, the adversarial autoencoder (and every
other unsupervised method with an encoder) in a Pipeline, a GridSearchCV or a ColumnTransformer.

``AdversarialEncoder(method="bigan")`` follows scikit-learn's estimator contract: ``__init__`` stores
its settings and nothing else, ``fit(X)`` trains with advrep's one training loop (``advrep.train``)
and returns self, ``transform(X)`` returns the encoder's features as a numpy array, and everything
learnt ends in an underscore (``method_``, ``n_features_in_``, ...). Training is unsupervised: ``y``
is accepted and ignored, as for PCA.

Example, on scikit-learn's 8x8 digits::

    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from advrep.sklearn import AdversarialEncoder

    X, y = load_digits(return_X_y=True)          # X: [1797, 64], pixel values 0..16
    pipe = make_pipeline(AdversarialEncoder("bigan", latent_dim=16, hidden=256, epochs=30, random_state=0),
                         LogisticRegression(max_iter=1000))
    pipe.fit(X / 16.0, y)                          # the encoder trains on X alone; the probe on its codes

Inputs are [N, D] arrays (an image of D = s * s pixels is treated as 1 x s x s, other widths as a
1 x 1 x D "image", or pass ``image_shape``) or image stacks [N, C, H, W]. Values must lie in [0, 1],
the range of the generators' sigmoid outputs; ``input_range="minmax"`` instead rescales by the
training data's minimum and maximum (one scalar pair, so the relative scale of features is kept).
"""

from __future__ import annotations

import math
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .checkpoint import load_model
from .config import Config
from .data import Dataset
from .evaluate import compute_features, refresh_batch_norm
from .methods import get_method, make_config

__all__ = ["AdversarialEncoder"]

# The constructor's settings that are Config fields of the same name (None: the method's default).
_CONFIG_PARAMS = ("latent_dim", "hidden", "epochs", "decay_epochs", "lr", "batch_size", "prior", "device")
# Per-method settings for an estimator's budget of tens of epochs on small data, applied over the method's
# defaults and under the user's settings. The AAE paper's recipe (momentum SGD, a std-5 prior, weights
# N(0, 0.01^2)) needs thousands of MNIST epochs; in 30 epochs on the digits it leaves the code near
# chance for a linear probe (58% with SGD), while Adam at 1e-3 with a unit prior reaches 88%.
ESTIMATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "aae": {"aae_optimizer": "adam", "lr": 1e-3, "aae_prior_std": 1.0, "init_std": 0.05},
}
# Config fields the estimator sets itself; a user's `settings` may not override them.
_OWNED = ("method", "seed", "data", "image_shape", "progress", "sample_every", "eval_every",
          "checkpoint_every", "keep_checkpoints")


def _strict_range(x: np.ndarray) -> tuple[float, float]:
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError("AdversarialEncoder: X must lie in [0, 1] (the generators end in a sigmoid), "
                         f"but its values span [{lo:.4g}, {hi:.4g}]. Scale it first (divide 8-bit images "
                         "by 255, or put MinMaxScaler before this step), or pass input_range='minmax' to "
                         "rescale by the training data's range.")
    return 0.0, 1.0


def _minmax_range(x: np.ndarray) -> tuple[float, float]:
    return float(x.min()), float(x.max())


# input_range -> (fit-time data -> (lo, hi) mapped onto [0, 1]); transform reuses the fitted pair.
INPUT_RANGES = {"strict": _strict_range, "minmax": _minmax_range}


class AdversarialEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Train an advrep method on X and use its encoder as a feature transform.

    Parameters (all stored as given; checked in ``fit``):

    method: any advrep method with an encoder that trains without labels: ``"bigan"``, ``"ali"``,
        ``"aae"``, ``"bigbigan"``, ``"latent_regressor"``, ``"autoencoder"``, ... (``advrep methods``).
    latent_dim, hidden, epochs, decay_epochs, lr, batch_size, prior, device: the ``advrep.config.Config``
        fields of the same name; None keeps the method's own default (lr, batch_size, prior). The
        defaults here are sized for small tabular and 8x8 image sets, not the papers' MNIST recipes
        (``ESTIMATOR_DEFAULTS`` adds per-method ones, e.g. Adam for the AAE). batch_size is capped at
        the number of training samples.
    features: which of the method's named features ``transform`` returns: ``"z"`` (the code, [N,
        latent_dim]), or for BiGAN/ALI ``"z_pre"`` (before squashing into the prior's support) and
        ``"penultimate"`` (the encoder's last hidden layer, [N, hidden]; the BiGAN paper's features).
    input_range: ``"strict"`` (X must be in [0, 1]) or ``"minmax"`` (rescale by the training range).
    image_shape: (C, H, W) of one row of a 2-D X; None infers it (see the module docstring).
    settings: other Config fields as a dict, e.g. ``{"aae_optimizer": "adam", "objective": "minimax"}``.
    runs_dir: a folder to keep each fit's run directory in (config, metrics.jsonl, checkpoint: open it
        with ``advrep report``); None trains in a temporary directory deleted after fitting.
    random_state: int, RandomState or None: the training seed (data order, initial weights, z draws).
    verbose: show the training progress bar.

    Fitted attributes: ``method_`` (the trained ``advrep.methods.Method``, networks in eval mode),
    ``config_`` (its Config), ``n_features_in_``, ``feature_names_in_`` (DataFrame input only),
    ``image_shape_``, ``input_min_``/``input_max_`` (mapped onto 0 and 1), ``n_components_`` (width of
    the output), ``training_summary_`` (wall time, images/s), ``run_dir_`` (None when temporary).

    Example::

        enc = AdversarialEncoder("ali", latent_dim=8, hidden=64, epochs=5, random_state=0).fit(X)
        Z = enc.transform(X)             # [N, 8] float, the posterior means
        X_hat = enc.inverse_transform(Z) # [N, D] decoded back through G, in X's units
    """

    def __init__(self, method: str = "bigan", *, latent_dim: int = 16, hidden: int = 256, epochs: int = 20,
                 decay_epochs: int = 0, lr: float | None = None, batch_size: int | None = None,
                 prior: str | None = None, features: str = "z", input_range: str = "strict",
                 image_shape: tuple[int, int, int] | None = None, settings: dict | None = None,
                 runs_dir: str | None = None, device: str = "cpu", random_state=None, verbose: bool = False):
        self.method = method
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.epochs = epochs
        self.decay_epochs = decay_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.prior = prior
        self.features = features
        self.input_range = input_range
        self.image_shape = image_shape
        self.settings = settings
        self.runs_dir = runs_dir
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # --- scikit-learn protocol -------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # transform returns float32 for float32 input and float64 for anything else.
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def fit(self, X, y=None):
        """Train the method on X ([N, D] or [N, C, H, W]); y is ignored. Returns self."""
        image_shape, X = self._flatten(X, fitting=True)
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        if self.input_range not in INPUT_RANGES:
            raise ValueError(f"AdversarialEncoder: input_range={self.input_range!r}; choose one of "
                             f"{', '.join(INPUT_RANGES)}.")
        self.image_shape_ = self._image_shape(image_shape, X.shape[1])
        self.input_min_, self.input_max_ = INPUT_RANGES[self.input_range](X)
        cfg = self._config(n_samples=X.shape[0])
        if not get_method(cfg.method).has_encoder:
            raise ValueError(f"AdversarialEncoder: method {cfg.method!r} has no encoder to transform with; "
                             "choose a method with an encoder, e.g. bigan, ali, aae, bigbigan, latent_regressor "
                             "or autoencoder (`advrep methods` lists them all).")
        data = Dataset(self._to_images(X), None, "sklearn-array")
        with _own_rng_state(), tempfile.TemporaryDirectory(prefix="advrep-sklearn-") as tmp:
            run_dir = self._new_run_dir(cfg) if self.runs_dir is not None else Path(tmp) / "run"
            # Imported here: advrep.train imports the CLI-facing loop, which this module need not load early.
            from .train import train

            self.training_summary_ = train(cfg, run_dir, train_set=data, test_set=data)
            method = load_model(run_dir, device=cfg.device)
            # As `advrep eval` does: batch-norm statistics averaged over training batches, not the loop's
            # moving average of the last few.
            refresh_batch_norm(method, data, seed=cfg.seed, batches=cfg.bn_batches)
        method.nets.eval()
        self.method_, self.config_ = method, method.cfg
        self.run_dir_ = run_dir if self.runs_dir is not None else None
        available = self._named_features(data.x[:2])
        if self.features not in available:
            raise ValueError(f"AdversarialEncoder: method {cfg.method!r} has no feature {self.features!r}; "
                             f"choose one of {', '.join(sorted(available))}.")
        self.n_components_ = int(available[self.features].shape[1])
        self._n_features_out = self.n_components_  # names for get_feature_names_out
        return self

    def transform(self, X):
        """The encoder's ``features`` of X: [N, n_components_], float32 for float32 X, else float64."""
        check_is_fitted(self, "method_")
        _, X = self._flatten(X, fitting=False)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        self._check_range(X)
        with torch.no_grad():
            out = self._named_features(self._to_images(X))[self.features]
        return out.numpy().astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        """Decode codes Z ([N, latent_dim], from ``transform`` with features="z") through the generator:
        [N, D] in X's units (or [N, C, H, W] when fitted on images)."""
        check_is_fitted(self, "method_")
        if self.features != "z" or not self.method_.has_generator:
            raise ValueError("AdversarialEncoder: inverse_transform decodes codes z, so it needs "
                             "features='z' and a method with a generator; this one has "
                             f"features={self.features!r}, method {self.config_.method!r}.")
        Z = np.asarray(X)
        if Z.ndim != 2 or Z.shape[1] != self.n_components_:
            raise ValueError(f"AdversarialEncoder: inverse_transform takes codes [N, {self.n_components_}], "
                             f"got shape {Z.shape}.")
        dtype = Z.dtype if Z.dtype in (np.float32, np.float64) else np.float64
        device = next(self.method_.nets.parameters()).device
        with torch.no_grad():
            x = torch.cat([self.method_.generate(torch.as_tensor(Z[i:i + 2000], dtype=torch.float32,
                                                                 device=device)).cpu()
                           for i in range(0, len(Z), 2000)]) if len(Z) else torch.zeros(0, *self.image_shape_)
        x = x.numpy().astype(np.float64) * (self.input_max_ - self.input_min_) + self.input_min_
        x = x.astype(dtype)
        return x if self._fitted_on_images else x.reshape(len(x), -1)

    # --- helpers ---------------------------------------------------------------------------------
    def _flatten(self, X, *, fitting: bool):
        """Image stacks [N, C, H, W] -> ([C, H, W], [N, C*H*W]); anything else passes through."""
        if getattr(X, "ndim", None) == 4 or (isinstance(X, (list, tuple)) and np.ndim(X) == 4):
            X = np.asarray(X)
            shape = tuple(int(s) for s in X.shape[1:])
            if fitting:
                self._fitted_on_images = True
            elif shape != tuple(self.image_shape_):
                raise ValueError(f"AdversarialEncoder: fitted on images {tuple(self.image_shape_)}, got "
                                 f"images {shape}.")
            return shape, X.reshape(X.shape[0], -1)
        if fitting:
            self._fitted_on_images = False
        return None, X

    def _image_shape(self, from_data, width: int) -> tuple[int, int, int]:
        shape = from_data or self.image_shape
        if shape is None:
            side = math.isqrt(width)
            return (1, side, side) if side * side == width else (1, 1, width)
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or math.prod(shape) != width:
            raise ValueError(f"AdversarialEncoder: image_shape={shape} must be (C, H, W) with C*H*W equal to "
                             f"X's {width} features.")
        return shape

    def _config(self, *, n_samples: int) -> Config:
        settings = dict(self.settings or {})
        clash = sorted(set(settings) & set(_CONFIG_PARAMS + _OWNED))
        if clash:
            raise ValueError(f"AdversarialEncoder: settings may not hold {clash}; pass them as "
                             "AdversarialEncoder(...) parameters (method, seed via random_state, ...).")
        explicit = {k: getattr(self, k) for k in _CONFIG_PARAMS if getattr(self, k) is not None}
        given = self.random_state
        seed = given if isinstance(given, int) and not isinstance(given, bool) \
            else int(check_random_state(given).randint(np.iinfo(np.int32).max))
        overrides = {**ESTIMATOR_DEFAULTS.get(self.method, {}), **settings}
        cfg = make_config(self.method, overrides=overrides, **explicit, seed=seed, data="sklearn-array",
                          progress=bool(self.verbose), sample_every=0, eval_every=0, checkpoint_every=0,
                          keep_checkpoints=1)
        if cfg.epochs + cfg.decay_epochs < 1:
            raise ValueError(f"AdversarialEncoder: epochs={cfg.epochs} and decay_epochs={cfg.decay_epochs} "
                             "train nothing; give at least one epoch.")
        # A small X still trains: one batch of all of it rather than the loop's "fewer than batch_size".
        return cfg.updated({"batch_size": min(cfg.batch_size, n_samples)})

    def _new_run_dir(self, cfg: Config) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Path(self.runs_dir) / f"{cfg.method}-{stamp}-{uuid.uuid4().hex[:6]}"

    def _check_range(self, X: np.ndarray) -> None:
        if self.input_range == "strict" and X.size:
            _strict_range(X)

    def _to_images(self, X: np.ndarray) -> torch.Tensor:
        """[N, D] in the user's units -> float32 [N, C, H, W] with the fitted range mapped onto [0, 1]."""
        span = self.input_max_ - self.input_min_
        scaled = (X.astype(np.float64) - self.input_min_) / (span if span > 0 else 1.0)
        return torch.from_numpy(scaled.astype(np.float32)).reshape(len(X), *self.image_shape_)

    def _named_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every named feature of the method for images x [N, C, H, W]: {name: [N, F]} on the CPU."""
        device = next(self.method_.nets.parameters()).device
        self.method_.nets.eval()
        return compute_features(self.method_.features, x, device=device)


@contextmanager
def _own_rng_state() -> Iterator[None]:
    """Restore Python's, numpy's and torch's global random states after training (the loop seeds them),
    so fitting an estimator does not reseed the caller's random numbers."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
