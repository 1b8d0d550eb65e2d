"""Adversarial autoencoders on MNIST against the paper's numbers (Makhzani et al. 2016): one sub-command
per row, each training with the appendix's recipe and adding a row to BENCHMARKS.md.

    python benchmarks/aae_mnist.py semi --labels 100 --seeds 0 1 2 --epochs 30   # table 2: 1.90 (+-0.10)%
    python benchmarks/aae_mnist.py semi --labels 1000 --seeds 0 1 2 --epochs 30  # table 2: 1.60%
    python benchmarks/aae_mnist.py semi --labels 0 --epochs 30                   # all labels, table 2: 0.85%
    python benchmarks/aae_mnist.py cluster --clusters 16 --epochs 5              # table 3: 9.55%
    python benchmarks/aae_mnist.py cluster --clusters 30 --epochs 5              # table 3: 4.10%
    python benchmarks/aae_mnist.py parzen --epochs 50                            # table 1: 340 (+-2) nats
    python benchmarks/aae_mnist.py ROW --quick    # smoke: 2000 training images, 1 epoch, no BENCHMARKS.md row

The paper trains for 5000 (semi), 1500 (cluster) epochs; ``--epochs`` sets what fits the machine, and
every row records the epochs it ran beside the paper's. Each run's directory keeps its checkpoints, so
``--resume`` continues a stopped run, and a longer budget starts from a shorter one: raise --epochs and
pass --resume, and the longest shorter run of the same row and seed is copied into the new run's directory
and continued from its last checkpoint (its training time counts toward the row's wall time).
MNIST is read from --data-dir or $ADVREP_DATA_DIR.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import append_row, commit, machine  # noqa: E402

from advrep.config import parse_overrides  # noqa: E402
from advrep.data import load_dataset  # noqa: E402
from advrep.eval.clustering import mean_std  # noqa: E402
from advrep.evaluate import evaluate, format_table, parzen_metrics  # noqa: E402
from advrep.latent_plots import method_figures  # noqa: E402
from advrep.methods import make_config  # noqa: E402
from advrep.train import train  # noqa: E402

# (what the row measures, the paper's number as printed, the paper's epochs, lower is better)
PAPER = {
    "semi-100": ("semi-supervised test error %, 100 labels", "1.90 (+-0.10)", 5000),
    "semi-1000": ("semi-supervised test error %, 1000 labels", "1.60", 5000),
    "semi-all": ("semi-supervised test error %, all labels", "0.85", 5000),
    "cluster-16": ("clustering test error %, 16 clusters", "9.55", 1500),
    "cluster-30": ("clustering test error %, 30 clusters", "4.10", 1500),
    "parzen": ("Parzen log-likelihood of the test set, nats", "340 (+-2)", None),
}

HEADER = ("| date | commit | row | paper | ours | epochs (paper) | seeds | train wall per run | s / epoch | "
          "machine | command |\n|---|---|---|---|---|---|---|---|---|---|---|")
TITLE = "## Adversarial autoencoders on MNIST (Makhzani et al. 2016)"


def seconds_per_epoch(run_dir: Path, steps_per_epoch: int) -> float:
    """Training time per epoch from metrics.jsonl's step lines, so evaluations are not counted. Each
    process restarts the clock, so a resumed or extended run is read as segments (a line whose time
    is below the previous one starts a new segment) and their rates are pooled."""
    seconds = steps = 0.0
    first = prev = None
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "kind" in rec or "time" not in rec:
            continue
        if prev is not None and rec["time"] < prev["time"]:  # a new process: close the segment
            seconds, steps = seconds + prev["time"] - first["time"], steps + prev["step"] - first["step"]
            first = None
        first, prev = first or rec, rec
    if prev is not None:
        seconds, steps = seconds + prev["time"] - first["time"], steps + prev["step"] - first["step"]
    return seconds / steps * steps_per_epoch if steps > 0 else float("nan")


def shorter_run(run_root: Path, key: str, epochs: int, seed: int) -> Path | None:
    """The longest finished-or-stopped run of the same row and seed with fewer epochs, which a longer
    budget can continue from (``--resume``); None if there is none."""
    found = []
    for d in run_root.glob(f"{key}-e*-s{seed}"):
        n = d.name[len(key) + 2:-len(f"-s{seed}")]
        if n.isdigit() and int(n) < epochs and (d / "checkpoints").is_dir():
            found.append((int(n), d))
    return max(found)[1] if found else None


def row_key(args) -> str:
    if args.row == "semi":
        return f"semi-{args.labels if args.labels > 0 else 'all'}"
    if args.row == "cluster":
        return f"cluster-{args.clusters}"
    return "parzen"


def settings_for(args) -> tuple[str, dict]:
    """(method, settings) of a row: the method's defaults are the appendix's recipe."""
    if args.row == "semi":
        return "aae_semi", {"aae_labels": args.labels}
    if args.row == "cluster":
        return "aae_cluster", {"aae_clusters": args.clusters}
    return "aae", {}  # 8-D Gaussian code with std 5 (appendix A.1)


def run_one(args, seed: int, train_set, test_set) -> dict:
    method_name, settings = settings_for(args)
    key = row_key(args)
    cfg = make_config(method_name, file=None, overrides=parse_overrides(args.set),
                      **settings, epochs=args.epochs, seed=seed, data="mnist", data_dir=args.data_dir,
                      eval_every=args.eval_every, sample_every=max(1, args.epochs // 5), device=args.device,
                      progress=not args.no_progress,
                      log_every=max(1, min(50, len(train_set) // 400)))  # step lines even in --quick
    tag = f"{key}-e{args.epochs}-s{seed}" + ("-quick" if args.quick else "")
    run_dir = Path(args.run_root) / tag
    if args.resume and not args.quick and not (run_dir / "checkpoints").is_dir():
        source = shorter_run(Path(args.run_root), key, args.epochs, seed)
        if source is not None:  # a longer budget continues the shorter run from its last checkpoint
            print(f"continuing {source} to {args.epochs} epochs in {run_dir}", flush=True)
            shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns(".lock"))
    # Training time already spent: a finished run's benchmark.json (or the shorter run's, copied with it).
    # An interrupted continuation loses the time of its interrupted part, so the row undercounts it.
    earlier = run_dir / "benchmark.json"
    earlier_s = json.loads(earlier.read_text()).get("train_s", 0.0) if args.resume and earlier.is_file() else 0.0
    resume = args.resume and (run_dir / "checkpoints").is_dir()
    started = time.perf_counter()
    summary = train(cfg, run_dir, resume=resume, train_set=train_set, test_set=test_set)
    train_s = earlier_s + time.perf_counter() - started
    from advrep.checkpoint import load_model

    method = load_model(run_dir, device=args.device if args.device != "auto" else "cpu")
    t0 = time.perf_counter()
    results = evaluate(method, train_set, test_set, probe=False, protocols=("test",))
    if args.row == "parzen":
        results.update(parzen_metrics(method, train_set, test_set, n_samples=1000 if args.quick else 10000))
    results["eval_s"] = time.perf_counter() - t0
    results["train_s"] = train_s
    results["s_per_epoch"] = seconds_per_epoch(run_dir, len(train_set) // cfg.batch_size)
    results["epochs_run"] = summary["epochs"]  # fewer than --epochs when --set max_minutes=M ran out
    method_figures(method, test_set, run_dir / "figures")
    (run_dir / "benchmark.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(format_table(results))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("row", choices=["semi", "cluster", "parzen"])
    ap.add_argument("--labels", type=int, default=100, help="semi: labelled examples (0 = all)")
    ap.add_argument("--clusters", type=int, default=16, help="cluster: K")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs per run (default: about an hour on two cores; the paper's count is in "
                         "the table)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--quick", action="store_true", help="2000 training images, 1 epoch, no row written")
    ap.add_argument("--eval-every", type=int, default=10,
                    help="epochs between evaluations logged to metrics.jsonl")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--run-root", default=str(REPO / "runs" / "aae-mnist"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resume", action="store_true", help="continue runs whose directories hold checkpoints")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--benchmarks-file", default=str(REPO / "BENCHMARKS.md"),
                    help="where the row goes (a separate file per job when jobs run side by side)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    # Defaults measured to fit about an hour per run on 2 shared cores (see BENCHMARKS.md for s / epoch).
    default_epochs = {"semi": 30, "cluster": 5, "parzen": 50}
    if args.quick:
        args.epochs = 1
    elif args.epochs is None:
        args.epochs = default_epochs[args.row]
    train_set = load_dataset("mnist", "train", data_dir=args.data_dir)
    test_set = load_dataset("mnist", "test", data_dir=args.data_dir)
    if args.quick:
        keep = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))[:2000]
        train_set, test_set = train_set.subset(keep), test_set.subset(slice(0, 2000))
    key = row_key(args)
    what, paper, paper_epochs = PAPER[key]
    metric = {"semi": "semi_error", "cluster": "cluster_error", "parzen": "parzen_ll"}[args.row]
    runs = [run_one(args, seed, train_set, test_set) for seed in args.seeds]
    values = [r[metric] for r in runs]
    mean, std = mean_std(values)
    ours = f"{mean:.2f}" + (f" (+-{std:.2f})" if len(values) > 1 else "")
    if args.row == "parzen":
        ours += f" (se {runs[0]['parzen_ll_se']:.1f}, sigma {runs[0]['parzen_sigma']:.3f})"
    train_s = sum(r["train_s"] for r in runs) / len(runs)
    per_epoch = sum(r["s_per_epoch"] for r in runs) / len(runs)
    epochs = sorted({r["epochs_run"] for r in runs})  # one value unless max_minutes stopped seeds apart
    epochs_run = "-".join(map(str, epochs[::max(1, len(epochs) - 1)]))
    cmd = "python benchmarks/aae_mnist.py " + " ".join(sys.argv[1:])
    print(f"{what}: ours {ours} over seeds {args.seeds} after {epochs_run} epochs; paper {paper} "
          f"after {paper_epochs or 'unstated'} epochs")
    print(f"train wall per run {train_s / 60:.1f} min, {per_epoch:.1f} s per epoch of "
          f"{len(train_set)} images")
    print(f"command: {cmd}")
    if not (args.no_write or args.quick):
        seeds = " ".join(map(str, args.seeds))
        row = (f"| {datetime.date.today()} | {commit()} | {what} | {paper} | {ours} | {epochs_run} "
               f"({paper_epochs or 'unstated'}) | {seeds} | {train_s / 60:.1f} min | "
               f"{per_epoch:.0f} | {machine()} | `{cmd}` |")
        append_row(Path(args.benchmarks_file), f"{TITLE}\n\n{HEADER}", row)
        print(f"wrote a row to {args.benchmarks_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
