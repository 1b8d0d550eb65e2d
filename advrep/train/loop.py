"""The one training loop: every method, 1 or N processes.

The method says which optimiser updates which networks from which loss (``Method.phases``); the loop
owns the rest: data order, optimisers and their schedule, the non-finite guard, logging, image grids,
periodic evaluation and checkpoints. Data order and latent samples come from generators seeded by
(seed, epoch) and saved in the checkpoint, so a resumed run continues where the old one stopped.
"""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import distributed as dist
from ..checkpoint import (CheckpointError, latest_checkpoint, load_state, load_state_dict_checked,
                          read_weights, save_checkpoint)
from ..config import Config
from ..data import Dataset, load_dataset
from ..evaluate import evaluate, format_table
from ..images import pair_grid, save_grid
from ..methods import Method, build_method


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a bad resume); the last checkpoint is intact."""


def lr_scale(cfg: Config, epoch: int) -> float:
    """Constant for ``epochs``, then exponential decay to ``final_lr_scale`` over ``decay_epochs``
    (the reference code sets it once per epoch: lr * 0.01 ** ((e - 199) / 200))."""
    if epoch < cfg.epochs or cfg.decay_epochs <= 0:
        return 1.0
    return cfg.final_lr_scale ** ((epoch - cfg.epochs + 1) / cfg.decay_epochs)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data permutation of one epoch, a pure function of (seed, epoch). [n]"""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def optimizer_lrs(method: Method, cfg: Config, scale: float = 1.0) -> dict[str, float]:
    """Learning rate of each optimiser: cfg.lr * schedule scale * the method's multiplier for it."""
    mult = method.lr_multipliers()
    unknown = sorted(set(mult) - set(method.optimizers))
    if unknown:
        raise TrainingError(f"method {method.name!r} gives learning-rate multipliers for {unknown}, "
                            f"which are not among its optimisers {sorted(method.optimizers)}; "
                            "fix lr_multipliers().")
    return {name: cfg.lr * scale * mult.get(name, 1.0) for name in method.optimizers}


