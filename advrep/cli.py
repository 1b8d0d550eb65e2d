"""advrep's command line: thin subcommands, each one call into the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="directory holding datasets (default: $ADVREP_DATA_DIR, else ~/.cache/advrep)")


RUN_DATA_HELP = "dataset to use (default: the one the run was trained on, named in its config)"
RUN_DATA_DIR_HELP = "directory holding built-in datasets (default: the run's, else $ADVREP_DATA_DIR)"


def _add_run_data(p: argparse.ArgumentParser, data_help: str = RUN_DATA_HELP) -> None:
    """--data and --data-dir of a command that uses a trained run's dataset (advrep.data.load_run_dataset)."""
    p.add_argument("--data", default=None, help=data_help)
    p.add_argument("--data-dir", default=None, help=RUN_DATA_DIR_HELP)


def cmd_train(args: argparse.Namespace) -> int:
    from .config import parse_overrides
    from .distributed import is_main
    from .evaluate import format_table
    from .methods import make_config
    from .train import train

    overrides = parse_overrides(args.set or [])
    if args.data is not None:
        overrides["data"] = args.data
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.device is not None:
        overrides["device"] = args.device
    if args.tensorboard:
        overrides["tensorboard"] = "true"
    if args.precision is not None:
        overrides["precision"] = args.precision
    cfg = make_config(args.method, file=args.config, overrides=overrides)
    run_dir = Path(args.run_dir or Path("runs") / f"{cfg.method}-{cfg.data.replace('/', '_')}")
    saved = run_dir / "config.json"
    if args.resume and saved.is_file():
        # Resume continues the run as it was configured: start from its saved settings and apply
        # only what this command line names again (a config file, --set, --data, ...).
        from .config import ConfigError, read_config_file

        cfg = _saved_config(run_dir)
        cfg = cfg.updated(read_config_file(args.config) if args.config else {}, source=str(args.config))
        cfg = cfg.updated(overrides, source="--set")
        if cfg.method != args.method:
            raise ConfigError(f"--resume: {run_dir} is a {cfg.method!r} run, not {args.method!r}; "
                              f"use `advrep train {cfg.method} --resume --run-dir {run_dir}`.")
    main_rank = is_main()  # under torchrun only rank 0 talks
    if main_rank:
        print(f"training {cfg.method} on {cfg.data} into {run_dir}", flush=True)
    summary = train(cfg, run_dir, resume=args.resume)
    if main_rank:
        print(format_table({k: v for k, v in summary.items() if k != "kind"}))
        print(f"run directory: {run_dir}  (next: advrep eval {run_dir})")
    return 0


def _saved_config(run_dir: Path):
    """The settings a run was trained with, for --resume: RUN/config.json, or, when that file is
    unreadable (cut short by a crash, edited by hand), the config inside the newest readable checkpoint,
    which holds the same settings. The file is rewritten when training starts."""
    from .checkpoint import read_json_object, resume_point
    from .config import Config, ConfigError

    saved = run_dir / "config.json"
    values, why = read_json_object(saved)
    if values is not None:
        return Config.from_dict(values, source=str(saved))
    point = resume_point(run_dir)
    if point is None:
        raise ConfigError(f"--resume: {saved} cannot be read ({why}) and {run_dir} has no checkpoint to take "
                          "the settings from; delete it and train without --resume.")
    print(f"note: {saved} cannot be read ({why}); took the run's settings from checkpoint {point[0].name}.",
          flush=True)
    return point[1]


def _output_file(args: argparse.Namespace, default_name: str) -> Path | None:
    """Where a command writes its JSON: --out, else RUN/<default_name> when RUN is a directory; checked
    (and its folder created) before the work, so a bad path fails at once."""
    from .checkpoint import prepare_output

    if args.out:
        return prepare_output(Path(args.out), kind="file", flag="--out")
    return Path(args.run) / default_name if Path(args.run).is_dir() else None


