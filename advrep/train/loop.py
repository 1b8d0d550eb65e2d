"""The one training loop: every method, 1 or N processes.

The method says which optimiser updates which networks from which loss (``Method.phases``); the loop
owns the rest: data order, optimisers and their schedule, the non-finite guard, logging, image grids,
periodic evaluation and checkpoints. Data order and latent samples come from generators seeded by
(seed, epoch) and saved in the checkpoint, so a resumed run continues where the old one stopped.
"""

from __future__ import annotations

import contextlib
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
from ..checkpoint import (
    BEST,
    CheckpointError,
    RunLock,
    atomic_write_text,
    latest_checkpoint,
    load_state_dict_checked,
    read_best,
    resume_point,
    save_best,
    save_checkpoint,
)
from ..config import Config
from ..data import Dataset, load_dataset
from ..eval.recon import reconstruction_errors
from ..evaluate import compute_features, evaluate, fit_split, format_table, refresh_batch_norm
from ..images import pair_grid, save_grid
from ..methods import Method, build_method
from ..report import read_metrics
from .precision import FP32, Precision
from .tensorboard import TensorBoardLog


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a bad resume); the last checkpoint is intact."""


class GeneratorCollapsed(TrainingError):
    """With ``stop_on_collapse``: the game failed after ``epoch`` epochs, in one of two ways (``mode``):
    ``"one_image"``, G drew one image for all 64 fixed latents (per-pixel spread ``spread``); or
    ``"unlinked"``, G(E(x)) stayed no closer to x than another image is (reconstruction ratio ``ratio``,
    the last of the epochs that fired the check). Measured on rank 0; inf/nan on the other ranks of a
    distributed run. The checkpoints before that epoch are intact; that epoch's was not written."""

    def __init__(self, message: str, *, epoch: int, spread: float, mode: str = "one_image",
                 ratio: float = math.nan):
        super().__init__(message)
        self.epoch, self.spread, self.mode, self.ratio = epoch, spread, mode, ratio


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
    # Fused Adam: the same update in one pass over each parameter instead of ~10 elementwise passes.
    # The profile of a BiGAN MNIST step on the CPU (benchmarks/train_speed.py) showed the unfused Adam
    # as large a cost as all the matmuls; fused steps 5x faster there and differs from it by float
    # round-off only (~1e-8 after 20 steps). Other devices (e.g. MPS) keep the default implementation.
    device = next(method.nets.parameters()).device.type
    fused = {"fused": True} if device in ("cpu", "cuda") else {}
    return {name: method.optimizer(name, method.parameters_of(name), lrs[name])
            or torch.optim.Adam(method.parameters_of(name), lr=lrs[name], betas=(cfg.beta1, cfg.beta2),
                                weight_decay=cfg.weight_decay, **fused)
            for name in method.optimizers}