def make_optimizers(method: Method, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    # Coupled L2 weight decay (added to the gradient), as the reference code does for every network.
    lrs = optimizer_lrs(method, cfg)
    return {name: method.optimizer(name, method.parameters_of(name), lrs[name])
            or torch.optim.Adam(method.parameters_of(name), lr=lrs[name], betas=(cfg.beta1, cfg.beta2),
                                weight_decay=cfg.weight_decay)
            for name in method.optimizers}


def train_step(method: Method, optimizers: dict[str, torch.optim.Optimizer], params: dict[str, list],
               x: torch.Tensor, y: torch.Tensor | None, rng: torch.Generator, *, step: int,
               nonfinite: str = "stop") -> dict[str, float]:
    """One batch: for each phase, one forward pass, one backward per optimiser, then their steps.

    Gradients of every optimiser in a phase are taken at the same (pre-update) parameters, which is
    BiGAN's simultaneous update of D, E and G on one batch.
    """
    logs: dict[str, float] = {}
    # In skip mode, remember the buffers (batch-norm statistics, a few KB) so that a bad batch's
    # forward pass leaves no trace.
    saved = [b.detach().clone() for b in method.nets.buffers()] if nonfinite == "skip" else None
    for phase, names in enumerate(method.phases):
        losses, extra = method.losses(phase, x, y, rng)
        values = {name: float(losses[name].detach()) for name in names}
        bad = {name: v for name, v in values.items() if not math.isfinite(v)}
        if bad:
            name, value = next(iter(bad.items()))
            nets = "+".join(method.optimizers[name])
            if nonfinite == "skip":
                with torch.no_grad():
                    for buf, old in zip(method.nets.buffers(), saved):
                        buf.copy_(old)
                logs["skipped"] = 1.0
                return logs
            raise TrainingError(f"loss {name!r} (networks {nets}) is {value} at step {step}. The last "
                                "checkpoint is intact; lower lr, or set nonfinite=skip to drop such batches.")
        for name in names:
            optimizers[name].zero_grad(set_to_none=True)
        for i, name in enumerate(names):
            torch.autograd.backward(losses[name], inputs=params[name], retain_graph=i < len(names) - 1)
        for name in names:
            optimizers[name].step()
        logs.update({f"loss_{k}": v for k, v in values.items()})
        logs.update({k: float(v.detach()) for k, v in extra.items()})
    return logs


def _rng_state(z_rng: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "z": z_rng.get_state(),
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}


def _set_rng_state(state: dict[str, Any], z_rng: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    z_rng.set_state(state["z"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class StopRequests:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so a stop never lands halfway
    through an update. A second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


class RunLog:
    """metrics.jsonl, appended by rank 0 only."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "metrics.jsonl"

    def write(self, record: dict[str, Any]) -> None:
        if dist.is_main():
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _prepare_run_dir(run_dir: Path, cfg: Config, resume: bool) -> Config:
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.json"
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise TrainingError(f"--resume: no checkpoint in {run_dir}/checkpoints; start without --resume.")
        old, _ = read_weights(ckpt / "weights.safetensors")
        # Settings that shape the networks must match; schedules and logging may change on resume.
        shape_keys = ("method", "latent_dim", "hidden", "prior", "stochastic_encoder", "data", "arch",
                      "width", "encoder_scale")
        diffs = [f"{k}: run has {getattr(old, k)!r}, asked {getattr(cfg, k)!r}" for k in shape_keys
                 if getattr(old, k) != getattr(cfg, k)]
        if diffs:
            raise TrainingError(f"--resume into {run_dir} with different model settings: " + "; ".join(diffs))
    elif latest_checkpoint(run_dir) is not None:
        raise TrainingError(f"run directory {run_dir} already holds checkpoints; pass --resume to continue "
                            "it, or choose another --run-dir.")
    probe = run_dir / f".write-test-{dist.rank()}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"run directory {run_dir} is not writable ({exc}); choose another --run-dir.") from exc
    if dist.is_main():
        saved.write_text(cfg.to_json() + "\n")
    return cfg


def train(cfg: Config, run_dir: str | Path, *, resume: bool = False, train_set: Dataset | None = None,
          test_set: Dataset | None = None) -> dict[str, float]:
    """Train ``cfg.method`` into ``run_dir``; returns the final evaluation's numbers."""
    run_dir = Path(run_dir)
    device = dist.pick_device(cfg.device)
    dist.init(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    size = cfg.image_size or None  # only image folders take a size; others say so if it is set
    train_set = train_set or load_dataset(cfg.data, "train", data_dir=cfg.data_dir, size=size)
    test_set = test_set or load_dataset(cfg.data, "test", data_dir=cfg.data_dir, size=size)
    if len(train_set) < cfg.batch_size:
        raise TrainingError(f"dataset {train_set.name!r} has {len(train_set)} training images, fewer than "
                            f"batch_size={cfg.batch_size}; lower batch_size.")
    cfg = cfg.updated({"image_shape": list(train_set.image_shape)})
    cfg = _prepare_run_dir(run_dir, cfg, resume)

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed + dist.rank())
    method = build_method(cfg, train_set.image_shape)
    method.nets.to(device)
    method.prepare(train_set)
    optimizers = make_optimizers(method, cfg)
    params = {name: method.parameters_of(name) for name in method.optimizers}
    z_rng = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + dist.rank())
    step, epoch, batch = 0, 0, 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        _, tensors = read_weights(ckpt / "weights.safetensors")
        load_state_dict_checked(method.nets, tensors, source=f"checkpoint {ckpt}")
        state = load_state(ckpt)
        for name, opt in optimizers.items():
            if name not in state["optimizers"]:
                raise CheckpointError(f"checkpoint {ckpt} has no state for optimiser {name!r}.")
            opt.load_state_dict(state["optimizers"][name])
        step, epoch, batch = state["step"], state["epoch"], state["batch"]
        _set_rng_state(state["rng"], z_rng)

    log = RunLog(run_dir)
    fixed_z = method.sample_prior(64, torch.Generator(device=device).manual_seed(12345)) \
        if method.has_generator else None
    fixed_x = test_set.x[:32].to(device)
    x_all = train_set.x.to(device)  # [N, C, H, W], kept whole in memory
    y_all = train_set.y.to(device) if train_set.y is not None else None
    steps_per_epoch = len(train_set) // cfg.batch_size  # the last partial batch is dropped
    total_epochs = cfg.epochs + cfg.decay_epochs

    def checkpoint() -> None:
        state = {"step": step, "epoch": epoch, "batch": batch, "rng": _rng_state(z_rng),
                 "optimizers": {k: o.state_dict() for k, o in optimizers.items()}}
        if dist.is_main():
            save_checkpoint(run_dir, method.nets, cfg, state, keep=cfg.keep_checkpoints)
        dist.barrier()

    def images(tag: str) -> None:
        if not dist.is_main():
            return
        was = method.nets.training
        method.nets.eval()
        with torch.no_grad():
            if fixed_z is not None:
                save_grid(method.generate(fixed_z).cpu(), run_dir / "samples" / f"{tag}.png")
            if method.has_encoder and method.has_generator:
                pair_grid(fixed_x.cpu(), method.reconstruct(fixed_x).cpu(), run_dir / "recon" / f"{tag}.png")
        method.nets.train(was)

    started = time.perf_counter()
    images_seen = 0
    final: dict[str, float] = {}
    method.nets.train()
    with StopRequests() as stop:
        while epoch < total_epochs:
            scale = method.lr_schedule(epoch)
            lrs = optimizer_lrs(method, cfg, lr_scale(cfg, epoch) if scale is None else scale)
            for name, opt in optimizers.items():
                for group in opt.param_groups:
                    group["lr"] = lrs[name]
            order = epoch_order(len(train_set), cfg.seed, epoch)
            bar = tqdm(range(batch, steps_per_epoch), desc=f"epoch {epoch + 1}/{total_epochs}", leave=False,
                       disable=not (cfg.progress and dist.is_main()))
            for b in bar:
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size].to(device)
                y = y_all[idx] if y_all is not None else None
                logs = train_step(method, optimizers, params, x_all[idx], y, z_rng, step=step,
                                  nonfinite=cfg.nonfinite)
                step, batch = step + 1, b + 1
                method.after_step(step)
                images_seen += cfg.batch_size
                if step % cfg.log_every == 0:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k.startswith("loss")})
                    log.write({"step": step, "epoch": epoch, "lr": cfg.lr * lr_scale(cfg, epoch),
                               "time": time.perf_counter() - started, **logs})
                if stop.requested:
                    # Ctrl-C or SIGTERM: the step in flight has finished, so the state is consistent.
                    checkpoint()
                    bar.close()
                    raise KeyboardInterrupt(f"stopped by {stop.requested}: saved step {step} to {run_dir}; "
                                            "continue with --resume")
            bar.close()
            batch = 0
            epoch += 1
            last = epoch == total_epochs
            if cfg.sample_every and (epoch % cfg.sample_every == 0 or last):
                images(f"epoch{epoch:04d}")
            if last or (cfg.eval_every and epoch % cfg.eval_every == 0):
                if dist.is_main():
                    final = evaluate(method, train_set, test_set, probe=False, protocols=("test",))
                    log.write({"kind": "eval", "step": step, "epoch": epoch,
                               "time": time.perf_counter() - started, **final})
                    method.nets.train()
            if last or (cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0):
                checkpoint()
    elapsed = time.perf_counter() - started
    summary = {"kind": "summary", "step": step, "epochs": total_epochs, "wall_s": elapsed,
               "images_per_s": images_seen / elapsed if elapsed > 0 else 0.0, **final}
    log.write(summary)
    if dist.is_main():
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    dist.shutdown()
    return summary


__all__ = ["TrainingError", "train", "train_step", "lr_scale", "epoch_order", "format_table"]
