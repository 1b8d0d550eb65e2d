"""Adversarial autoencoders (Makhzani, Shlens, Jaitly, Goodfellow & Frey, ICLR 2016 workshop / arXiv
1511.05644): the shared machinery and the variants that keep one continuous code z.

An AAE trains an autoencoder in phases on every mini-batch (section 2):
  1. reconstruction: encoder q(z|x) and decoder p(x|z) minimise half the squared error;
  2. regularisation: a discriminator D learns to tell prior samples z ~ p(z) from codes z ~ q(z|x),
     then the encoder, as D's generator, learns to fool it, so the aggregated posterior q(z) = E_x q(z|x)
     is pushed onto p(z).
Each phase is a fresh forward pass after the previous phase's update (``Method.phases``). Every cost has
its own optimiser: momentum SGD with the appendix's per-cost rates and momenta (``aae_optimizer=sgd``),
or the loop's Adam (``aae_optimizer=adam``).

Methods here: ``aae`` (section 2: Gaussian / mixture / swiss-roll / uniform priors, deterministic or
Gaussian q(z|x)), ``aae_labelled`` (section 3: a one-hot label, or 'unlabelled', tells D which
mixture component a code must fall in) and ``aae_supervised`` (section 4: the label goes to the
decoder, so z keeps only style). The categorical-code variants (semi-supervised, clustering,
dimensionality reduction) are in ``aae_semi.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.aae_mlp import CodeDiscriminator, Decoder, GaussianEncoder, init_aae_
from ..nets.priors import CONDITIONAL_PRIORS, PRIORS
from . import losses as L
from .base import Method

# The appendix's MNIST settings shared by every AAE: 1000-unit layers, N(0, 0.01^2) weights, mini-batches
# of 100, no weight decay; rates fall 10x at epochs 50 and 1000 (Config.aae_lr_drops).
AAE_DEFAULTS: dict[str, Any] = {"hidden": 1000, "init_std": 0.01, "batch_size": 100, "weight_decay": 0.0,
                                "prior": "gaussian", "decay_epochs": 0, "lr": 1e-4, "beta1": 0.5}


# --- pure pieces --------------------------------------------------------------------------------------

def code_discriminator_loss(prior_logits: torch.Tensor, code_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(z_prior)] - E[log(1 - D(z_code))]: D labels prior samples 1 and the encoder's codes 0."""
    return F.softplus(-prior_logits).mean() + F.softplus(code_logits).mean()


def code_generator_loss(code_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(z_code)]: the encoder, as generator, wants its codes taken for prior samples (the
    non-saturating form of Goodfellow et al., which the AAE paper's generator phase uses)."""
    return F.softplus(-code_logits).mean()


def half_squared_error(x: torch.Tensor, x_hat: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """The appendix's reconstruction cost, half the squared Euclidean error per example, batch-averaged
    (``kind='l1'``: the summed absolute error instead)."""
    return (0.5 if kind == "l2" else 1.0) * L.reconstruction_loss(x, x_hat, kind)


def balanced_subset(labels: torch.Tensor, n: int, *, seed: int) -> torch.Tensor:
    """Indices of ``n`` labelled examples, n / C from each of the C classes present, drawn at random from
    ``seed`` (the appendix: "chosen at random, distributed evenly across the classes"); sorted [n] int64.
    n <= 0 or n >= len(labels) gives every index."""
    labels = torch.as_tensor(labels).long().cpu()
    if n <= 0 or n >= len(labels):
        return torch.arange(len(labels))
    classes = torch.unique(labels)
    if n % len(classes):
        raise ValueError(f"aae_labels={n} cannot be split evenly over {len(classes)} classes; use a multiple "
                         f"of {len(classes)} (e.g. {len(classes) * max(1, n // len(classes))}) or 0 for all.")
    per = n // len(classes)
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in classes.tolist():
        idx = (labels == c).nonzero().squeeze(1)
        if len(idx) < per:
            raise ValueError(f"aae_labels={n} needs {per} examples of class {c}, but the data has "
                             f"{len(idx)}; lower aae_labels.")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per]])
    return torch.cat(picks).sort().values


# --- the shared base ----------------------------------------------------------------------------------