def train_step(method: Method, optimizers: dict[str, torch.optim.Optimizer], params: dict[str, list],
               x: torch.Tensor, y: torch.Tensor | None, rng: torch.Generator, *, step: int,
               nonfinite: str = "stop", max_grad_norm: float = 0.0,
               precision: Precision = FP32) -> dict[str, float]:
    """One batch: for each phase, one forward pass, one backward per optimiser, then their steps.

    Gradients of every optimiser in a phase are taken at the same (pre-update) parameters, which is
    BiGAN's simultaneous update of D, E and G on one batch. A non-finite loss, or a gradient norm above
    ``max_grad_norm`` (when > 0), stops training (``nonfinite="stop"``) or drops the rest of the batch
    (``"skip"``) before any optimiser of that phase steps.

    Under torchrun x is this rank's slice of the global batch: right after each optimiser's backward its
    gradients are averaged over the ranks, so every rank takes the same step, and a network that is
    only a critic in a phase is never communicated. Logged losses are means over the ranks.
    ``precision`` runs the forward passes under autocast (fp16 also scales the losses); in one fp32
    process neither changes a bit.
    """
    logs: dict[str, float] = {}
    # In skip mode, remember the buffers (batch-norm statistics, a few KB) so that a bad batch's
    # forward pass leaves no trace.
    saved = [b.detach().clone() for b in method.nets.buffers()] if nonfinite == "skip" else None

    def reject(what: str, name: str, value: float, fix: str) -> dict[str, float]:
        precision.update()  # an fp16 scaler that unscaled this phase's gradients resets here
        if nonfinite == "skip":
            with torch.no_grad():
                for buf, old in zip(method.nets.buffers(), saved):
                    buf.copy_(old)
            logs["skipped"] = 1.0
            return logs
        nets = "+".join(method.optimizers[name])
        raise TrainingError(f"{what} {name!r} (networks {nets}) is {value} at step {step}. The last "
                            f"checkpoint is intact; {fix}, or set nonfinite=skip to drop such batches.")

    for phase, names in enumerate(method.phases):
        with precision.autocast():
            losses, extra = method.losses(phase, x, y, rng)
        # Every logged number in one collective (means over ranks), so all ranks see the same values
        # and reach the same decision about a bad batch.
        keys = [f"loss_{name}" for name in names] + list(extra)
        scalars = dist.mean_scalars([losses[name] for name in names] + list(extra.values()))
        values = dict(zip(keys, scalars, strict=True))
        for name in names:
            if not math.isfinite(values[f"loss_{name}"]):
                return reject("loss", name, values[f"loss_{name}"], "lower lr")
        for name in names:
            optimizers[name].zero_grad(set_to_none=True)
        for i, name in enumerate(names):
            precision.backward(losses[name], params[name], retain_graph=i < len(names) - 1)
            dist.average_gradients(params[name])  # exactly the networks this optimiser updates
        if max_grad_norm > 0:
            for name in names:
                precision.unscale(optimizers[name])
                norm = float(torch.linalg.vector_norm(torch.stack(
                    [torch.linalg.vector_norm(p.grad) for p in params[name] if p.grad is not None])))
                if precision.scaler is not None and not math.isfinite(norm):
                    continue  # an fp16 overflow: the scaler skips this step and lowers its scale
                if not norm <= max_grad_norm:  # also catches NaN
                    return reject("gradient norm of", name, norm, f"raise max_grad_norm={max_grad_norm}")
        for name in names:
            precision.step(optimizers[name])
        precision.update()
        logs.update(values)
    logs.update(precision.logs())
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


def _rank_rng_states(z_rng: torch.Generator) -> dict[str, Any] | None:
    """Every rank's torch and latent generator states, gathered for rank 0's checkpoint (a collective;
    None in one process, where ``_rng_state`` holds everything)."""
    if not dist.is_distributed():
        return None
    return {"world_size": dist.world_size(),
            "torch": dist.gather_rows(torch.get_rng_state()[None]),  # [W, L] uint8
            "z": dist.gather_rows(z_rng.get_state()[None])}  # [W, M] uint8


def _restore_rank_rng(state: dict[str, Any], z_rng: torch.Generator, *, seed: int, step: int) -> None:
    """After ``_set_rng_state`` (rank 0's streams): rank r continues its own streams when the checkpoint
    holds them; a rank the saving run did not have (resuming under more processes) starts fresh
    streams seeded by (seed, rank, step), so no two ranks ever draw the same latents."""
    r, saved = dist.rank(), state.get("rank_rng")
    if saved is not None and r < saved["world_size"]:
        torch.set_rng_state(saved["torch"][r].clone())
        z_rng.set_state(saved["z"][r].clone())
    elif r > 0:
        torch.manual_seed(seed + r + 1_000_003 * (step + 1))
        z_rng.manual_seed(seed * 7919 + r + 1_000_003 * (step + 1))


# Below this per-pixel spread G has collapsed to a single image: 64 fresh samples of an untrained
# MNIST generator spread about 0.008, trained ones about 0.13, a collapsed one 2e-8.
COLLAPSED_SPREAD = 1e-4


def generator_spread(method: Method, z: torch.Tensor) -> float:
    """The standard deviation of G(z) over the batch, averaged over pixels, with the networks in eval
    mode (no batch-norm update, no collective). 0 when every latent gives the same image."""
    was = method.nets.training
    method.nets.eval()
    with torch.no_grad():
        x = method.generate(z).float().flatten(1)  # [B, C*H*W]
    method.nets.train(was)
    return float(x.std(0).mean())


# At or above cfg.unlinked_ratio (default 0.95) the reconstruction ratio (reconstruction_ratio) says
# G(E(x)) is no closer to x than to another training image: E and G do not invert each other. A
# 40 + 40-epoch MNIST BiGAN whose D won in its first epochs drew per-pixel noise and measured 0.99, 0.88,
# 0.87, 0.99, 1.00 and 0.98 after epochs 1-6; a healthy one 0.92 and 0.89 after epochs 1-2 and 0.78-0.83
# after epochs 3-10 (docs/reliability.md).
UNLINKED_EPOCHS = 3  # consecutive epochs at or above it before the check fires
UNLINKED_FROM_STEP = 1000  # and only from this many steps on: every fresh E and G start near 1
RATIO_IMAGES = 256  # training images the per-epoch ratio is measured on


