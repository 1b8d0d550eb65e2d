"""Adversarial autoencoders with a categorical code (Makhzani et al. 2016, sections 5-7).

The encoder has two heads on one trunk (figure 8): q(y|x), a softmax over K categories, and q(z|x), a
linear style code. Two discriminators regularise them, one against a categorical prior on y (one-hot
samples), one against a Gaussian on z. Phases per mini-batch: reconstruction, both discriminators'
step, the encoder's generator step, and (semi-supervised only) a cross-entropy step of q(y|x) on a
labelled mini-batch.

* ``aae_semi`` (section 5): K = the classes; labelled subsets of 100, 1000 or all labels. The test error
  of argmax q(y|x) is the paper's table 2.
* ``aae_cluster`` (section 6): no labels; K = 16 or 30 clusters; the test error when each cluster takes
  its training points' majority label is table 3.
* ``aae_dimred`` (section 7, unsupervised): the code is r = W_c y + z in n dimensions, where the rows of
  W_c are learned cluster heads kept at least ``aae_head_distance`` apart by a hinge cost; with n = 2 it
  is a 2-D visualisation (figure 11).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..eval.clustering import classification_error, clustering_error
from ..images import save_grid
from ..nets.aae_mlp import CategoricalStyleEncoder, ClusterHeads, CodeDiscriminator, Decoder, init_aae_
from .aae import (
    AAE_DEFAULTS,
    AAEBase,
    code_discriminator_loss,
    code_generator_loss,
    half_squared_error,
    style_grid,
)


def head_separation_cost(heads: torch.Tensor, threshold: float) -> torch.Tensor:
    """Section 7: sum over pairs of cluster heads [K, n] of max(0, threshold - |w_i - w_j|): zero once
    every pair is at least ``threshold`` apart, linear in the distance below it."""
    i, j = torch.triu_indices(heads.shape[0], heads.shape[0], offset=1, device=heads.device)
    # sqrt has an infinite gradient at 0; the epsilon keeps coinciding heads trainable.
    dist = ((heads[i] - heads[j]).pow(2).sum(1) + 1e-12).sqrt()  # [K (K - 1) / 2]
    return F.relu(threshold - dist).sum()


class CategoricalAAE(AAEBase):
    """The shared (y, z) model. The code that ``generate`` decodes is ``self.code(y, z)``: [y, z] here."""

    optimizers = {"AE": ("E", "G"), "D": ("Dy", "Dz"), "Gen": ("E",)}
    phases = (("AE",), ("D",), ("Gen",))
    categories_key: ClassVar[str] = "aae_clusters"  # the Config field holding K

    @property
    def categories(self) -> int:
        return getattr(self.cfg, self.categories_key)

    def code_dim(self) -> int:
        return self.categories + self.cfg.latent_dim

    def build(self) -> nn.ModuleDict:
        cfg, k = self.cfg, self.categories
        nets = nn.ModuleDict({
            "E": CategoricalStyleEncoder(self.data_dim, k, cfg.latent_dim, cfg.hidden),
            "G": Decoder(self.code_dim(), self.data_dim, cfg.hidden),
            "Dy": CodeDiscriminator(k, cfg.hidden),
            "Dz": CodeDiscriminator(cfg.latent_dim, cfg.hidden),
        })
        return init_aae_(nets, cfg.init_std)

    def code(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([y, z], 1)  # [B, K + latent]

    def _yz(self, x_flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, z = self.nets["E"](x_flat)
        return F.softmax(logits, dim=1), z  # [B, K], [B, latent]

    def reconstruction(self, x_flat, rng) -> tuple[torch.Tensor, dict]:
        y, z = self._yz(self.corrupt(x_flat, rng))
        x_hat = self.nets["G"](self.code(y, z))
        logs = {"recon_mse": (x_flat - x_hat.detach()).pow(2).mean()}
        return half_squared_error(x_flat, x_hat, self.cfg.recon_loss), logs

    def losses(self, phase, x, y, rng):
        x = self.flat(x)  # [B, D]
        Dy, Dz = self.nets["Dy"], self.nets["Dz"]
        if phase == 0:
            loss, logs = self.reconstruction(x, rng)
            return {"AE": loss}, logs
        if phase == 1:  # both discriminators: prior samples are 1, the encoder's codes 0
            with torch.no_grad():
                y_q, z_q = self._yz(self.corrupt(x, rng))
            n, device = x.shape[0], x.device
            y_p = F.one_hot(torch.randint(0, self.categories, (n,), generator=rng, device=device),
                            self.categories).to(torch.float32)
            z_p = torch.randn(n, self.cfg.latent_dim, generator=rng, device=device) * self.cfg.aae_prior_std
            ry, fy, rz, fz = Dy(y_p), Dy(y_q), Dz(z_p), Dz(z_q)
            loss = code_discriminator_loss(ry, fy) + code_discriminator_loss(rz, fz)
            return {"D": loss}, {"Dy_prior": torch.sigmoid(ry).mean(), "Dy_code": torch.sigmoid(fy).mean(),
                                 "Dz_prior": torch.sigmoid(rz).mean(), "Dz_code": torch.sigmoid(fz).mean()}
        if phase == 2:  # the encoder as generator of both codes
            y_q, z_q = self._yz(self.corrupt(x, rng))
            return {"Gen": code_generator_loss(Dy(y_q)) + code_generator_loss(Dz(z_q))}, {}
        return self.supervised_losses(x, y, rng)

    def supervised_losses(self, x_flat, y, rng):
        raise NotImplementedError

    # -- inference --
    def encode(self, x):
        return self.nets["E"](self.flat(x))[1]  # the style z [B, latent]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """argmax_k q(y = k | x): the class (aae_semi) or cluster of each image. [B] int64"""
        return self.nets["E"](self.flat(x))[0].argmax(1)

    def reconstruct(self, x):
        return self.generate(self.code(*self._yz(self.flat(x))))

    def features(self, x):
        y, z = self._yz(self.flat(x))
        return {"z": z, "y": y}

    def sample_prior(self, n, rng=None):
        device = next(self.nets.parameters()).device
        y = F.one_hot(torch.randint(0, self.categories, (n,), generator=rng, device=device),
                      self.categories).to(torch.float32)
        z = torch.randn(n, self.cfg.latent_dim, generator=rng, device=device) * self.cfg.aae_prior_std
        return self.code(y, z)

    def render(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Images of category ``label`` [B] in style ``z`` [B, latent]. [B, C, H, W]"""
        y = F.one_hot(label.long(), self.categories).to(torch.float32)
        return self.generate(self.code(y, z))

    @torch.no_grad()
    def _probabilities(self, data) -> torch.Tensor:
        """q(y|x) of every image. [N, K]"""
        device = next(self.nets.parameters()).device
        return torch.cat([self._yz(self.flat(data.x[i:i + 2000].to(device)))[0].cpu()
                          for i in range(0, len(data), 2000)])

    def _predictions(self, data) -> torch.Tensor:
        return self._probabilities(data).argmax(1)

    def extra_metrics(self, train, test) -> dict[str, float]:
        if train.y is None or test.y is None:
            return {}
        q = self._probabilities(test)  # [T, K]
        share = torch.bincount(q.argmax(1), minlength=self.categories) / len(test)  # [K]
        # Collapse shows here first: q(y|x) confident (y_confidence -> 1) but on few categories
        # (clusters_used, those holding at least 1% of the test images), where the prior spreads 1/K each.
        return {"cluster_error": clustering_error(self._predictions(train), train.y, q.argmax(1), test.y,
                                                  clusters=self.categories),
                "clusters_used": int((share >= 0.01).sum()), "y_confidence": float(q.max(1).values.mean())}

    @torch.no_grad()
    def figures(self, data, out_dir) -> list[Path]:
        """cluster_grid.png: row k shows category k decoded with style z = 0, then up to 10 images that
        q(y|x) puts in it (the paper's figure 9)."""
        device = next(self.nets.parameters()).device
        pred = self._predictions(data)
        k, c, h, w = self.categories, *self.image_shape
        blank = torch.ones(c, h, w)
        rows = []
        for j in range(k):
            head = self.render(torch.zeros(1, self.cfg.latent_dim, device=device),
                               torch.tensor([j], device=device)).cpu()[0]
            members = data.x[(pred == j).nonzero().squeeze(1)[:10]]
            members = torch.cat([members, blank.expand(10 - len(members), c, h, w)])
            rows.append(torch.cat([head[None], blank[None], members]))
        return [save_grid(torch.cat(rows), Path(out_dir) / "cluster_grid.png", nrow=12)]