class AAEBase(Method):
    """What every AAE shares: per-cost optimisers, input corruption, the labelled subset, the prior."""

    defaults: ClassVar[dict[str, Any]] = AAE_DEFAULTS
    # optimiser name -> which cost's SGD settings it takes (Config.aae_lr_<cost>, aae_momentum_<cost>)
    cost_of: ClassVar[dict[str, str]] = {"AE": "recon", "D": "adv", "Gen": "adv", "Sup": "semi"}
    uses_labelled_subset: ClassVar[bool] = False

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self._labelled: tuple[torch.Tensor, torch.Tensor] | None = None  # (images [N, C, H, W], labels [N])
        self.labelled_idx: torch.Tensor | None = None  # indices into the training set, set by prepare()

    # -- optimisers (hooks the loop calls) --
    # In sgd mode every optimiser runs at its cost's rate, aae_lr_<cost>: the loop multiplies cfg.lr by
    # lr_multipliers() and by lr_schedule(epoch), so the multiplier is aae_lr_<cost> / cfg.lr.
    def lr_multipliers(self) -> dict[str, float]:
        if self.cfg.aae_optimizer == "adam":
            return {}
        return {name: getattr(self.cfg, f"aae_lr_{self.cost_of[name]}") / self.cfg.lr
                for name in self.optimizers}

    def optimizer(self, name, params, lr):
        if self.cfg.aae_optimizer == "adam":
            return None  # the loop's Adam with cfg.lr, betas and weight decay
        momentum = getattr(self.cfg, f"aae_momentum_{self.cost_of[name]}")
        return torch.optim.SGD(params, lr=lr, momentum=momentum)

    def lr_schedule(self, epoch: int) -> float | None:
        if self.cfg.aae_optimizer == "adam":
            return None
        return 0.1 ** sum(epoch >= e for e in self.cfg.aae_lr_drops)

    # -- data --
    def prepare(self, train) -> None:
        if not self.uses_labelled_subset:
            return
        if train.y is None:
            raise ValueError(f"method {self.name!r} needs labels, but dataset {train.name!r} has none.")
        self.labelled_idx = balanced_subset(train.y, self.cfg.aae_labels, seed=self.cfg.seed)
        self._labelled = (train.x, train.y)  # references, not copies; rows are picked per mini-batch

    def labelled_batch(self, x: torch.Tensor, y: torch.Tensor | None, rng: torch.Generator | None):
        """A labelled mini-batch (x [B, C, H, W], y [B]) drawn with replacement from the subset prepare()
        chose. Before prepare() (a bare train_step) the current batch's own labels are used."""
        if self._labelled is None:
            if y is None:
                raise ValueError(f"method {self.name!r} needs labels: call prepare(train_set) first, "
                                 "or pass y.")
            return x, y
        xs, ys = self._labelled
        device = x.device
        pick = torch.randint(len(self.labelled_idx), (x.shape[0],), generator=rng,
                             device=rng.device if rng is not None else "cpu").cpu()
        rows = self.labelled_idx[pick]
        return xs[rows].to(device), ys[rows].to(device)

    def corrupt(self, x_flat: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        """The encoder's training input: Gaussian noise (appendix A.2: std 0.3) and/or input dropout
        (A.3: 20%) on x [B, D]; the reconstruction target stays clean."""
        cfg = self.cfg
        if cfg.aae_input_noise > 0:
            noise = torch.randn(x_flat.shape, generator=rng, device=x_flat.device)
            x_flat = x_flat + cfg.aae_input_noise * noise
        if cfg.aae_input_dropout > 0:
            keep = torch.rand(x_flat.shape, generator=rng, device=x_flat.device) >= cfg.aae_input_dropout
            x_flat = x_flat * keep / (1.0 - cfg.aae_input_dropout)
        return x_flat

    def sample_style(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z) from cfg.prior; a Gaussian prior has std aae_prior_std. [n, latent_dim]"""
        device = next(self.nets.parameters()).device
        z = PRIORS[self.cfg.prior](n, self.cfg.latent_dim, generator=rng, device=device)
        return z * self.cfg.aae_prior_std if self.cfg.prior == "gaussian" else z

    def sample_prior(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_style(n, rng)

    def generate(self, z):
        return self.images(self.nets["G"](z))


# --- section 2: the unsupervised AAE --------------------------------------------------------------------

class AAE(AAEBase):
    name = "aae"
    description = "adversarial autoencoder: q(z) matched to a Gaussian, mixture or swiss-roll prior (sec. 2)"
    # The paper's likelihood recipe (appendix A.1): an 8-D Gaussian code with std 5.
    defaults = {**AAE_DEFAULTS, "latent_dim": 8, "aae_prior_std": 5.0, "epochs": 1000}
    optimizers = {"AE": ("E", "G"), "D": ("D",), "Gen": ("E",)}
    phases = (("AE",), ("D",), ("Gen",))

    def build(self) -> nn.ModuleDict:
        cfg = self.cfg
        nets = nn.ModuleDict({
            "E": GaussianEncoder(self.data_dim, cfg.latent_dim, cfg.hidden,
                                 stochastic=cfg.stochastic_encoder),
            "G": Decoder(cfg.latent_dim, self.data_dim, cfg.hidden),
            "D": CodeDiscriminator(self.d_input_dim(), cfg.hidden),
        })
        return init_aae_(nets, cfg.init_std)

    def d_input_dim(self) -> int:
        return self.cfg.latent_dim

    def posterior(self, x_flat: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        """A code drawn from q(z|x): the encoder's output, or mean + std * eps for a Gaussian posterior."""
        mean, std = self.nets["E"](x_flat)
        if std is None:
            return mean
        return mean + std * torch.randn(mean.shape, generator=rng, device=mean.device)

    def losses(self, phase, x, y, rng):
        x = self.flat(x)  # [B, D]
        if phase == 0:  # reconstruction
            x_hat = self.nets["G"](self.posterior(self.corrupt(x, rng), rng))  # [B, D]
            return {"AE": half_squared_error(x, x_hat, self.cfg.recon_loss)}, \
                {"recon_mse": (x - x_hat.detach()).pow(2).mean()}
        if phase == 1:  # regularisation, discriminator step
            with torch.no_grad():
                code = self.posterior(self.corrupt(x, rng), rng)  # [B, latent]
            prior, fake = self.nets["D"](self.sample_style(x.shape[0], rng)), self.nets["D"](code)
            return {"D": code_discriminator_loss(prior, fake)}, \
                {"D_prior": torch.sigmoid(prior).mean(), "D_code": torch.sigmoid(fake).mean()}
        fake = self.nets["D"](self.posterior(self.corrupt(x, rng), rng))  # regularisation, encoder step
        return {"Gen": code_generator_loss(fake)}, {}

    def encode(self, x):
        return self.nets["E"](self.flat(x))[0]  # the posterior mean

    def features(self, x):
        return {"z": self.encode(x)}


# --- section 3: label information in the adversarial regularisation -------------------------------------

class AAELabelled(AAE):
    """D sees [z, one-hot(label or 'unlabelled')] (figure 3). For a labelled example the positive sample
    comes from the prior component of its label, so the encoder must put class k in component k; for an
    unlabelled one the token is the extra 'unlabelled' slot and the positive comes from the whole
    mixture. Each step uses the loop's batch as unlabelled data plus a labelled batch from the subset."""

    name = "aae_labelled"
    description = "AAE whose discriminator is told the label: class k must land in prior component k (sec. 3)"
    defaults = {**AAE_DEFAULTS, "latent_dim": 2, "prior": "mixture10", "aae_labels": 10000, "epochs": 500}
    uses_labelled_subset = True

    def build(self) -> nn.ModuleDict:
        if self.cfg.prior not in CONDITIONAL_PRIORS:
            raise ValueError(f"method {self.name!r} places labelled codes in prior components, so it needs a "
                             f"prior made of labelled parts ({', '.join(CONDITIONAL_PRIORS)}); got prior="
                             f"{self.cfg.prior!r}. Set prior=mixture10 or prior=swiss_roll.")
        return super().build()

    def d_input_dim(self) -> int:
        return self.cfg.latent_dim + self.cfg.aae_classes + 1  # z, then the label one-hot + 'unlabelled'

    def _token(self, labels: torch.Tensor | None, n: int, device) -> torch.Tensor:
        k = self.cfg.aae_classes
        idx = torch.full((n,), k, device=device, dtype=torch.long) if labels is None else labels.long()
        return F.one_hot(idx, k + 1).to(torch.float32)  # [n, K + 1]

    def _prior(self, labels: torch.Tensor | None, n: int, rng) -> torch.Tensor:
        device = next(self.nets.parameters()).device
        return CONDITIONAL_PRIORS[self.cfg.prior](n, self.cfg.latent_dim, generator=rng, device=device,
                                                  labels=labels, components=self.cfg.aae_classes)

    def losses(self, phase, x, y, rng):
        if phase == 0:
            return super().losses(phase, x, y, rng)
        D = self.nets["D"]
        x_l, y_l = self.labelled_batch(x, y, rng)
        xu, xl = self.flat(x), self.flat(x_l)  # [B, D] each
        n, dev = xu.shape[0], xu.device
        tok_u, tok_l = self._token(None, n, dev), self._token(y_l, xl.shape[0], dev)
        if phase == 1:
            with torch.no_grad():
                code_u = self.posterior(self.corrupt(xu, rng), rng)
                code_l = self.posterior(self.corrupt(xl, rng), rng)
            prior = D(torch.cat([torch.cat([self._prior(None, n, rng), tok_u], 1),
                                 torch.cat([self._prior(y_l, xl.shape[0], rng), tok_l], 1)]))
            fake = D(torch.cat([torch.cat([code_u, tok_u], 1), torch.cat([code_l, tok_l], 1)]))
            return {"D": code_discriminator_loss(prior, fake)}, \
                {"D_prior": torch.sigmoid(prior).mean(), "D_code": torch.sigmoid(fake).mean()}
        code_u = self.posterior(self.corrupt(xu, rng), rng)
        code_l = self.posterior(self.corrupt(xl, rng), rng)
        fake = D(torch.cat([torch.cat([code_u, tok_u], 1), torch.cat([code_l, tok_l], 1)]))
        return {"Gen": code_generator_loss(fake)}, {}


# --- section 4: supervised AAE, style and content ---------------------------------------------------------

class AAESupervised(AAE):
    """The decoder gets [one-hot(y), z], so the label carries the digit and z only the style (figure 6).
    The code of ``sample_prior``/``generate`` is that concatenation; ``encode`` returns the style z."""

    name = "aae_supervised"
    description = "supervised AAE: the label goes to the decoder, z learns only the style (sec. 4)"
    defaults = {**AAE_DEFAULTS, "latent_dim": 15, "epochs": 500}

    def build(self) -> nn.ModuleDict:
        cfg = self.cfg
        nets = nn.ModuleDict({
            "E": GaussianEncoder(self.data_dim, cfg.latent_dim, cfg.hidden,
                                 stochastic=cfg.stochastic_encoder),
            "G": Decoder(cfg.aae_classes + cfg.latent_dim, self.data_dim, cfg.hidden),
            "D": CodeDiscriminator(cfg.latent_dim, cfg.hidden),
        })
        return init_aae_(nets, cfg.init_std)

    def _onehot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y.long(), self.cfg.aae_classes).to(torch.float32)

    def losses(self, phase, x, y, rng):
        if phase != 0:
            return super().losses(phase, x, y, rng)
        if y is None:
            raise ValueError(f"method {self.name!r} trains on labelled data, but the batch has no labels; "
                             "use a labelled dataset.")
        xf = self.flat(x)
        z = self.posterior(self.corrupt(xf, rng), rng)
        x_hat = self.nets["G"](torch.cat([self._onehot(y), z], 1))
        return {"AE": half_squared_error(xf, x_hat, self.cfg.recon_loss)}, \
            {"recon_mse": (xf - x_hat.detach()).pow(2).mean()}

    def sample_prior(self, n, rng=None):
        device = next(self.nets.parameters()).device
        label = torch.randint(0, self.cfg.aae_classes, (n,), generator=rng, device=device)
        return torch.cat([self._onehot(label), self.sample_style(n, rng)], 1)  # [n, K + latent]

    def render(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Images of digit ``label`` [B] in style ``z`` [B, latent]. [B, C, H, W]"""
        return self.generate(torch.cat([self._onehot(label), z], 1))

    def reconstruct(self, x):
        """The label is not an input at test time, so it is inferred by analysis by synthesis: x is
        rendered with every label and the closest rendering is kept."""
        z = self.encode(x)
        best, best_err = None, None
        for k in range(self.cfg.aae_classes):
            x_hat = self.render(z, torch.full((x.shape[0],), k, device=z.device))
            err = (x_hat - x).flatten(1).pow(2).sum(1)  # [B]
            if best is None:
                best, best_err = x_hat, err
            else:
                better = err < best_err
                best = torch.where(better[:, None, None, None], x_hat, best)
                best_err = torch.minimum(err, best_err)
        return best

    def figures(self, data, out_dir) -> list[Path]:
        return [style_grid(self, data, Path(out_dir) / "style_grid.png")]


@torch.no_grad()
def style_grid(method, data, path, *, rows: int = 10) -> Path:
    """The paper's figures 6 and 8: each row takes the style z of one test image (first column) and
    renders it as every class in turn."""
    from ..images import save_grid

    device = next(method.nets.parameters()).device
    x = data.x[:rows].to(device)
    z = method.encode(x)  # [R, latent]
    k = method.cfg.aae_classes
    tiles = [x]
    for c in range(k):
        tiles.append(method.render(z, torch.full((x.shape[0],), c, device=device)))
    grid = torch.stack(tiles, 1).reshape(-1, *x.shape[1:])  # [R * (K + 1), C, H, W], row-major
    return save_grid(grid.cpu(), path, nrow=k + 1)