def reconstruction_ratio(method: Method, x: torch.Tensor) -> float:
    """The evaluation's reconstruction ratio (advrep.eval.recon) on ``x``: the mean distance
    ||x - G(E(x))|| over the mean distance from G(E(x)) to another image of ``x`` (a fixed derangement).
    Networks in eval mode (no batch-norm update, no collective). 0: perfect reconstruction; about 1:
    G(E(x)) carries nothing of which x it came from; nan when every image is the same."""
    was = method.nets.training
    method.nets.eval()
    with torch.no_grad():
        ratio = reconstruction_errors(x, method.reconstruct(x))["recon_ratio"]
    method.nets.train(was)
    return ratio


def _evaluate(method: Method, train_set: Dataset, test_set: Dataset, *, val: bool = False,
              fit_set: Dataset | None = None) -> dict[str, float]:
    """1NN of the run's features on the test set (and, with ``val``, on the validation split of the
    training set); {} on ranks other than 0. ``fit_set``: the images trained on, where batch norm's
    statistics are gathered (default ``train_set``). Under torchrun every rank refreshes the
    batch-norm statistics on the same batches (SyncBatchNorm's collectives need all of them) and
    computes the features of its shard of each split; rank 0 scores the gathered features while the
    others wait at a barrier."""
    features = None
    if dist.is_distributed():
        device = next(method.nets.parameters()).device
        refresh_batch_norm(method, fit_set if fit_set is not None else train_set, batches=method.cfg.bn_batches)
        method.nets.eval()
        features = tuple({name: dist.gather_rows(f) for name, f in compute_features(
            method.features, data.x[dist.shard(len(data))], device=device).items()}
            for data in (train_set, test_set))
    protocols = ("test", "val") if val else ("test",)
    results = evaluate(method, train_set, test_set, probe=False, protocols=protocols, refresh_bn=features is None,
                       features=features, bn_data=fit_set) if dist.is_main() else {}
    method.nets.train()
    dist.barrier()
    return results


def check_keep_best(cfg: Config, run_dir: Path, train_set: Dataset, test_set: Dataset, *, resume: bool) -> None:
    """Refuse a ``keep_best`` run that could never keep anything, or that would mix its choice with
    another run's, before the run directory is touched."""
    metric, total = cfg.keep_best, cfg.epochs + cfg.decay_epochs
    if train_set.y is None or test_set.y is None:
        raise TrainingError(f"keep_best={metric!r} scores labelled validation images, but {train_set.name!r} "
                            "has no labels; set keep_best=''.")
    if len(train_set) <= 10000:
        raise TrainingError(f"keep_best={metric!r} needs more than 10000 training images (10000 of them are "
                            f"the validation split), but {train_set.name!r} has {len(train_set)}; set keep_best=''.")
    if not cfg.eval_every or cfg.eval_every >= total:
        raise TrainingError(f"keep_best={metric!r} chooses among the evaluations during training, but "
                            f"eval_every={cfg.eval_every} evaluates only the last of {total} epochs; set "
                            f"eval_every below {total}.")
    method = build_method(cfg, train_set.image_shape)
    method.nets.eval()
    with torch.no_grad():
        names = list(method.features(train_set.x[:2]))
    feature = metric.split(".", 1)[1]
    if feature not in names:
        raise TrainingError(f"keep_best={metric!r}: method {cfg.method!r} has no feature {feature!r}; choose "
                            f"one of {', '.join('1nn_val.' + n for n in names)}.")
    info = read_best(run_dir)
    if info is not None and not resume:
        raise TrainingError(f"{run_dir / BEST} holds weights another run kept (step {info['step']}); move it "
                            "away, or choose another --run-dir.")
    if info is not None and info.get("metric") != metric:
        raise TrainingError(f"{run_dir / BEST} holds weights chosen by {info.get('metric')!r}, not {metric!r}; "
                            f"move it away or keep keep_best={info.get('metric')!r}.")


