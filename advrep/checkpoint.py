"""Checkpoints: config + weights in safetensors, training state in a weights_only torch file.

A run directory looks like::

    RUN/config.json                      the resolved config (also inside every weights file)
    RUN/checkpoints/step-00004680/weights.safetensors
    RUN/checkpoints/step-00004680/state.pt
    RUN/checkpoints/latest               name of the newest complete checkpoint, moved last
    RUN/best/weights.safetensors         with keep_best: the weights where the validation score peaked
    RUN/best/best.json                   a readable copy of their score, epoch and step (the weights'
                                         metadata is the authority)

A checkpoint directory is written under a temporary name and renamed into place, and ``latest`` is
replaced atomically after that, so a crash at any moment leaves the previous checkpoint readable.
Nothing here unpickles arbitrary objects: weights are safetensors and the state loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .config import Config, ConfigError

FORMAT = "advrep-checkpoint-1"
WEIGHTS = "weights.safetensors"
STATE = "state.pt"
BEST = "best"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or belongs to another model."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a synced temporary file and a rename: readers see the old or
    the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(the JSON object in ``path``, "") or (None, why it cannot be read): for the run files a crash or a
    hand edit may have damaged (config.json, summary.json, eval.json, ...), so callers can say so and go on."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(values, dict):
        return None, f"it holds a {type(values).__name__}, not a JSON object"
    return values, ""


def save_weights(path: Path, nets: torch.nn.Module, cfg: Config, *, extra: dict[str, str] | None = None) -> None:
    """All networks' parameters and buffers, with the config (and ``extra``) in the safetensors metadata."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in nets.state_dict().items()}
    meta = {**(extra or {}), "format": FORMAT, "method": cfg.method, "config": cfg.to_json()}
    save_file(tensors, str(path), metadata=meta)


def read_weights(path: str | Path) -> tuple[Config, dict[str, torch.Tensor]]:
    """(config, tensors) from a weights file; errors name the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist.")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"weights file {path} is not a readable safetensors file ({exc}); "
                              "it may be truncated or corrupt: use an earlier checkpoint.") from exc
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"weights file {path} was not written by advrep (metadata format "
                              f"{meta.get('format')!r}); load it with safetensors directly instead.")
    try:
        values = json.loads(meta["config"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"weights file {path} holds an unreadable config in its metadata ({exc}); "
                              "it is corrupt: use an earlier checkpoint.") from exc
    if not isinstance(values, dict):
        raise CheckpointError(f"weights file {path} holds a config of type {type(values).__name__} in its "
                              "metadata, not a mapping; it is corrupt: use an earlier checkpoint.")
    cfg = Config.from_dict(values, source=str(path))
    return cfg, tensors


def load_state_dict_checked(nets: torch.nn.Module, tensors: dict[str, torch.Tensor], *, source: str) -> None:
    """load_state_dict that lists every missing, unexpected and mis-shaped tensor when they differ."""
    own = nets.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(tensors)) if tensors[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        lines = [f"{source} does not match this model:"]
        if missing:
            lines.append(f"  missing from checkpoint ({len(missing)}): {', '.join(missing[:10])}")
        if unexpected:
            lines.append(f"  not in the model ({len(unexpected)}): {', '.join(unexpected[:10])}")
        lines.extend(f"  shape {s}" for s in shapes[:12])
        if len(shapes) > 12:
            lines.append(f"  ... and {len(shapes) - 12} more tensors of another shape")
        lines.append("  Load it with the method and settings it was trained with (see `advrep info`).")
        raise CheckpointError("\n".join(lines))
    nets.load_state_dict(tensors)


class RunLock:
    """An advisory lock on ``RUN/.lock`` held while a run trains. The kernel drops it when the process
    dies (even by kill -9), so a stale lock never blocks a resume."""

    def __init__(self, run_dir: Path, *, enabled: bool = True):
        self.path = Path(run_dir) / ".lock"
        self.enabled = enabled
        self._fh = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        import fcntl

        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            self._fh = None
            raise CheckpointError(f"run directory {self.path.parent} is in use by {holder}; wait for it to "
                                  "finish, or train into another --run-dir.") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()}\n")
        self._fh.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()  # closing releases the lock
            self._fh = None


def checkpoint_root(run_dir: Path) -> Path:
    """RUN/checkpoints."""
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: Path, nets: torch.nn.Module, cfg: Config, state: dict[str, Any], *,
                    keep: int = 2) -> Path:
    """Write weights + state under a temporary name, rename into place, then move ``latest``."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{int(state['step']):08d}"
    final = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"
    for torn in root.glob(".step-*"):  # temp or set-aside copies of a process killed mid-write
        shutil.rmtree(torn, ignore_errors=True)
    tmp.mkdir()
    save_weights(tmp / WEIGHTS, nets, cfg)
    torch.save(state, tmp / STATE)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    stale = None
    if final.exists():  # same step saved twice (e.g. Ctrl-C right after an epoch's checkpoint):
        stale = root / f".{name}.old-{os.getpid()}"  # set the old copy aside, delete it only after
        os.replace(final, stale)
    os.replace(tmp, final)
    _fsync_dir(root)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)
    atomic_write_text(root / "latest", name + "\n")
    _prune(root, keep=keep, current=name)
    return final


