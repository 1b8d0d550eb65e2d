"""Inversion applied to advrep's trained methods: invert one run, compare several, write the results.

``invert`` itself knows nothing about methods; this module only adapts a ``Method`` (its generator,
encoder, prior and latent size) and turns results into files and tables. Comparing generators follows
Creswell & Bharath section V: invert the same held-out images through each generator with the same
procedure and rank them by reconstruction error -- a generator that can reproduce data it never saw
covers more of the data distribution.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..images import pair_grid
from ..methods import Method
from .invert import InversionResult, invert
from .lineplot import line_plot

__all__ = ["GeneratorOf", "EncoderOf", "invert_method", "compare_generators", "write_inversion",
           "format_ranking"]


class GeneratorOf(nn.Module):
    """A method's generator as a module: z [B, d] -> images [B, C, H, W]. Holding the method's networks
    lets ``invert`` switch them to eval mode and freeze their weights, and restore both afterwards."""

    def __init__(self, method: Method):
        super().__init__()
        if not method.has_generator:
            raise ValueError(f"method {method.cfg.method!r} has no generator to invert.")
        self.method = method
        self.nets = method.nets

    def forward(self, z: Tensor) -> Tensor:
        return self.method.generate(z)


class EncoderOf(nn.Module):
    """A method's encoder as a module: images [B, C, H, W] -> z [B, d] (the posterior mean)."""

    def __init__(self, method: Method):
        super().__init__()
        if not method.has_encoder:
            raise ValueError(f"method {method.cfg.method!r} has no encoder; use init='prior' or 'mean'.")
        self.method = method
        self.nets = method.nets

    def forward(self, x: Tensor) -> Tensor:
        return self.method.encode(x)


def invert_method(method: Method, x: Tensor, *, init: str = "prior", encoder_weight: float = 0.0,
                  **settings: Any) -> InversionResult:
    """``invert`` through a trained method's G, with its prior and latent size filled in.

    init="encoder" (or encoder_weight > 0) uses the method's own encoder. x: [N, C, H, W] images.
    Starts are drawn with the method's ``sample_prior``, so a code that holds more than the prior's z
    (a label one-hot beside the style, AAE section 5) is drawn and inverted whole; prior handling
    (support, log-prior, moments) then applies only where the code is exactly the prior's z.
    """
    needs_encoder = init == "encoder" or encoder_weight > 0
    device = next(method.nets.parameters()).device
    code_dim = int(method.sample_prior(1, torch.Generator(device).manual_seed(0)).shape[1])

    def sample(n: int, rng: torch.Generator) -> Tensor:  # a CPU generator in, the method's device inside
        local = torch.Generator(device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=rng)))
        return method.sample_prior(n, local)

    prior = method.cfg.prior if code_dim == method.cfg.latent_dim else None
    encoder = EncoderOf(method) if needs_encoder else None
    return invert(GeneratorOf(method), x, init=init, prior=prior, sample=sample, latent_dim=code_dim,
                  encoder=encoder, encoder_weight=encoder_weight, **settings)


def compare_generators(methods: Mapping[str, Method], x: Tensor, **settings: Any) -> list[dict[str, Any]]:
    """Invert the same images through every method's generator; rows ranked by mean per-sample MSE.

    Every generator gets the same settings (steps, lr, starts, seed...), each with its own prior.
    Rows: rank, name, method, prior, latent_dim (the width of the code inverted: an AAE's label one-hot
    and style together), n, mse_mean, mse_std, loss_mean, seconds.
    """
    rows = []
    for name, method in methods.items():
        result = invert_method(method, x, **settings)
        s = result.summary()
        rows.append({"name": name, "method": method.cfg.method, "prior": method.cfg.prior,
                     "latent_dim": int(result.z.shape[1]), "n": s["n"], "mse_mean": s["mse_mean"],
                     "mse_std": s["mse_std"], "loss_mean": s["loss_mean"], "seconds": s["seconds"]})
    rows.sort(key=lambda r: (math.isnan(r["mse_mean"]), r["mse_mean"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def format_ranking(rows: list[dict[str, Any]]) -> str:
    head = (f"{'rank':>4}  {'run':<40} {'method':<12} {'prior':<9} {'d':>4} {'n':>6}  "
            f"{'MSE mean +- std':<24} {'s':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['rank']:>4}  {r['name'][-40:]:<40} {r['method']:<12} {r['prior']:<9} "
                     f"{r['latent_dim']:>4} {r['n']:>6}  {r['mse_mean']:.5f} +- {r['mse_std']:.5f}{'':<5} "
                     f"{r['seconds']:>8.1f}")
    return "\n".join(lines)


def write_inversion(result: InversionResult, x: Tensor, out_dir: str | Path, *, labels: Tensor | None = None,
                    settings: Mapping[str, Any] | None = None, grid: int = 50) -> dict[str, Any]:
    """Write what a user inspects after an inversion; returns the summary (also in summary.json).

    out_dir/z.npy                  [N, d] float32 (load with np.load(..., allow_pickle=False))
    out_dir/errors.csv             index, label, mse, loss, restart, steps_to_tol per sample
    out_dir/summary.json           MSE mean +- std over the samples, the settings, wall time
    out_dir/pairs.png              the first ``grid`` images x beside G(z*)
    out_dir/loss.png, trace.csv    mean loss against optimisation steps

    The files are written into a temporary folder inside ``out_dir`` and moved into place together,
    summary.json last, so a failure while writing leaves an earlier inversion's files as they were.
    """
    final = Path(out_dir)
    final.mkdir(parents=True, exist_ok=True)
    for torn in final.glob(".writing-*"):  # left by a process killed mid-write
        shutil.rmtree(torn, ignore_errors=True)
    out = final / f".writing-{os.getpid()}"
    out.mkdir()
    try:
        np.save(out / "z.npy", result.z.numpy().astype(np.float32), allow_pickle=False)
        with open(out / "errors.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "label", "mse", "loss", "restart", "steps_to_tol"])
            hits = result.steps_to_tol.tolist() if result.steps_to_tol is not None else [""] * len(result.mse)
            ys = labels.tolist() if labels is not None else [""] * len(result.mse)
            for i, (m, lo, r, hit, y) in enumerate(zip(result.mse.tolist(), result.losses.tolist(),
                                                       result.restart.tolist(), hits, ys, strict=True)):
                writer.writerow([i, y, f"{m:.8g}", f"{lo:.8g}", r, hit])
        with open(out / "trace.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "mean_loss"])
            writer.writerows([t, f"{v:.8g}"] for t, v in enumerate(result.trace.tolist()))
        k = min(grid, x.shape[0])
        pair_grid(x[:k], result.x_hat[:k].reshape(x[:k].shape), out / "pairs.png")
        line_plot({"mean loss": result.trace}, out / "loss.png", title="inversion: mean reconstruction loss",
                  ylabel="loss", log_y=bool((result.trace > 0).all()))
        summary = {**result.summary(), "settings": dict(settings or {})}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    for name in sorted((f.name for f in out.iterdir()), key=lambda n: n == "summary.json"):
        os.replace(out / name, final / name)
    out.rmdir()
    return summary