class BestWeights:
    """``keep_best``: the weights of the evaluation with the highest validation score so far.

    An improvement forces that epoch's checkpoint, whose state records the score, and only then are the
    weights copied to RUN/best, so RUN/best never runs ahead of the checkpoint a resume starts from. A
    run stopped between the two repairs RUN/best on resume from that very checkpoint."""

    def __init__(self, run_dir: Path, metric: str):
        self.run_dir, self.metric = run_dir, metric
        self.kept: dict[str, Any] | None = None  # {"metric", "value", "epoch", "step"} of the best so far
        self.pending = False  # improved at this epoch's evaluation, not yet copied to RUN/best

    def resume(self, state: dict[str, Any], method: Method, cfg: Config, *, step: int) -> None:
        """Take the best score from the checkpoint's state and make RUN/best agree with it (rank 0 writes)."""
        self.kept = state.get("best")
        on_disk = read_best(self.run_dir)
        if self.kept is None and on_disk is not None or (
                self.kept is not None and on_disk is not None and on_disk["step"] > self.kept["step"]):
            raise TrainingError(f"{self.run_dir / BEST} holds weights of step {on_disk['step']}, which the "
                                f"checkpoint resumed (step {step}) did not keep: they come from a discarded "
                                f"continuation or another run. Move {self.run_dir / BEST} away to go on.")
        if on_disk is not None and dist.is_main():  # best.json may lag the weights' own record by one
            atomic_write_text(self.run_dir / BEST / "best.json", json.dumps(on_disk, indent=2) + "\n")
        if self.kept is None or (on_disk is not None and on_disk["step"] == self.kept["step"]):
            return
        if self.kept["step"] == step:  # stopped after the checkpoint, before the copy: the weights are here
            if dist.is_main():
                save_best(self.run_dir, method.nets, cfg, self.kept)
            return
        if dist.is_main():
            print(f"warning: {self.run_dir / BEST} lacks the weights of step {self.kept['step']} (score "
                  f"{self.kept['value']}); the selection starts afresh from the next evaluation.", flush=True)
        self.kept = None

    def offer(self, results: dict[str, float], *, epoch: int, step: int) -> bool:
        """Rank 0: note the score of this evaluation; True if it beats the best so far."""
        value = results[self.metric]
        if not math.isfinite(value) or (self.kept is not None and value <= self.kept["value"]):
            return False
        self.kept = {"metric": self.metric, "value": value, "epoch": epoch, "step": step}
        self.pending = True
        return True

    def save(self, method: Method, cfg: Config) -> None:
        """After the checkpoint of an improved epoch: copy its weights to RUN/best (rank 0)."""
        if self.pending and dist.is_main():
            save_best(self.run_dir, method.nets, cfg, self.kept)
        self.pending = False


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

    def __init__(self, run_dir: Path, *, tensorboard: bool = False):
        self.path = run_dir / "metrics.jsonl"
        # Optional mirror of every record as TensorBoard scalars (cfg.tensorboard; needs the package).
        self.tensorboard = TensorBoardLog(run_dir / "tensorboard") if tensorboard and dist.is_main() else None

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint's step: those steps are run again."""
        if not dist.is_main() or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if record.get("step", 0) <= step:
                kept.append(line + "\n")
        atomic_write_text(self.path, "".join(kept))  # the run's only record: never half-written

    def set_aside(self) -> None:
        """A fresh run into a directory that already holds a metrics.jsonl (of a run killed before its
        first checkpoint, or whose checkpoints were deleted): keep that log under another name, so the
        new run's records are not appended to an older run's."""
        if not dist.is_main() or not self.path.is_file():
            return
        kept = self.path.with_name(f"metrics-before-{time.strftime('%Y%m%dT%H%M%S')}.jsonl")
        self.path.rename(kept)
        print(f"note: {self.path} held an earlier run's log, with no checkpoint to resume from; kept it as "
              f"{kept.name} and started a new one.", flush=True)

    def write(self, record: dict[str, Any]) -> None:
        if dist.is_main():
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def close(self) -> None:
        """Close the TensorBoard writer however training ends: a finished run's summary record has
        closed it already, but a run ended by an exception (a NaN loss, a collapse, Ctrl-C) has not, and
        every such run in one process (bigan_table.py's reseeds) would leave a writer thread behind. A
        failure to close is dropped so that it never hides the exception that ended the run."""
        if self.tensorboard is not None:
            with contextlib.suppress(Exception):
                self.tensorboard.close()


# What a checkpoint's training state must hold for a resume (written by _train's checkpoint step).
STATE_KEYS = ("step", "epoch", "batch", "rng", "optimizers")


