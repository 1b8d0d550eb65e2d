"""Invert any generator z -> x by descending on z (Creswell & Bharath, "Inverting the Generator of a
Generative Adversarial Network", IEEE TNNLS 2018, arXiv:1611.05644).

For each target x we look for z* = argmin_z  l(G(z), x) + regularisers(z)  using only G's computation
graph: no encoder is trained, G's weights are fixed. The paper's public code runs RMSprop(lr 0.01) on
z for 5000 steps, batches of 500, with objective  MSE(G(z), x) - alpha * mean_j log p(z_j)  and G in
eval mode; its earlier version used cross-entropy, clipped z to the support of a uniform prior and
regularised a Gaussian prior's batch mean and std (paper section III-B). All of these are settings
here, plus starts from an encoder's guess E(x), restarts and early stopping.

Two properties the caller can rely on:
* per-sample independence: the objective is a SUM over samples of per-sample terms and RMSprop/Adam
  are elementwise, so each z_i follows the same path whatever the batch size or its neighbours
  (the batch-moment regulariser is the one setting that couples a batch, by design);
* G is left as found: modules are put in eval mode and their parameters stop requiring gradients
  for the duration, then both are restored; gradients are taken with autograd.grad w.r.t. z only,
  so no parameter's .grad is ever written, even for a plain callable G.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nets.priors import PRIORS

__all__ = ["InversionResult", "invert", "LOSSES", "OPTIMIZERS", "SCHEDULES", "SUPPORTS", "INITS"]


# --- per-sample reconstruction losses: (x_hat [B, P], x [B, P]) -> [B] -----------------------------
def _mse(x_hat: Tensor, x: Tensor) -> Tensor:
    return (x_hat - x).pow(2).mean(dim=1)


def _l1(x_hat: Tensor, x: Tensor) -> Tensor:
    return (x_hat - x).abs().mean(dim=1)


def _bce(x_hat: Tensor, x: Tensor) -> Tensor:
    # the paper's first version: cross-entropy for generators with sigmoid outputs (x, x_hat in [0, 1])
    return F.binary_cross_entropy(x_hat, x, reduction="none").mean(dim=1)


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"mse": _mse, "l1": _l1, "bce": _bce}

OPTIMIZERS: dict[str, Callable[[list[Tensor], float], torch.optim.Optimizer]] = {
    "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),  # the paper's code
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}

# learning-rate multiplier as a function of progress t / steps in [0, 1]
SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda p: 1.0,
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
}

# What invert knows of each prior beyond how to sample it (advrep.nets.priors.PRIORS): the per-dimension
# negative log density, the support and the moments. Other priors (the AAE's mixtures) can start and
# restart z, but have no support, log-prior or moment handling. The uniform prior's density is constant
# on its support, so its log-prior term is a constant and is left out.
_PRIOR_NLL: dict[str, Callable[[Tensor], Tensor] | None] = {
    "gaussian": lambda z: 0.5 * z.pow(2) + 0.5 * math.log(2 * math.pi),  # -log N(z_j; 0, 1)
    "uniform": None,
}
_PRIOR_SUPPORT: dict[str, tuple[float, float] | None] = {"gaussian": None, "uniform": (-1.0, 1.0)}
_PRIOR_MOMENTS: dict[str, tuple[float, float]] = {"gaussian": (0.0, 1.0),
                                                  "uniform": (0.0, 1.0 / math.sqrt(3.0))}  # (mean, std)

# How z is kept inside a bounded support. "clip" clamps z after every step: for a box that is the
# Euclidean projection, i.e. projected gradient descent. "tanh" optimises w with z = tanh(w), so z
# never leaves the open box. "none" lets z wander (G is then evaluated where it was never trained).
SUPPORTS = ("clip", "tanh", "none")
INITS = ("prior", "mean", "encoder")


@dataclass
class InversionResult:
    z: Tensor  # [N, d] the latent kept for each sample (CPU)
    x_hat: Tensor  # [N, ...] G(z), reshaped like x (CPU)
    losses: Tensor  # [N] reconstruction loss at z: the chosen loss (+ feature term), no regularisers
    mse: Tensor  # [N] mean squared error per sample at z, whatever loss was optimised
    trace: Tensor  # [steps + 1] mean over samples of `losses` after t updates (t = 0 is the start)
    restart: Tensor  # [N] int64, which restart each sample's z comes from
    steps_to_tol: Tensor | None  # [N] int64 updates until the loss first was <= tol; -1 never; None: no tol
    steps_run: int  # updates actually made by the longest batch (< steps when early stopping fired)
    seconds: float  # wall time of the whole inversion

    def summary(self) -> dict[str, float]:
        mse = self.mse.double()
        return {"n": int(mse.numel()), "mse_mean": float(mse.mean()),
                "mse_std": float(mse.std()) if mse.numel() > 1 else 0.0,
                "loss_mean": float(self.losses.double().mean()), "steps_run": self.steps_run,
                "seconds": self.seconds}


def _choice(table, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(table)}.")
    return table[name] if isinstance(table, dict) else name


@contextmanager
def _frozen(*fns) -> Iterator[None]:
    """Eval mode and requires_grad=False on every nn.Module among ``fns``, restored on exit."""
    modules = [f for f in fns if isinstance(f, nn.Module)]
    modes = [[m.training for m in f.modules()] for f in modules]
    params = {id(p): (p, p.requires_grad) for f in modules for p in f.parameters()}
    try:
        for f in modules:
            f.eval()
        for p, _ in params.values():
            p.requires_grad_(False)
        yield
    finally:
        for f, mode in zip(modules, modes, strict=True):
            for m, was in zip(f.modules(), mode, strict=True):
                m.training = was
        for p, was in params.values():
            p.requires_grad_(was)


def _device_of(G, x: Tensor) -> torch.device:
    if isinstance(G, nn.Module):
        for p in G.parameters():
            return p.device
    return x.device


@torch.no_grad()
def _batched(fn, x: Tensor, batch_size: int, device: torch.device) -> Tensor:
    return torch.cat([fn(x[i:i + batch_size].to(device)).float() for i in range(0, x.shape[0], batch_size)])


def invert(G: Callable[[Tensor], Tensor], x: Tensor, *, steps: int = 5000, lr: float = 0.01,
           loss: str = "mse", optimizer: str = "rmsprop", schedule: str = "constant",
           prior: str | None = "gaussian", support: str = "clip", prior_weight: float = 0.0,
           moment_weight: float = 0.0, init: str | Tensor = "prior", latent_dim: int | None = None,
           sample: Callable[[int, torch.Generator], Tensor] | None = None,
           encoder: Callable[[Tensor], Tensor] | None = None, encoder_weight: float = 0.0,
           features: Callable[[Tensor], Tensor] | None = None, feature_weight: float = 1.0,
           restarts: int = 1, tol: float | None = None, check_every: int = 25, batch_size: int = 500,
           seed: int = 0, device: str | torch.device | None = None) -> InversionResult:
    """Find z with G(z) ~ x for every row of x ([N, ...]); see the module docstring.

    G: z [B, d] -> anything with the same number of elements per sample as x (flattened for losses,
    reshaped like x for ``encoder``/``features``). prior: "uniform" (on [-1, 1]), "gaussian", another
    name in advrep.nets.priors.PRIORS (sampling only) or None (no support, no prior terms). sample:
    draws starts instead of the named prior, sample(n, cpu_generator) -> [n, d] (e.g. a method's own
    sample_prior, whose codes may hold more than the prior's z).
    prior_weight: alpha in  l - alpha * mean_j log p(z_j)  (paper's code). moment_weight: the earlier
    version's  (mean_b z)^2 + (std_b z - s)^2  per dimension, s the prior's std. init: "prior"
    (a sample), "mean" (the prior's mean: 0, or the average of 4096 draws of ``sample``), "encoder"
    (E(x)) or a tensor [N, d]; restarts after the first always start from prior samples.
    encoder_weight: weight of the latent-consistency term mean_j (z - E(G(z)))_j^2. features: a fixed
    feature map (e.g. a classifier's penultimate layer); adds feature_weight * mean_f (phi(G(z)) -
    phi(x))_f^2 to the loss. tol: stop a batch once every
    sample's loss is <= tol (checked every ``check_every`` steps to avoid device syncs).
    """
    loss_fn = _choice(LOSSES, loss, "loss")
    make_opt = _choice(OPTIMIZERS, optimizer, "optimizer")
    lr_scale = _choice(SCHEDULES, schedule, "schedule")
    _choice(SUPPORTS, support, "support")
    if prior is not None:
        _choice(PRIORS, prior, "prior")
    if not isinstance(init, Tensor):
        _choice(INITS, init, "init")
    for name, value, least in (("steps", steps, 0), ("restarts", restarts, 1),
                               ("check_every", check_every, 1), ("batch_size", batch_size, 1)):
        if not (isinstance(value, int) and value >= least):
            raise ValueError(f"invert: {name} must be an integer >= {least}, got {value!r}.")
    if not lr > 0:
        raise ValueError(f"invert: lr must be positive, got {lr!r}.")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"invert: x must be a batch [N, ...] with N >= 1, got shape {tuple(x.shape)}.")
    if (init == "encoder" or encoder_weight > 0) and encoder is None:
        raise ValueError("invert: init='encoder' and encoder_weight > 0 need encoder=E, a callable x -> z.")
    for name, weight, table in (("prior_weight", prior_weight, _PRIOR_NLL), ("moment_weight", moment_weight,
                                                                            _PRIOR_MOMENTS)):
        if weight != 0 and prior not in table:
            raise ValueError(f"invert: {name} needs prior 'uniform' or 'gaussian', got prior={prior!r}; set "
                             f"{name}=0 for this prior.")
    if moment_weight > 0 and min(batch_size, x.shape[0]) < 2:
        raise ValueError("invert: the batch-moment regulariser needs batches of at least 2 samples.")
    if (restarts > 1 or (not isinstance(init, Tensor) and init in ("prior", "mean"))) and prior is None \
            and sample is None:
        raise ValueError("invert: starting from the prior (init='prior'/'mean' or restarts > 1) needs "
                         "prior='uniform'/'gaussian' or sample=...; or pass init=E(x) as a tensor.")

    device = torch.device(device) if device is not None else _device_of(G, x)
    started = time.perf_counter()
    n = x.shape[0]
    x = x.float()
    with _frozen(G, encoder, features):
        rng = torch.Generator().manual_seed(seed)
        if sample is not None:
            draw = lambda k, _d, g: sample(k, g)  # noqa: E731
        else:
            draw = (lambda k, dim, g: PRIORS[prior](k, dim, generator=g)) if prior is not None else None
        exact_mean = _PRIOR_MOMENTS[prior][0] if sample is None and prior in _PRIOR_MOMENTS else None
        z0 = _initial_z(init, x, encoder=encoder, latent_dim=latent_dim, draw=draw, exact_mean=exact_mean,
                        batch_size=batch_size, device=device, rng=rng)
        d = z0.shape[1]
        # every start is drawn for all N up front, so sample i's starts do not depend on the batching
        starts = [z0] + [_draw(draw, n, d, rng) for _ in range(restarts - 1)]  # each [N, d]
        support_box = _PRIOR_SUPPORT.get(prior) if support != "none" else None
        if support_box is not None:
            starts = [s.clamp(*support_box) for s in starts]
        best: dict[str, list[Tensor]] = {}
        trace_sum = torch.zeros(steps + 1, dtype=torch.float64)
        steps_run = 0
        for start in range(0, n, batch_size):
            xb = x[start:start + batch_size].to(device)
            kept = None
            for r in range(restarts):
                zr = starts[r][start:start + batch_size].to(device)
                out = _descend(G, xb, zr, steps=steps, lr=lr, loss_fn=loss_fn, make_opt=make_opt,
                               lr_scale=lr_scale, prior=prior, support=support if support_box else "none",
                               prior_weight=prior_weight, moment_weight=moment_weight, encoder=encoder,
                               encoder_weight=encoder_weight, features=features,
                               feature_weight=feature_weight, tol=tol, check_every=check_every)
                steps_run = max(steps_run, out["steps_run"])
                out["restart"] = torch.full((xb.shape[0],), r, dtype=torch.long, device=device)
                kept = out if kept is None else _keep_better(kept, out)
            trace_sum += kept.pop("trace").sum(dim=1).double().cpu()
            for key, value in kept.items():
                if isinstance(value, Tensor):
                    best.setdefault(key, []).append(value.cpu())
    cat = {key: torch.cat(parts) for key, parts in best.items()}
    return InversionResult(z=cat["z"], x_hat=cat["x_hat"].reshape(x.shape), losses=cat["losses"],
                           mse=cat["mse"], trace=(trace_sum / n).float(), restart=cat["restart"],
                           steps_to_tol=cat["hit"] if tol is not None else None, steps_run=steps_run,
                           seconds=time.perf_counter() - started)


def _draw(draw, n: int, d: int, rng: torch.Generator) -> Tensor:
    z = draw(n, d, rng).detach().float().cpu()
    if z.shape != (n, d):
        raise ValueError(f"invert: the prior sampler gave shape {tuple(z.shape)}, expected [{n}, {d}].")
    return z


def _initial_z(init, x: Tensor, *, encoder, latent_dim: int | None, draw, exact_mean: float | None,
               batch_size: int, device: torch.device, rng: torch.Generator) -> Tensor:
    """The first start z0, [N, d] on the CPU."""
    n = x.shape[0]
    if isinstance(init, Tensor):
        z0 = init.detach().float().cpu()
    elif init == "encoder":
        z0 = _batched(encoder, x, batch_size, device).cpu()
    else:
        if latent_dim is None:
            raise ValueError(f"invert: init={init!r} needs latent_dim (G's input size), e.g. latent_dim=50.")
        if init == "prior":
            z0 = _draw(draw, n, latent_dim, rng)
        elif exact_mean is not None:
            z0 = torch.full((n, latent_dim), exact_mean)
        else:  # a sampler without a known mean: the average of many draws
            z0 = _draw(draw, 4096, latent_dim, torch.Generator().manual_seed(0)).mean(0).expand(n, -1).clone()
    if init == "encoder" and latent_dim is not None and tuple(z0.shape) != (n, latent_dim):
        raise ValueError(f"invert: the encoder gives codes of shape {tuple(z0.shape)} but G takes "
                         f"[{n}, {latent_dim}]; this encoder does not produce G's whole input: start "
                         "from the prior.")
    if z0.ndim != 2 or z0.shape[0] != n or (latent_dim is not None and z0.shape[1] != latent_dim):
        want = f"[{n}, {latent_dim}]" if latent_dim else f"[{n}, d]"
        raise ValueError(f"invert: the initial z must be {want}, got {tuple(z0.shape)}; check init / the "
                         "encoder's output.")
    return z0


def _keep_better(old: dict, new: dict) -> dict:
    """Per sample, the restart with the lower final reconstruction loss (ties keep the earlier one)."""
    better = new["losses"] < old["losses"]  # [B]
    out = {"steps_run": max(old["steps_run"], new["steps_run"])}
    for key, value in old.items():
        if isinstance(value, Tensor):
            mask = better if key != "trace" else better[None, :]  # trace is [steps + 1, B]
            mask = mask.reshape(mask.shape + (1,) * (value.ndim - mask.ndim))
            out[key] = torch.where(mask, new[key], value)
    return out


def _descend(G, x: Tensor, z_start: Tensor, *, steps, lr, loss_fn, make_opt, lr_scale, prior, support,
             prior_weight, moment_weight, encoder, encoder_weight, features, feature_weight, tol,
             check_every) -> dict:
    """One batch, one start. x [B, ...] and z_start [B, d] on the device."""
    b = x.shape[0]
    x_flat = x.reshape(b, -1)  # [B, P]
    target_feat = features(x).reshape(b, -1).detach() if features is not None else None  # [B, F]
    # "tanh": optimise w with z = tanh(w); atanh of a clamped start keeps w finite.
    to_z = torch.tanh if support == "tanh" else (lambda w: w)
    w = (torch.atanh(z_start.clamp(-1 + 1e-6, 1 - 1e-6)) if support == "tanh" else z_start).clone()
    w.requires_grad_(True)
    opt = make_opt([w], lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_scale(min(t, steps) / max(steps, 1)))
    nll = _PRIOR_NLL[prior] if prior_weight != 0 else None
    mean_target, std_target = _PRIOR_MOMENTS.get(prior, (0.0, 1.0))
    trace = torch.empty(steps + 1, b, device=x.device)  # [steps + 1, B] per-sample loss after t updates
    hit = torch.full((b,), -1, dtype=torch.long, device=x.device)  # first t with loss <= tol

    def reconstruction(z: Tensor) -> tuple[Tensor, Tensor]:
        x_hat = G(z)
        if x_hat.numel() != x.numel():
            raise ValueError(f"invert: G(z) has shape {tuple(x_hat.shape)}, which does not match x "
                             f"{tuple(x.shape)} sample for sample; pass x shaped like G's output.")
        x_hat = x_hat.reshape(b, -1)  # [B, P]
        rec = loss_fn(x_hat, x_flat)  # [B]
        if features is not None:
            feat = features(x_hat.reshape(x.shape)).reshape(b, -1)  # [B, F]
            rec = rec + feature_weight * (feat - target_feat).pow(2).mean(dim=1)
        return rec, x_hat

    t = 0
    for t in range(steps):
        z = to_z(w)  # [B, d]
        rec, x_hat = reconstruction(z)
        objective = rec
        if nll is not None:
            objective = objective + prior_weight * nll(z).mean(dim=1)  # - alpha * mean_j log p(z_j)
        if encoder_weight > 0:
            objective = objective + encoder_weight * (z - encoder(x_hat.reshape(x.shape))).pow(2).mean(dim=1)
        total = objective.sum()  # a sum of per-sample terms: z_i's gradient ignores the batch size
        if moment_weight > 0:
            # the earlier version's batch statistics regulariser; times B to match the per-sample sum
            mom = (z.mean(0) - mean_target).pow(2) + (z.std(0, unbiased=False) - std_target).pow(2)  # [d]
            total = total + moment_weight * b * mom.mean()
        (grad,) = torch.autograd.grad(total, w)
        trace[t] = rec.detach()
        if tol is not None:
            hit = torch.where((hit < 0) & (rec.detach() <= tol), t, hit)
        w.grad = grad
        opt.step()
        sched.step()
        if support == "clip":
            with torch.no_grad():
                w.clamp_(-1.0, 1.0)  # projection onto the uniform prior's support [-1, 1]^d
        if tol is not None and (t + 1) % check_every == 0 and bool((hit >= 0).all()):
            t += 1
            break
    else:
        t = steps
    with torch.no_grad():
        z = to_z(w)
        rec, x_hat = reconstruction(z)
    trace[t:] = rec  # an early-stopped batch keeps its final loss for the remaining steps
    if tol is not None:
        hit = torch.where((hit < 0) & (rec <= tol), t, hit)
    return {"z": z.detach(), "x_hat": x_hat, "losses": rec, "mse": _mse(x_hat, x_flat), "trace": trace,
            "hit": hit, "steps_run": t}