def save_best(run_dir: Path, nets: torch.nn.Module, cfg: Config, info: dict[str, Any]) -> Path:
    """Replace RUN/best/weights.safetensors with ``nets``; ``info`` (the metric, its value, epoch and step)
    goes into the file's metadata, so the weights and what they scored are replaced in one rename.
    RUN/best/best.json repeats ``info`` for people and scripts; written after the rename, it can lag the
    weights by one improvement if the process dies in between (read_best reads the metadata)."""
    best = Path(run_dir) / BEST
    best.mkdir(parents=True, exist_ok=True)
    for torn in best.glob(f".{WEIGHTS}.tmp-*"):  # left by a process killed mid-write
        torn.unlink(missing_ok=True)
    tmp = best / f".{WEIGHTS}.tmp-{os.getpid()}"
    save_weights(tmp, nets, cfg, extra={"best": json.dumps(info)})
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, best / WEIGHTS)
    _fsync_dir(best)
    atomic_write_text(best / "best.json", json.dumps(info, indent=2) + "\n")
    return best


def read_best(run_dir: Path) -> dict[str, Any] | None:
    """What RUN/best/weights.safetensors scored ({"metric", "value", "epoch", "step"}), or None when the
    run has kept no best weights yet."""
    path = Path(run_dir) / BEST / WEIGHTS
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {})["best"])
        float(info["value"])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is unreadable or lacks its score ({type(exc).__name__}: {exc}); "
                              f"delete {path.parent} to start the selection afresh (the run's checkpoints "
                              "are not affected).") from exc
    return info


def _prune(root: Path, *, keep: int, current: str) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint directory, or None. Falls back to scanning if ``latest`` is bad."""
    root = checkpoint_root(run_dir)
    pointer = root / "latest"
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if _complete(candidate):
            return candidate
    return _newest_complete(root)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Every complete checkpoint directory of a run, newest first (the one ``latest`` names leads)."""
    done = _completes(checkpoint_root(run_dir))[::-1]
    first = latest_checkpoint(run_dir)
    return [first] + [p for p in done if p != first] if first is not None else done


def resume_point(run_dir: Path, *, required: tuple[str, ...] = ()
                 ) -> tuple[Path, Config, dict[str, torch.Tensor], dict[str, Any], list[str]] | None:
    """The newest checkpoint of a run whose weights and training state both load, as (directory,
    config, tensors, state, notes), or None when the run has no checkpoint.

    A newer checkpoint that cannot be read (a disk error, a copy cut short, a state lacking one of
    ``required``) is passed over for the one before it, and ``notes`` says which and why, so a resume
    goes on from the last good one instead of failing. If none can be read the error names each."""
    notes, reasons = [], []
    candidates = complete_checkpoints(run_dir)
    for ckpt in candidates:
        try:
            cfg, tensors = read_weights(ckpt / WEIGHTS)
            state = load_state(ckpt)
            if not isinstance(state, dict):
                raise CheckpointError(f"training state {ckpt / STATE} is a {type(state).__name__}, not a "
                                      "mapping; it is not an advrep training state.")
            missing = [k for k in required if k not in state]
            if missing:
                raise CheckpointError(f"training state {ckpt / STATE} lacks {', '.join(missing)}; it is not "
                                      "an advrep training state of this version.")
        except CheckpointError as exc:
            reasons.append(str(exc))
            notes.append(f"note: passed over checkpoint {ckpt.name}, which cannot be read ({exc})")
            continue
        if notes:
            notes.append(f"note: resuming from {ckpt.name}, the newest checkpoint that can be read; the "
                         "unreadable ones are left in place for inspection.")
        return ckpt, cfg, tensors, state, notes
    if not candidates:
        return None
    raise CheckpointError(f"no checkpoint of {run_dir} can be resumed from:\n  " + "\n  ".join(reasons)
                          + f"\nstart the run afresh into another --run-dir (or move {checkpoint_root(run_dir)} "
                          "away).")