def cmd_eval(args: argparse.Namespace) -> int:
    from .checkpoint import atomic_write_text, load_model
    from .data import DataError, load_run_dataset
    from .evaluate import evaluate, format_table

    method = load_model(args.run)
    out = _output_file(args, "eval.json")
    cfg = method.cfg
    where = dict(data=args.data, data_dir=args.data_dir, run=args.run)
    train_set = load_run_dataset(cfg, "train", **where)
    test_set = load_run_dataset(cfg, "test", **where)
    try:
        results = evaluate(method, train_set, test_set, probe=not args.no_probe, parzen=args.parzen)
    except ValueError as exc:  # unlabelled data, or too few images for the run's hold_out_val
        raise DataError(f"cannot evaluate {args.run} on {args.data or cfg.data!r}: {exc}") from None
    print(format_table(results))
    if out is not None:
        atomic_write_text(out, json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out}")
    figures = args.figures or (Path(args.run) / "figures" if Path(args.run).is_dir() else None)
    if figures is not None and not args.no_figures:
        from .latent_plots import method_figures

        for path in method_figures(method, test_set, figures):
            print(f"wrote {path}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import CheckpointError, load_model
    from .config import ConfigError
    from .data import DataError
    from .images import save_grid

    method = load_model(args.run)
    if not method.has_generator:
        raise SystemExit(f"method {method.cfg.method!r} has no generator to sample from.")
    if args.n < 1:
        raise ConfigError(f"-n is {args.n}; give the number of samples to draw, at least 1.")
    rng = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        x = method.generate(method.sample_prior(args.n, rng))
    out = Path(args.out or (Path(args.run) / "samples.png" if Path(args.run).is_dir() else "samples.png"))
    save_grid(x, out)
    print(f"wrote {args.n} samples to {out}")
    if args.interpolate or args.neighbours:
        from .explore import explore_run

        try:
            paths = explore_run(method, out.parent, interpolate=args.interpolate, neighbours=args.neighbours,
                                data=args.data, data_dir=args.data_dir, pairs=args.pairs, steps=args.steps,
                                k=args.k, path=args.path, seed=args.seed, run=args.run)
        except (ConfigError, DataError, CheckpointError):
            raise
        except ValueError as exc:  # explore's checks of --steps, -k, --interpolate on a run without E
            raise ConfigError(str(exc)) from exc
        for path in paths:
            print(f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import ReportError, write_report

    try:
        out = write_report(args.run, args.out, model=not args.no_model, data=args.data,
                           data_dir=args.data_dir, seed=args.seed)
    except ReportError as exc:
        print(f"advrep report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .checkpoint import latest_checkpoint, read_json_object, read_weights, resolve_weights

    weights = resolve_weights(args.run)
    cfg, tensors = read_weights(weights)
    n_params = sum(t.numel() for k, t in tensors.items() if not k.endswith(("running_mean", "running_var",
                                                                            "num_batches_tracked")))
    print(f"weights     {weights}")
    print(f"method      {cfg.method}")
    print(f"data        {cfg.data} {tuple(cfg.image_shape)}")
    print(f"parameters  {n_params:,}")
    run = Path(args.run)
    if run.is_dir() and latest_checkpoint(run) is not None:
        print(f"checkpoint  {latest_checkpoint(run).name}")
    for path in (run / "summary.json", run / "eval.json"):
        if run.is_dir() and path.is_file():
            values, why = read_json_object(path)
            if values is None:
                print(f"{path.name}: cannot be read ({why}); delete it, and re-run `advrep eval {run}` for "
                      "eval.json (summary.json's numbers are also the last 'summary' line of metrics.jsonl).")
                continue
            print(f"{path.name}:")
            for key, value in sorted(values.items()):
                print(f"  {key:<28} {value}")
    print("config:")
    for key, value in sorted(cfg.to_dict().items()):
        print(f"  {key:<20} {value}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS

    width = max(map(len, METHODS))
    for name, cls in sorted(METHODS.items()):
        print(f"{name:<{width}}  {cls.description}")
    return 0


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .eval import save_classifier, train_classifier

    train_set = load_dataset(args.data, "train", data_dir=args.data_dir, size=args.image_size)
    test_set = load_dataset(args.data, "test", data_dir=args.data_dir, size=args.image_size)
    out = Path(args.out or Path("runs") / "classifiers" / args.data.replace("/", "_").replace(":", "_"))
    print(f"training a domain classifier on {train_set!r} for {args.epochs} epochs", flush=True)
    model, info = train_classifier(train_set.x, train_set.y, test_x=test_set.x, test_y=test_set.y,
                                   epochs=args.epochs, seed=args.seed)
    digest = save_classifier(model, out, {"data": args.data, **info})
    print(f"test accuracy {info['test_accuracy']:.2f}%  sha256 {digest}\nwrote {out}  "
          f"(next: advrep fid RUN --classifier {out})")
    return 0


def cmd_fid(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import atomic_write_text, load_model
    from .data import load_run_dataset
    from .eval import ClassifierError, domain_fid, load_classifier, sample_batches
    from .evaluate import format_table

    method = load_model(args.run)
    if not method.has_generator:
        raise SystemExit(f"method {method.cfg.method!r} has no generator to score.")
    out = _output_file(args, "fid.json")
    classifier, info = load_classifier(args.classifier)
    cfg = method.cfg
    real = load_run_dataset(cfg, args.split, data=args.data, data_dir=args.data_dir, run=args.run)
    if list(real.image_shape) != list(info["image_shape"]):
        raise ClassifierError(f"classifier {args.classifier} was trained on images {info['image_shape']} but "
                              f"{args.data or cfg.data} has {list(real.image_shape)}; train one on this data.")
    rng = torch.Generator().manual_seed(args.seed)
    samples = sample_batches(lambda k: method.generate(method.sample_prior(k, rng)), args.n)
    results = domain_fid(classifier.features, samples, real.x, classifier_sha256=info["sha256"])
    print(format_table(results))
    if out is not None:
        atomic_write_text(out, json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .methods import METHODS

    parser = argparse.ArgumentParser(prog="advrep", description=__doc__)
    parser.add_argument("--version", action="version", version=f"advrep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a method")
    p.add_argument("method", choices=sorted(METHODS), metavar="METHOD",
                   help=f"one of: {', '.join(sorted(METHODS))}")
    p.add_argument("--data", default=None, help="mnist, fashion-mnist, kmnist, digits, a .npz/.npy file or a folder")
    _add_data_dir(p)
    p.add_argument("--config", default=None, help="TOML or JSON file of settings")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting (repeatable)")
    p.add_argument("--run-dir", default=None, help="where to write (default runs/METHOD-DATA)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard scalars to RUN/tensorboard (needs `pip install tensorboard`)")
    p.add_argument("--device", default=None,
                   help="auto, cpu, cuda or mps (under torchrun each rank takes its local GPU)")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"],
                   help="fp32 (default); bf16 autocast (CPU, CUDA); fp16 autocast with loss scaling (CUDA)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="1NN, linear probe and reconstruction metrics of a trained run")
    p.add_argument("run", help="run directory, checkpoint directory or weights file")
    _add_run_data(p)
    p.add_argument("--no-probe", action="store_true", help="skip the logistic-regression probe")
    p.add_argument("--out", default=None, help="JSON file to write (default RUN/eval.json)")
    p.add_argument("--parzen", action="store_true",
                   help="also the Parzen-window log-likelihood of the test set under 10k samples "
                        "(window width chosen on validation)")
    p.add_argument("--figures", default=None,
                   help="folder for PNGs: samples, 2-D code scatter, the method's own grids "
                        "(default RUN/figures)")
    p.add_argument("--no-figures", action="store_true", help="write no PNGs")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sample", help="a PNG grid of samples G(z)")
    p.add_argument("run")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--interpolate", action="store_true",
                   help="also interpolations.png: decoded paths between the codes of test-image pairs")
    p.add_argument("--neighbours", action="store_true",
                   help="also neighbours.png: samples beside their nearest training images (pixel space)")
    p.add_argument("--pairs", type=int, default=8, help="--interpolate: number of image pairs (rows)")
    p.add_argument("--steps", type=int, default=8,
                   help="--interpolate: decoded points per path, ends included")
    p.add_argument("--path", default="linear", choices=["linear", "slerp"],
                   help="--interpolate: straight line or great circle (slerp, for Gaussian priors)")
    p.add_argument("-k", type=int, default=5, help="--neighbours: training images shown per sample")
    _add_run_data(p, "--interpolate, --neighbours: dataset to use (default: the run's, named in its config)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("report", help="one self-contained HTML page: config, numbers, curves, grids")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default=None, help="HTML file to write (default RUN/report.html)")
    _add_run_data(p)
    p.add_argument("--no-model", action="store_true",
                   help="leave out the figures drawn from the checkpoint (interpolations, neighbours, "
                        "code scatter)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("info", help="what a run or weights file holds")
    p.add_argument("run")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("methods", help="list the methods")
    p.set_defaults(func=cmd_methods)

    from .inversion.cli import add_inversion_commands

    add_inversion_commands(sub)  # invert, compare

    p = sub.add_parser("train-classifier",
                       help="train the small CNN whose features score samples (domain FID)")
    p.add_argument("--data", required=True, help="dataset with labels and a test split, e.g. mnist")
    _add_data_dir(p)
    p.add_argument("--image-size", type=int, default=None, help="image folders: resize/crop to this size")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="directory to write (default runs/classifiers/DATA)")
    p.set_defaults(func=cmd_train_classifier)

    p = sub.add_parser("fid",
                       help="domain FID and KID of a run's samples, in a trained classifier's features")
    p.add_argument("run", help="run directory, checkpoint directory or weights file")
    p.add_argument("--classifier", required=True, help="directory written by advrep train-classifier")
    _add_run_data(p)
    p.add_argument("-n", type=int, default=10000, help="number of samples (default 10000)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="real images to compare with")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file to write (default RUN/fid.json)")
    p.set_defaults(func=cmd_fid)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .distributed import exit_worker
    from .eval import ClassifierError
    from .train import TrainingError

    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except (ConfigError, DataError, CheckpointError, TrainingError, ClassifierError) as exc:
        print(f"advrep {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt as exc:
        print(f"\nadvrep {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        code = 130
    exit_worker(code)  # under torchrun: end here, so gloo's teardown cannot abort a finished rank
    return code


if __name__ == "__main__":
    sys.exit(main())
