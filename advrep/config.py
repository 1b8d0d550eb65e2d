"""One typed config for every run, saved beside the weights so a checkpoint rebuilds its model.

Settings come in three layers, later ones winning: the dataclass defaults below, the method's own
defaults (``Method.defaults``), a TOML/JSON file (``--config``), then ``--set key=value`` overrides.
Every layer is checked against the field list, so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A setting that does not exist, or a value of the wrong type."""


# Settings whose value is one of a few names; checked when set, so a typo fails before training.
CHOICES = {
    "prior": ("uniform", "gaussian", "mixture10", "swiss_roll"),
    "aae_optimizer": ("sgd", "adam"),
    "objective": ("inverse", "minimax"),
    "nonfinite": ("stop", "skip"),
    "recon_loss": ("l2", "l1"),
    "arch": ("mlp", "dcgan", "resnet"),
    "device": ("cpu", "cuda", "mps", "auto"),
    "precision": ("fp32", "bf16", "fp16"),
    "val_split": ("last", "bigan_code"),  # advrep.eval.splits.VAL_SPLITS
}
POSITIVE = ("latent_dim", "hidden", "batch_size", "lr", "width", "encoder_lr_mult", "encoder_scale", "bn_batches",
            "bn_eps")


@dataclass
class Config:
    """Every setting of a run, one flat typed record saved as config.json and inside every checkpoint.

    Build one with ``advrep.methods.make_config`` (which layers the method's defaults, a file and
    overrides); ``updated`` returns a checked copy. Example::

        cfg = make_config("bigan", data="digits", latent_dim=16)
        cfg.updated({"lr": "1e-4"}).lr          # 0.0001: strings from --set are parsed and checked
        Config.from_dict(json.loads(Path("runs/demo/config.json").read_text()))
    """

    # what to train, on what
    method: str = "bigan"
    data: str = "mnist"
    data_dir: str | None = None
    image_size: int = 0  # image folders: resize and centre-crop to this size (0: the most common size)
    seed: int = 0

    # model (BiGAN paper, permutation-invariant MNIST: 50-d uniform latent, 1024-1024 MLPs)
    latent_dim: int = 50
    hidden: int = 1024
    prior: str = "uniform"  # uniform on [-1, 1] | gaussian
    objective: str = "inverse"  # inverse (label-flipped, non-saturating) | minimax
    stochastic_encoder: bool = False  # ALI: reparameterised Gaussian posterior
    init_std: float = 0.02
    # Batch norm's epsilon in the BiGAN paper's MLPs (arch=mlp: every network of bigan/ali, gan, the
    # latent regressors and the autoencoder; BigBiGAN's G and E). The reference code adds 1e-8 to the
    # variance; 1e-5 (PyTorch's default) is what every run before 2026-12-05 used, and matters where
    # units' batch variances are small (the regressors' encoders: ~1e-4 in LR, ~1e-5 in JLR).
    bn_eps: float = 1e-5
    # image networks (advrep.nets.factory): mlp = the MLPs above; dcgan = strided convolutions;
    # resnet = BigGAN-style residual blocks with spectral norm. `width` is the conv nets' channel base.
    arch: str = "mlp"
    width: int = 64
    spectral_norm: bool = False  # on dcgan discriminators (resnet discriminators always have it)

    # BigBiGAN (Donahue & Simonyan 2019)
    unary_scores: bool = True  # hinge F(x) and H(z) scores beside the joint J score (section 2)
    encoder_lr_mult: float = 1.0  # the encoder's learning rate is lr times this
    ema_decay: float = 0.0  # exponential moving average of G's weights for samples; 0 = off
    encoder_scale: int = 1  # E sees the data at this many times G's resolution (G makes H/s x W/s)

    # optimisation (the BiGAN reference code's Adam settings)
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 2.5e-5
    epochs: int = 200  # at constant learning rate
    decay_epochs: int = 200  # then decaying exponentially ...
    final_lr_scale: float = 0.01  # ... to this multiple of lr
    nonfinite: str = "stop"  # stop | skip: what a NaN/inf loss or a gradient past the bound does
    max_grad_norm: float = 0.0  # bound on each optimiser's gradient norm; 0 = no bound
    # Wall-clock budget of this process's training, in minutes: the first epoch that ends past it is
    # treated as the last (evaluated, checkpointed, summary written) and --resume goes on from there.
    # 0 = none. For a fixed slot on a shared or lent machine, where the epochs that fit are unknown.
    max_minutes: float = 0.0

    # method-specific weights (latent regressors, autoencoders, ...)
    regress_weight: float = 1.0
    recon_loss: str = "l2"

    # adversarial autoencoders (Makhzani et al. 2016; methods aae, aae_labelled, aae_supervised,
    # aae_semi, aae_cluster, aae_dimred). Each cost has its own momentum SGD, as in the appendix:
    # reconstruction (encoder + decoder), adversarial (discriminators and the encoder as their
    # generator) and the semi-supervised cross-entropy; every rate drops 10x at each of aae_lr_drops.
    aae_prior_std: float = 1.0  # std of the Gaussian prior on z (the paper's likelihood runs: 5)
    aae_classes: int = 10  # width of the label one-hot (label-aware variants)
    aae_labels: int = 100  # labelled training examples, balanced per class, chosen by seed; 0 = all
    aae_clusters: int = 16  # categories of aae_cluster / aae_dimred
    aae_input_noise: float = 0.0  # std of Gaussian noise on the encoder's input, training only
    aae_input_dropout: float = 0.0  # dropout rate on the encoder's input, training only
    aae_optimizer: str = "sgd"  # sgd: the paper's per-cost momentum SGD | adam: the loop's Adam (lr, betas)
    aae_lr_recon: float = 0.01
    aae_momentum_recon: float = 0.9
    aae_lr_adv: float = 0.1
    aae_momentum_adv: float = 0.1
    aae_lr_semi: float = 0.1
    aae_momentum_semi: float = 0.9  # not given in the paper: the reconstruction cost's value
    aae_lr_drops: list[int] = field(default_factory=lambda: [50, 1000])  # epochs where rates drop 10x
    aae_head_distance: float = 6.0  # aae_dimred: cluster heads closer than this are pushed apart ...
    aae_head_weight: float = 1.0  # ... with this weight on the hinge cost

    # bookkeeping
    eval_every: int = 10  # epochs between 1NN evaluations (0: only at the end)
    sample_every: int = 10  # epochs between image grids
    checkpoint_every: int = 1  # epochs between checkpoints
    log_every: int = 50  # steps between metrics.jsonl lines
    keep_checkpoints: int = 2
    # After every epoch the trainer checks whether G draws one image for all of 64 fixed latents (a
    # collapse the D baseline's GAN never recovered from, docs/reliability.md) or, with an encoder,
    # whether G(E(x)) has stayed no closer to x than to another image for 3 epochs (a BiGAN whose D
    # won), and warns once of each. True: stop the run there instead (GeneratorCollapsed), so no time
    # goes into a game that is lost.
    stop_on_collapse: bool = False
    # The reconstruction ratio (the evaluation's: ||x - G(E(x))|| over the distance from G(E(x)) to
    # another image, on 256 training images) at or above which, 3 epochs in a row from step 1000 on,
    # the game counts as lost. Set on the MNIST BiGAN recipe: a failed run 0.98-1.00 after epochs 4-6
    # (0.87-0.99 before), a healthy one 0.78-0.83 after epochs 3-10 (0.92 after epoch 1); 0: off.
    unlinked_ratio: float = 0.95
    # "1nn_val.<feature>", e.g. "1nn_val.penultimate": at every evaluation also score 1NN on the
    # validation split (val_split: 10k training images against the rest) and keep the weights where it
    # peaked in RUN/best/ (load_model("RUN/best")). Selection never sees the test set. "": off.
    keep_best: str = ""
    # Train on the other N - 10000 training images only, so the validation split (val_split) holds
    # images the model never saw, and score 1NN on it at every evaluation ("1nn_val.*": the held-out
    # images against the ones trained on). This is the BiGAN reference code's protocol: its
    # train_mnist.sh trains on 50k MNIST images and reports 1NN of 10k held-out ones against them.
    hold_out_val: bool = False
    # Which 10000 training images are the validation split (1nn_val.*, keep_best, hold_out_val):
    # "last" | "bigan_code", the BiGAN reference code's seeded shuffle (advrep.eval.splits).
    val_split: str = "last"
    # Training batches (of 128, drawn at random) whose statistics are averaged when batch norm's population
    # statistics are recomputed before an evaluation. The BiGAN reference code's train_mnist.sh averages
    # 1000 (--deploy_iters 1000); 100 costs a tenth of the time and was the value before this setting
    # (then capped at one epoch's worth of batches, which mattered only for datasets under 12,800 images).
    bn_batches: int = 100
    device: str = "cpu"  # cpu | cuda | mps | auto
    precision: str = "fp32"  # fp32 | bf16 (autocast; CPU, CUDA) | fp16 (autocast + loss scaling; CUDA)
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True
    tensorboard: bool = False  # mirror metrics.jsonl as TensorBoard scalars in RUN/tensorboard

    image_shape: list[int] = field(default_factory=list)  # (C, H, W), filled in from the data
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, never read by code

    @classmethod
    def field_names(cls) -> list[str]:
        """Every setting's name, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (lists and dicts copied)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The settings as indented JSON with sorted keys (what config.json holds)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> Config:
        """Config() updated with ``values``; unknown keys and wrong types raise ConfigError (naming
        ``source``)."""
        return cls().updated(values, source=source)

    def updated(self, values: dict[str, Any], *, source: str = "config") -> Config:
        """A copy with ``values`` applied; unknown keys and wrong types raise ConfigError."""
        hints = typing.get_type_hints(type(self))
        checked = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(_unknown_key_message(key, source))
            checked[key] = _coerce(key, value, hints[key], source)
            if key in CHOICES and checked[key] not in CHOICES[key]:
                raise ConfigError(f"{source}: setting {key!r} is {checked[key]!r}; choose one of "
                                  f"{', '.join(CHOICES[key])}.")
            if key == "keep_best" and checked[key] and not checked[key].startswith("1nn_val."):
                raise ConfigError(f"{source}: setting 'keep_best' is {checked[key]!r}; it must name a "
                                  "validation 1NN score such as '1nn_val.penultimate' (selecting on a "
                                  "test-set number would report an optimistic result), or be '' (off).")
            if key == "max_minutes" and not checked[key] >= 0:
                raise ConfigError(f"{source}: setting 'max_minutes' is {checked[key]!r}; give a number of "
                                  "minutes >= 0 (0 = no budget).")
            if key == "unlinked_ratio" and not checked[key] >= 0:
                raise ConfigError(f"{source}: setting 'unlinked_ratio' is {checked[key]!r}; give a "
                                  "reconstruction ratio >= 0 (0 turns the lost-game check off).")
            if key in POSITIVE and not checked[key] > 0:
                raise ConfigError(f"{source}: setting {key!r} must be positive, got {checked[key]!r}.")
        return dataclasses.replace(self, **checked)


def _unknown_key_message(key: str, source: str) -> str:
    names = Config.field_names()
    close = difflib.get_close_matches(key, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"{source}: unknown setting {key!r}.{hint} Valid settings: {', '.join(names)}."


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Check ``value`` against the field's type; strings (from --set) are parsed."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{source}: setting {key!r} cannot be empty (None); give a value.")
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if origin is type(None):
            continue
        if origin is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
        elif origin is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                try:
                    return int(value)
                except ValueError:
                    pass
        elif origin is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        elif origin is str:
            if isinstance(value, str):
                return value
        elif origin is list:
            if isinstance(value, str):
                value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
            if isinstance(value, (list, tuple)):
                try:
                    return [int(v) for v in value]
                except (TypeError, ValueError):
                    pass
        elif origin is dict:
            if isinstance(value, dict):
                return value
            if isinstance(value, str):
                try:
                    parsed = json.loads(value)
                except json.JSONDecodeError:
                    parsed = None
                if isinstance(parsed, dict):
                    return parsed
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise ConfigError(f"{source}: setting {key!r} must be {names}, got {value!r} ({type(value).__name__}).")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["lr=1e-3", "epochs=5"]`` -> ``{"lr": "1e-3", "epochs": "5"}`` (typed later by Config)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value, for example --set lr=1e-4.")
        out[key.strip()] = value.strip()
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML or JSON file of settings (only what differs from the defaults)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass an existing .toml or .json file.")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            values = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a table of settings, got {type(values).__name__}.")
    return values