def prepare_output(path: Path, *, kind: str, flag: str) -> Path:
    """Check an output path before the work that fills it (an evaluation, an inversion), so a bad path
    fails at once rather than after minutes of compute: ``kind`` "file" creates its parent folder and
    refuses a directory; "dir" creates it and refuses a file. Errors name the flag and the fix."""
    path = Path(path)
    folder = path.parent if kind == "file" else path
    if kind == "file" and path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; name a file to write, e.g. {path / 'out.json'}.")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; name a directory to write into.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot create {folder} ({exc}); choose another path.") from exc
    return path


def _complete(ckpt: Path) -> bool:
    return (ckpt / WEIGHTS).is_file() and (ckpt / STATE).is_file()


def _completes(root: Path) -> list[Path]:
    """The step-* directories under ``root`` that hold both weights and state, oldest first."""
    return sorted(p for p in root.glob("step-*") if _complete(p))


def _newest_complete(root: Path) -> Path | None:
    """The newest step-* directory under ``root`` that holds both weights and state, or None."""
    done = _completes(root)
    return done[-1] if done else None


def load_state(ckpt_dir: Path) -> dict[str, Any]:
    """The training state of a checkpoint (step, epoch, optimisers, random states), loaded with
    ``torch.load(weights_only=True)``: plain tensors and containers only, never pickled code."""
    path = Path(ckpt_dir) / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"training state {path} is missing; the checkpoint is incomplete.") from None
    except Exception as exc:  # weights_only refuses pickled code; a truncated file fails to unzip
        raise CheckpointError(f"training state {path} cannot be loaded safely ({type(exc).__name__}: "
                              f"{exc}). It is corrupt or not an advrep file: use an earlier checkpoint.") from exc


def _pointer_target(path: Path) -> Path | None:
    """The checkpoint directory a ``latest`` pointer file names, or None if ``path`` is not one."""
    if path.name != "latest" or not path.is_file():
        return None
    with open(path, "rb") as f:
        head = f.read(64)
    match = re.fullmatch(rb"\s*(step-\d+)\s*", head)
    return path.parent / match.group(1).decode() if match else None


def resolve_weights(path: str | Path) -> Path:
    """A run directory, a checkpoint directory, its ``latest`` pointer or a weights file -> the weights
    file to load."""
    path = Path(path)
    pointer = _pointer_target(path)
    if pointer is not None:  # RUN/checkpoints/latest, the text file that names the newest checkpoint
        ckpt = pointer if _complete(pointer) else _newest_complete(path.parent)
        if ckpt is None:
            raise CheckpointError(f"{path} points at {pointer.name}, and {path.parent} holds no complete "
                                  "checkpoint; pass a step-* directory or a weights file.")
        return ckpt / WEIGHTS
    if path.is_file():
        return path
    if (path / WEIGHTS).is_file():
        return path / WEIGHTS
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise CheckpointError(f"no checkpoint found in {path}: expected {checkpoint_root(path)}/step-*/"
                              f"{WEIGHTS}. Train first with `advrep train`, or pass a weights file.")
    return ckpt / WEIGHTS


def load_model(path: str | Path, *, device: str | torch.device = "cpu"):
    """Rebuild a trained method from a run directory, checkpoint directory or weights file alone.

    The method comes back with its networks on ``device`` in eval mode. Example::

        model = load_model("runs/digits")           # the newest checkpoint of the run
        model.cfg.method, model.image_shape         # ("bigan", (1, 8, 8))
        z = model.encode(x)                         # x [B, 1, 8, 8] -> [B, latent_dim]
    """
    from .methods import build_method

    weights = resolve_weights(path)
    cfg, tensors = read_weights(weights)
    image_shape = tuple(cfg.image_shape)
    if len(image_shape) != 3:
        raise CheckpointError(f"{weights} lacks the image shape in its config; it cannot be rebuilt.")
    method = build_method(cfg, image_shape)
    load_state_dict_checked(method.nets, tensors, source=f"weights file {weights}")
    method.nets.to(device).eval()
    return method