class AAESemi(CategoricalAAE):
    """Section 5. The fourth phase: cross-entropy of q(y|x) against the labels of a mini-batch drawn from
    the seeded, class-balanced labelled subset (Config.aae_labels; 0 = all)."""

    name = "aae_semi"
    description = "semi-supervised AAE: categorical y + Gaussian style z, cross-entropy on labels (sec. 5)"
    # Appendix A.2: 10-D style with std 1, Gaussian noise of std 0.3 on the input, 5000 epochs. Weights start
    # N(0, 0.05^2), not the appendix's 0.01 as we read it: with 0.01 the categorical discriminator never
    # leaves chance under the paper's momentum SGD (Dy 0.51 / 0.50 on prior / codes over 1200 steps) and
    # the test error after 2 epochs is 26.56%; with 0.05 it is 16.65% after 1 (the paper: 16.50%) and
    # 12.89% after 2 (BENCHMARKS.md, "Adversarial autoencoders").
    defaults = {**AAE_DEFAULTS, "latent_dim": 10, "aae_input_noise": 0.3, "aae_labels": 100, "epochs": 5000,
                "init_std": 0.05}
    optimizers = {**CategoricalAAE.optimizers, "Sup": ("E",)}
    phases = CategoricalAAE.phases + (("Sup",),)
    categories_key = "aae_classes"
    uses_labelled_subset = True

    def supervised_losses(self, x_flat, y, rng):
        x_l, y_l = self.labelled_batch(self.images(x_flat), y, rng)
        logits, _ = self.nets["E"](self.corrupt(self.flat(x_l), rng))
        return {"Sup": F.cross_entropy(logits, y_l)}, {"train_acc": (logits.argmax(1) == y_l).float().mean()}

    def extra_metrics(self, train, test) -> dict[str, float]:
        if test.y is None:
            return {}
        out = super().extra_metrics(train, test)
        out["semi_error"] = classification_error(self._predictions(test), test.y)
        return out

    def figures(self, data, out_dir) -> list[Path]:
        return super().figures(data, out_dir) + [style_grid(self, data, Path(out_dir) / "style_grid.png")]


