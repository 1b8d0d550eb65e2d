"""``advrep invert`` and ``advrep compare``: thin wrappers over ``invert_method`` / ``compare_generators``.

They live here, not in advrep/cli.py, so the main CLI only registers them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .invert import INITS, LOSSES, OPTIMIZERS, SCHEDULES, SUPPORTS


def _add_common(p: argparse.ArgumentParser) -> None:
    from ..cli import _add_run_data

    _add_run_data(p, "dataset to invert (default: the one the run was trained on, named in its config)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="held-out images by default")
    p.add_argument("-n", type=int, default=None, help="invert only the first N images (default: all)")
    p.add_argument("--steps", type=int, default=5000, help="updates of z per batch (paper: 5000)")
    p.add_argument("--lr", type=float, default=0.01, help="paper: 0.01")
    p.add_argument("--loss", default="mse", choices=sorted(LOSSES))
    p.add_argument("--optimizer", default="rmsprop", choices=sorted(OPTIMIZERS), help="paper: rmsprop")
    p.add_argument("--schedule", default="constant", choices=sorted(SCHEDULES), help="learning-rate schedule")
    p.add_argument("--start", default="prior", choices=INITS,
                   help="z's start: a prior sample (paper), the prior's mean, or the run's encoder E(x)")
    p.add_argument("--support", default="clip", choices=SUPPORTS, help="keeping z in a uniform prior's box")
    p.add_argument("--prior-weight", type=float, default=0.0, help="alpha: loss - alpha * mean log p(z)")
    p.add_argument("--moment-weight", type=float, default=0.0, help="batch mean/std regulariser on z")
    p.add_argument("--encoder-weight", type=float, default=0.0, help="weight of |z - E(G(z))|^2")
    p.add_argument("--restarts", type=int, default=1, help="starts per sample; the best is kept")
    p.add_argument("--tol", type=float, default=None, help="stop a batch once every loss is <= TOL")
    p.add_argument("--batch-size", type=int, default=500, help="paper: 500; results do not depend on it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"steps": args.steps, "lr": args.lr, "loss": args.loss, "optimizer": args.optimizer,
            "schedule": args.schedule, "init": args.start, "support": args.support,
            "prior_weight": args.prior_weight, "moment_weight": args.moment_weight,
            "encoder_weight": args.encoder_weight, "restarts": args.restarts, "tol": args.tol,
            "batch_size": args.batch_size, "seed": args.seed}


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    return name


def _images(method, args: argparse.Namespace, run):
    """(x [N, C, H, W], labels or None, dataset name), checked against the run's image shape."""
    from ..config import ConfigError
    from ..data import load_run_dataset

    name = args.data or method.cfg.data
    data = load_run_dataset(method.cfg, args.split, data=args.data, data_dir=args.data_dir, run=run)
    n = len(data.x) if args.n is None else args.n
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}.")
    return data.x[:n], (data.y[:n] if data.y is not None else None), name


def _wrap(fn):
    """ValueErrors from bad settings reach the user as a one-line error (exit 2), not a traceback."""
    from ..config import ConfigError

    try:
        return fn()
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def cmd_invert(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model, prepare_output
    from .models import invert_method, write_inversion

    method = load_model(args.run, device=_device(args.device))
    x, y, name = _images(method, args, args.run)
    run = Path(args.run)
    folder = Path(os.fspath(name)).name.replace(":", "_")  # a --data path names a folder inside RUN/inversion
    default = (run if run.is_dir() else Path(".")) / "inversion" / f"{folder}-{args.split}"
    out = prepare_output(Path(args.out) if args.out else default, kind="dir", flag="--out")
    settings = _settings(args)
    print(f"inverting {len(x)} {name}/{args.split} images through {args.run} ({method.cfg.method}, "
          f"{settings['steps']} steps, start={settings['init']})", flush=True)
    result = _wrap(lambda: invert_method(method, x, **settings))
    record = {**settings, "run": str(args.run), "data": name, "split": args.split}
    summary = write_inversion(result, x, out, labels=y, settings=record)
    print(f"per-sample MSE {summary['mse_mean']:.5f} +- {summary['mse_std']:.5f} over {summary['n']} images "
          f"({summary['seconds']:.1f} s, {summary['steps_run']} steps)")
    print(f"wrote z.npy, errors.csv, summary.json, pairs.png, loss.png to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..checkpoint import atomic_write_text, load_model, prepare_output
    from ..config import ConfigError
    from .models import compare_generators, format_ranking

    out = prepare_output(Path(args.out), kind="file", flag="--out")
    methods = {str(run): load_model(run, device=_device(args.device)) for run in args.runs}
    if len(methods) != len(args.runs):
        raise ConfigError("a run is listed twice; list each run once.")
    for run, method in methods.items():
        if not method.has_generator:
            raise ConfigError(f"run {run} ({method.cfg.method}) has no generator to compare; leave it out.")
    if args.start == "encoder" and not all(m.has_encoder for m in methods.values()):
        raise ConfigError("--start encoder needs every run to have an encoder; use --start prior to compare "
                          "generators with the same procedure.")
    x, _, name = _images(methods[str(args.runs[0])], args, args.runs[0])
    for run, method in methods.items():
        if tuple(method.image_shape) != tuple(x.shape[1:]):
            raise ConfigError(f"run {run} generates images of shape {tuple(method.image_shape)}, not "
                              f"{tuple(x.shape[1:])} like {name!r}; compare generators of the same data.")
    settings = _settings(args)
    rows = _wrap(lambda: compare_generators(methods, x, **settings))
    print(format_ranking(rows))
    record = {"data": name, "split": args.split, "n": len(x), "settings": settings, "ranking": rows}
    atomic_write_text(out, json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


def add_inversion_commands(sub) -> None:
    """Register ``invert`` and ``compare`` on the main parser's subcommands."""
    p = sub.add_parser("invert", help="find z with G(z) ~ x for held-out images (Creswell & Bharath)")
    p.add_argument("run", help="run directory, checkpoint directory or weights file")
    _add_common(p)
    p.add_argument("--out", default=None, help="output folder (default RUN/inversion/DATA-SPLIT)")
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("compare", help="rank generators by how well they reconstruct held-out images")
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more runs with generators")
    _add_common(p)
    p.add_argument("--out", default="compare.json", help="JSON file for the ranking (default compare.json)")
    p.set_defaults(func=cmd_compare)
