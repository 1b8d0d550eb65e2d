"""Pure loss functions. Logits in, scalar losses out; no networks, no optimisers.

Conventions (BiGAN paper, section 3): the discriminator labels the encoder's pair (x, E(x)) real
(1) and the generator's pair (G(z), z) fake (0). softplus(-a) = -log sigmoid(a) is the stable BCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """(-E[log D(real)] - E[log(1 - D(fake))]) / 2: the discriminator's side of eq. (3), halved as in
    the reference code so that it starts at log 2 and learning rates keep their meaning."""
    return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


def generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, objective: str) -> torch.Tensor:
    """The encoder's and generator's side.

    ``minimax``: exactly minus the discriminator loss (eq. 3), the game the paper's proofs use.
    ``inverse``: the labels flipped, -E[log(1 - D(real))] - E[log D(fake)], which keeps gradients
    alive when D wins early (the non-saturating trick of Goodfellow et al., applied to both E and G).
    """
    if objective == "minimax":
        return -discriminator_loss(real_logits, fake_logits)
    if objective == "inverse":
        return 0.5 * (F.softplus(real_logits).mean() + F.softplus(-fake_logits).mean())
    raise ValueError(f"unknown objective {objective!r}; choose 'inverse' or 'minimax'.")


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-example summed l2 (squared) or l1 error, averaged over the batch."""
    diff = (x - x_hat).flatten(1)
    if kind == "l2":
        return diff.pow(2).sum(1).mean()
    if kind == "l1":
        return diff.abs().sum(1).mean()
    raise ValueError(f"unknown reconstruction loss {kind!r}; choose 'l2' or 'l1'.")


def nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]: a plain GAN generator's loss (Goodfellow et al. 2014, section 3), as the BiGAN
    reference code's ``opp_loss_gen`` (not halved: only the generated half of the batch enters it)."""
    return F.softplus(-fake_logits).mean()


def _uniform_regression(z_pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    # sigmoid cross-entropy between sigmoid(z_pre) and z rescaled from [-1, 1] to [0, 1]
    return F.binary_cross_entropy_with_logits(z_pre, (z + 1.0) / 2.0)


def _gaussian_regression(z_pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return 0.5 * (z_pre - z).pow(2).mean()


LATENT_REGRESSION = {"uniform": _uniform_regression, "gaussian": _gaussian_regression}


def latent_regression_loss(z_pre: torch.Tensor, z: torch.Tensor, prior: str) -> torch.Tensor:
    """How far an encoder's guess at z from G(z) is from the z that made it, averaged over dims and batch.

    ``uniform`` (z in [-1, 1]): the encoder's pre-squash output read as logits of z rescaled to [0, 1],
    scored by sigmoid cross-entropy (the reference code's uniform ``recon_error`` with --encode_normalize).
    ``gaussian``: 0.5 * (z_pre - z)^2, the reference code's Gaussian ``recon_error``. z_pre, z: [B, latent].
    """
    try:
        loss = LATENT_REGRESSION[prior]
    except KeyError:
        raise ValueError(f"unknown prior {prior!r} for the latent regression loss; choose one of "
                         f"{', '.join(LATENT_REGRESSION)}.") from None
    return loss(z_pre, z)


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - s(real))] + E[max(0, 1 + s(fake))]: the hinge loss of one score (Lim & Ye 2017;
    BigBiGAN section 2, l_D with h(t) = max(0, 1 - t) and labels y = +1 real, -1 fake)."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def hinge_generator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[s(real)] - E[s(fake)]: the encoder's and generator's side, not hinged (BigBiGAN section 2, l_EG =
    y * s). Scores of data x or prior z alone carry no gradient to E or G, so only their pair terms act."""
    return real_scores.mean() - fake_scores.mean()


Scores = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (s_x, s_z, s_xz), each [B]


def bigbigan_losses(real: Scores, fake: Scores, *, unary: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(D loss, E/G loss) of BigBiGAN (section 2) from the scores of the encoder pairs
    (x, E(x)) (``real``) and the generator pairs (G(z), z) (``fake``).

    D hinges each of the three scores separately and sums them; E and G push on their (unhinged) sum.
    ``unary=False`` keeps only the joint score s_xz: a BiGAN with a hinge loss, the paper's ablation.
    """
    picked = range(3) if unary else (2,)
    d_loss = sum(hinge_discriminator_loss(real[i], fake[i]) for i in picked)
    eg_loss = sum(hinge_generator_loss(real[i], fake[i]) for i in picked)
    return d_loss, eg_loss