def _prepare_run_dir(run_dir: Path, cfg: Config, resume: bool) -> tuple[Config, tuple | None]:
    """Check the run directory and write config.json; with ``resume``, also returns the checkpoint to
    go on from (checkpoint.resume_point: directory, config, tensors, state, notes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.json"
    point = None
    if resume:
        point = resume_point(run_dir, required=STATE_KEYS)
        if point is None:
            raise TrainingError(f"--resume: no checkpoint in {run_dir}/checkpoints; start without --resume.")
        old = point[1]
        # Settings that shape the networks, or choose the images trained on, must match; schedules and
        # logging may change on resume.
        shape_keys = ("method", "latent_dim", "hidden", "prior", "stochastic_encoder", "data", "arch",
                      "width", "encoder_scale", "hold_out_val", "val_split")
        diffs = [f"{k}: run has {getattr(old, k)!r}, asked {getattr(cfg, k)!r}" for k in shape_keys
                 if getattr(old, k) != getattr(cfg, k)]
        if diffs:
            raise TrainingError(f"--resume into {run_dir} with settings that differ from the run's (they shape "
                                "the networks or choose the images trained on and evaluated): " + "; ".join(diffs)
                                + ". Resume with the run's values (--set KEY=VALUE), or choose another --run-dir.")
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
        atomic_write_text(saved, cfg.to_json() + "\n")
    return cfg, point


def train(cfg: Config, run_dir: str | Path, *, resume: bool = False, train_set: Dataset | None = None,
          test_set: Dataset | None = None) -> dict[str, float]:
    """Train ``cfg.method`` into ``run_dir``; returns the final evaluation's numbers.

    The run directory is locked while training (rank 0 holds it), so a second run into it refuses.
    ``train_set``/``test_set`` replace loading ``cfg.data`` (Datasets of images [N, C, H, W]); without
    labels the end-of-training evaluation is skipped. Example::

        summary = train(make_config("bigan", data="digits", epochs=20), "runs/digits")
        summary["1nn_test.z"], summary["wall_s"]
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"run directory {run_dir} cannot be created ({exc}); choose another --run-dir.") from exc
    with RunLock(run_dir, enabled=dist.is_main()), contextlib.ExitStack() as cleanup:
        return _train(cfg, run_dir, resume=resume, train_set=train_set, test_set=test_set, cleanup=cleanup)