class AAECluster(CategoricalAAE):
    """Section 6: the semi-supervised model with no labels and K categories."""

    name = "aae_cluster"
    description = "unsupervised clustering AAE: K categories + Gaussian style (sec. 6)"
    # Appendix A.3: 3000-unit layers, 5-D style, 20% input dropout, rates dropped once at 50, 1500 epochs.
    defaults = {**AAE_DEFAULTS, "hidden": 3000, "latent_dim": 5, "aae_clusters": 16, "aae_input_dropout": 0.2,
                "aae_lr_drops": [50], "epochs": 1500}


class AAEDimRed(CategoricalAAE):
    """Section 7 (unsupervised): the decoder sees r = W_c y + z [B, n]; ``encode`` returns r, so a 2-D
    run's ``advrep eval`` scatter shows the representation of figure 11."""

    name = "aae_dimred"
    description = "dimensionality-reduction AAE: r = cluster head W_c y + style z, learned heads (sec. 7)"
    defaults = {**AAE_DEFAULTS, "latent_dim": 2, "aae_clusters": 20, "epochs": 500}
    optimizers = {"AE": ("E", "G", "H"), "D": ("Dy", "Dz"), "Gen": ("E",)}

    def code_dim(self) -> int:
        return self.cfg.latent_dim

    def build(self) -> nn.ModuleDict:
        nets = super().build()
        # Heads start spread at about the distance the hinge asks for (they are not nn.Linear, so
        # init_aae_ leaves them alone).
        nets["H"] = ClusterHeads(self.categories, self.cfg.latent_dim,
                                 init_scale=self.cfg.aae_head_distance / 2)
        return nets

    def code(self, y, z):
        return self.nets["H"](y) + z  # [B, n]

    def reconstruction(self, x_flat, rng):
        loss, logs = super().reconstruction(x_flat, rng)
        sep = head_separation_cost(self.nets["H"].weight, self.cfg.aae_head_distance)
        return loss + self.cfg.aae_head_weight * sep, {**logs, "head_cost": sep.detach()}

    def encode(self, x):
        return self.code(*self._yz(self.flat(x)))