def _train(cfg: Config, run_dir: Path, *, resume: bool, train_set: Dataset | None,
           test_set: Dataset | None, cleanup: contextlib.ExitStack) -> dict[str, float]:
    device = dist.pick_device(cfg.device)
    created_group = dist.init(device)
    precision = Precision(cfg.precision, device)
    try:
        local_batch = dist.local_batch_size(cfg.batch_size)  # cfg.batch_size is the global batch
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    size = cfg.image_size or None  # only image folders take a size; others say so if it is set
    train_set = train_set or load_dataset(cfg.data, "train", data_dir=cfg.data_dir, size=size)
    test_set = test_set or load_dataset(cfg.data, "test", data_dir=cfg.data_dir, size=size)
    if cfg.hold_out_val and (train_set.y is None or test_set.y is None):
        raise TrainingError(f"hold_out_val keeps 10000 images of {train_set.name!r} out of training to "
                            "score 1NN on them, but the data has no labels to score; set hold_out_val=false.")
    try:
        fit_set = fit_split(train_set, cfg.hold_out_val, cfg.val_split)  # the images trained on
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if len(fit_set) < cfg.batch_size:
        raise TrainingError(f"dataset {train_set.name!r} has {len(fit_set)} training images"
                            f"{' after hold_out_val' if cfg.hold_out_val else ''}, fewer than "
                            f"batch_size={cfg.batch_size}; lower batch_size.")
    cfg = cfg.updated({"image_shape": list(train_set.image_shape)})
    if cfg.keep_best:
        check_keep_best(cfg, run_dir, train_set, test_set, resume=resume)
    cfg, point = _prepare_run_dir(run_dir, cfg, resume)

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed + dist.rank())
    method = build_method(cfg, train_set.image_shape)
    dist.sync_batch_norm(method.nets, device)  # CUDA under torchrun: statistics over the global batch
    method.nets.to(device)
    method.prepare(fit_set)
    optimizers = make_optimizers(method, cfg)
    params = {name: method.parameters_of(name) for name in method.optimizers}
    z_rng = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + dist.rank())
    step, epoch, batch = 0, 0, 0
    best = BestWeights(run_dir, cfg.keep_best) if cfg.keep_best else None
    if resume:
        ckpt, _, tensors, state, notes = point
        if dist.is_main():
            for note in notes:
                print(note, flush=True)
        load_state_dict_checked(method.nets, tensors, source=f"checkpoint {ckpt}")
        for name, opt in optimizers.items():
            if name not in state["optimizers"]:
                raise CheckpointError(f"checkpoint {ckpt} has no state for optimiser {name!r}; it was written "
                                      "by another method or version: resume into the run that wrote it, or "
                                      "start afresh into another --run-dir.")
            try:
                opt.load_state_dict(state["optimizers"][name])
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"checkpoint {ckpt}: the state of optimiser {name!r} does not fit this "
                                      f"model ({type(exc).__name__}: {exc}); resume into the run that wrote it, "
                                      "or start afresh into another --run-dir.") from exc
        step, epoch, batch = state["step"], state["epoch"], state["batch"]
        _set_rng_state(state["rng"], z_rng)
        _restore_rank_rng(state, z_rng, seed=cfg.seed, step=step)
        precision.load_state_dict(state.get("precision", {}))
        if best is not None:
            best.resume(state, method, cfg, step=step)
    dist.broadcast_module(method.nets)  # every rank starts from rank 0's networks

    if resume and epoch >= cfg.epochs + cfg.decay_epochs:
        # Nothing left to train: keep the finished run's summary and logs as they are.
        done = run_dir / "summary.json"
        if dist.is_main():
            print(f"{run_dir} already finished its {epoch} epochs; raise epochs or decay_epochs to go on.")
            if best is not None and read_best(run_dir) is None:
                print(f"note: keep_best={cfg.keep_best!r} came after the training ended; nothing was kept.")
        try:
            return json.loads(done.read_text()) if done.is_file() else {"step": step, "epochs": epoch}
        except json.JSONDecodeError:  # cut short by a crash as it was written: the log holds the same
            last = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("kind") == "summary"]
            return last[-1] if last else {"step": step, "epochs": epoch}
    log = RunLog(run_dir, tensorboard=cfg.tensorboard)
    cleanup.callback(log.close)
    if resume:
        log.truncate_after(step)
    else:
        log.set_aside()
    fixed_z = method.sample_prior(64, torch.Generator(device=device).manual_seed(12345)) \
        if method.has_generator else None
    fixed_x = test_set.x[:32].to(device)
    # the images the per-epoch reconstruction ratio is measured on: a fixed draw from the training images
    ratio_x = fit_set.x[torch.randperm(len(fit_set), generator=torch.Generator().manual_seed(54321))[:RATIO_IMAGES]
                        ].to(device) if method.has_encoder and method.has_generator and dist.is_main() else None
    x_all = fit_set.x.to(device)  # [N, C, H, W], kept whole in memory
    y_all = fit_set.y.to(device) if fit_set.y is not None else None
    steps_per_epoch = len(fit_set) // cfg.batch_size  # the last partial batch is dropped
    total_epochs = cfg.epochs + cfg.decay_epochs

    def checkpoint() -> None:
        state = {"step": step, "epoch": epoch, "batch": batch, "rng": _rng_state(z_rng),
                 "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                 "precision": precision.state_dict()}
        if best is not None:
            state["best"] = best.kept  # rank 0's, the one saved
        rank_rng = _rank_rng_states(z_rng)  # collective: every rank's latent stream, for resume
        if rank_rng is not None:
            state["rank_rng"] = rank_rng
        # Batch-norm statistics differ per rank on the CPU; rank 0's are saved, so every rank adopts
        # them and a resumed run starts from the state an uninterrupted one has.
        dist.broadcast_module(method.nets, parameters=False)
        dist.barrier()
        if dist.is_main():
            save_checkpoint(run_dir, method.nets, cfg, state, keep=cfg.keep_checkpoints)
        dist.barrier()

    def images(tag: str) -> None:
        if not dist.is_main():
            return
        was = method.nets.training
        method.nets.eval()  # eval mode: no SyncBatchNorm collective, so rank 0 may run it alone
        with torch.no_grad():
            if fixed_z is not None:
                save_grid(method.generate(fixed_z).cpu(), run_dir / "samples" / f"{tag}.png")
            if method.has_encoder and method.has_generator:
                pair_grid(fixed_x.cpu(), method.reconstruct(fixed_x).cpu(), run_dir / "recon" / f"{tag}.png")
        method.nets.train(was)

    # What a resumed run's log already holds (rank 0 reads it): the failures it warned of, once each per
    # run (a record from before modes were logged is a one-image collapse), and the ratios of the run of
    # epochs at or above cfg.unlinked_ratio that it ended in, so that a streak goes on across pieces.
    earlier = read_metrics(log.path) if resume and dist.is_main() else []
    noted = {r.get("mode", "one_image") for r in earlier if r.get("kind") == "collapse"}
    unlinked: list[float] = []

    def count_ratio(ratio: float, at_step: int) -> None:
        if cfg.unlinked_ratio > 0 and ratio >= cfg.unlinked_ratio and at_step >= UNLINKED_FROM_STEP:
            unlinked.append(ratio)
        else:
            unlinked.clear()

    for r in earlier:
        if r.get("kind") == "health" and "recon_ratio" in r:
            count_ratio(r["recon_ratio"], r["step"])

    def check_collapse() -> None:
        """Rank 0, after each epoch: log G's spread over ``fixed_z`` and, with an encoder, the
        reconstruction ratio on ``ratio_x`` (a "health" line); warn once if G maps every latent to one
        image, or if G(E(x)) has been no closer to x than another image for UNLINKED_EPOCHS epochs.
        With ``stop_on_collapse`` every rank then raises GeneratorCollapsed instead of going on."""
        if fixed_z is None:
            return
        spread = ratio = math.nan
        readings: dict[str, float] = {}  # rank 0's readings, for the health line and a collapse line
        if dist.is_main():
            spread = generator_spread(method, fixed_z)
            ratio = reconstruction_ratio(method, ratio_x) if ratio_x is not None else math.nan
            readings = {"G_spread": spread, **({"recon_ratio": ratio} if ratio_x is not None else {})}
            log.write({"kind": "health", "step": step, "epoch": epoch, **readings,
                       "time": time.perf_counter() - started})
        count_ratio(ratio, step)
        one_image = spread < COLLAPSED_SPREAD
        failed = "one_image" if one_image else "unlinked" if len(unlinked) >= UNLINKED_EPOCHS else None
        if failed and failed not in noted:
            noted.add(failed)
            log.write({"kind": "collapse", "mode": failed, "step": step, "epoch": epoch, **readings,
                       "time": time.perf_counter() - started})
            other = " or precision=fp32" if cfg.precision != "fp32" and one_image else ""
            then = ("stop_on_collapse is set, so training stops here" if cfg.stop_on_collapse else
                    f"consider stopping and starting afresh with another seed{other}, or set "
                    "stop_on_collapse=true to stop at once")
            if one_image:
                what = (f"G draws the same image for all 64 fixed latents (per-pixel spread {spread:.2g}, below "
                        f"{COLLAPSED_SPREAD:g}). It may not recover: the D baseline's GAN did not")
            else:
                what = (f"G(E(x)) has been no closer to x than to another training image for {len(unlinked)} "
                        f"epochs (reconstruction ratio {', '.join(f'{r:.3f}' for r in unlinked)} on "
                        f"{len(ratio_x)} training images, at or above unlinked_ratio={cfg.unlinked_ratio:g}): "
                        "E and G do not invert each other. In the MNIST BiGAN this was D winning the game while "
                        "G drew noise, and the only such run we have seen had not recovered by epoch 42, when "
                        "it was stopped; set unlinked_ratio=0 if your method is not meant to reconstruct")
            print(f"warning: epoch {epoch}: {what} (docs/reliability.md). Checkpoints from here on hold the "
                  f"failed networks; {then}.", flush=True)
        if cfg.stop_on_collapse and dist.any_rank(failed is not None):
            # every rank raises the same kind: rank 0 measured it
            failed = "unlinked" if dist.any_rank(failed == "unlinked") else "one_image"
            measured = ((f", per-pixel spread {spread:.2g} < {COLLAPSED_SPREAD:g}" if failed == "one_image" else
                         f", reconstruction ratio >= {cfg.unlinked_ratio:g} for {len(unlinked)} epochs")
                        if dist.is_main() else "")
            what = ("G collapsed (one image for all 64 fixed latents" if failed == "one_image" else
                    "E and G stopped inverting each other (G(E(x)) no closer to x than another image")
            raise GeneratorCollapsed(
                f"{what}{measured}) after epoch {epoch} and "
                f"stop_on_collapse is set: training stopped without saving that epoch. The checkpoints already "
                f"in {run_dir} are intact, but their networks may be on their way to the same state; start "
                f"afresh in another run directory with another seed (--set seed={cfg.seed + 1}).",
                epoch=epoch, spread=spread if dist.is_main() else math.inf, mode=failed, ratio=ratio)

    started = time.perf_counter()
    start_epoch = epoch  # where this process began (after a resume, the checkpoint's epoch)
    images_seen = 0
    final: dict[str, float] = {}
    method.nets.train()
    with StopRequests() as stop:
        while epoch < total_epochs:
            scale = method.lr_schedule(epoch)
            scale = lr_scale(cfg, epoch) if scale is None else scale
            lrs = optimizer_lrs(method, cfg, scale)
            for name, opt in optimizers.items():
                for group in opt.param_groups:
                    group["lr"] = lrs[name]
            order = epoch_order(len(fit_set), cfg.seed, epoch)
            bar = tqdm(range(batch, steps_per_epoch), desc=f"epoch {epoch + 1}/{total_epochs}", leave=False,
                       disable=not (cfg.progress and dist.is_main()))
            for b in bar:
                # The distributed sampler: every rank computes the same permutation of the epoch and
                # takes its own contiguous slice of each global batch.
                start = b * cfg.batch_size + dist.rank() * local_batch
                idx = order[start:start + local_batch].to(device)
                y = y_all[idx] if y_all is not None else None
                logs = train_step(method, optimizers, params, x_all[idx], y, z_rng, step=step,
                                  nonfinite=cfg.nonfinite, max_grad_norm=cfg.max_grad_norm,
                                  precision=precision)
                step, batch = step + 1, b + 1
                method.after_step(step)
                images_seen += cfg.batch_size
                if cfg.log_every and step % cfg.log_every == 0:  # 0: no step lines, like the other *_every
                    bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k.startswith("loss")})
                    log.write({"step": step, "epoch": epoch, "lr": cfg.lr * scale,  # the method's schedule too
                               "time": time.perf_counter() - started, **logs})
                if dist.any_rank(stop.requested is not None):
                    # Ctrl-C or SIGTERM (on any rank: all stop at the same step, so the checkpoint's
                    # collectives line up): the step in flight has finished, so the state is consistent.
                    checkpoint()
                    bar.close()
                    why = stop.requested or "a signal to another rank"
                    raise KeyboardInterrupt(f"stopped by {why}: saved step {step} to {run_dir}; "
                                            "continue with --resume")
            bar.close()
            batch = 0
            epoch += 1
            # max_minutes: every rank stops after the same epoch, the first to end past the budget.
            out_of_time = cfg.max_minutes > 0 and dist.any_rank(
                time.perf_counter() - started >= cfg.max_minutes * 60)
            last = epoch == total_epochs or out_of_time
            check_collapse()
            if cfg.sample_every and (epoch % cfg.sample_every == 0 or last):
                images(f"epoch{epoch:04d}")
                dist.barrier()
            # Evaluation scores features against labels, so unlabelled data (advrep.sklearn's fit(X))
            # trains without it.
            labelled = train_set.y is not None and test_set.y is not None
            improved = False  # keep_best: this evaluation beat the earlier ones (decided on rank 0)
            if labelled and (last or (cfg.eval_every and epoch % cfg.eval_every == 0)):
                final = _evaluate(method, train_set, test_set, val=best is not None or cfg.hold_out_val,
                                  fit_set=fit_set)
                log.write({"kind": "eval", "step": step, "epoch": epoch,
                           "time": time.perf_counter() - started, **final})
                improved = best is not None and dist.any_rank(
                    dist.is_main() and best.offer(final, epoch=epoch, step=step))
            saved = last or improved or (cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0)
            if saved:
                checkpoint()
            if improved:
                best.save(method, cfg)
                log.write({"kind": "best", "step": step, "epoch": epoch, "metric": best.metric,
                           "value": best.kept["value"] if best.kept else None})
            if not last and dist.any_rank(stop.requested is not None):  # came during evaluation/images
                if not saved:
                    checkpoint()
                why = stop.requested or "a signal to another rank"
                raise KeyboardInterrupt(f"stopped by {why}: saved step {step} to {run_dir}; continue with --resume")
            if out_of_time:
                break
    elapsed = time.perf_counter() - started
    # "epochs" is where training stopped: total_epochs, or fewer when max_minutes ran out first.
    # wall_s covers this process only, i.e. epochs start_epoch..epochs.
    summary = {"kind": "summary", "step": step, "epochs": epoch, "start_epoch": start_epoch, "wall_s": elapsed,
               "stopped_by_max_minutes": epoch < total_epochs,
               "images_per_s": images_seen / elapsed if elapsed > 0 else 0.0, **final}
    if best is not None and best.kept is not None and dist.is_main():
        # where the validation score peaked: load_model(RUN/best) has those weights
        summary.update({f"best_{best.metric}": best.kept["value"], "best_epoch": best.kept["epoch"]})
    log.write(summary)
    if dist.is_main():
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    if created_group:
        dist.shutdown()
    return summary


__all__ = ["GeneratorCollapsed", "TrainingError", "reconstruction_ratio", "train", "train_step", "lr_scale",
           "epoch_order", "format_table"]
