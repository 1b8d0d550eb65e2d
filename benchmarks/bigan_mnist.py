"""BiGAN (or ALI) on permutation-invariant MNIST: train with the paper's recipe, evaluate, and add a
row to BENCHMARKS.md beside the paper's numbers.

    python benchmarks/bigan_mnist.py                      # the full recipe: 200 + 200 epochs
    python benchmarks/bigan_mnist.py --epochs 80 --decay-epochs 80 --set precision=bf16   # ~30 min on 2 cores: 97.19
    python benchmarks/bigan_mnist.py --quick              # 1 + 1 epochs, a smoke check

MNIST is read from --data-dir or $ADVREP_DATA_DIR (here: ../shared/data).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import append_row, commit, machine  # noqa: E402

from advrep.data import load_dataset  # noqa: E402
from advrep.evaluate import evaluate, format_table  # noqa: E402
from advrep.methods import make_config  # noqa: E402
from advrep.train import train  # noqa: E402

# The BiGAN paper's table 1 (1NN on the encoder's penultimate layer, test vs train) and the reference
# code's README log at epoch 400 (10k validation vs 50k train): NNC_e 92.10 on z, NNC_e- 97.35.
PAPER = {"1nn_test.penultimate": 97.39, "1nn_val.z_pre": 92.10, "1nn_val.penultimate": 97.35}


HEADER = "\n".join([
    "| date | commit | method | epochs (const+decay) | 1NN penultimate, test (paper 97.39) "
    "| 1NN penultimate, val (ref 97.35) | 1NN z, val (ref 92.10) | 1NN z, test | probe penultimate, test "
    "| recon ratio | wall | img/s | machine |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="bigan", choices=["bigan", "ali"])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--decay-epochs", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="1 + 1 epochs")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.decay_epochs = 1, 1
    from advrep.config import parse_overrides

    cfg = make_config(args.method, file=str(REPO / "configs" / f"{args.method}_mnist.toml"),
                      overrides=parse_overrides(args.set), epochs=args.epochs, decay_epochs=args.decay_epochs,
                      eval_every=5, sample_every=5, data_dir=args.data_dir)
    run_dir = Path(args.run_dir or REPO / "runs" / f"bench-{args.method}-mnist-{args.epochs}+{args.decay_epochs}")
    train_set = load_dataset("mnist", "train", data_dir=args.data_dir)
    test_set = load_dataset("mnist", "test", data_dir=args.data_dir)
    started = time.perf_counter()
    summary = train(cfg, run_dir, resume=args.resume, train_set=train_set, test_set=test_set)
    train_s = time.perf_counter() - started
    from advrep.checkpoint import load_model

    method = load_model(run_dir)
    t0 = time.perf_counter()
    results = evaluate(method, train_set, test_set, probe=True)
    results["eval_s"] = time.perf_counter() - t0
    results.update(train_wall_s=train_s, images_per_s=summary["images_per_s"])
    (run_dir / "benchmark.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(format_table(results))
    for key, paper in PAPER.items():
        print(f"{key:<24} ours {results.get(key, float('nan')):6.2f}   reference {paper:6.2f}")
    cmd = "python benchmarks/bigan_mnist.py " + " ".join(sys.argv[1:])
    print(f"command: {cmd}")
    if not args.no_write:
        r = results
        row = (f"| {datetime.date.today()} | {commit()} | {args.method} | {args.epochs}+{args.decay_epochs} | "
               f"{r['1nn_test.penultimate']:.2f} | {r['1nn_val.penultimate']:.2f} | {r['1nn_val.z_pre']:.2f} | "
               f"{r['1nn_test.z']:.2f} | {r['probe_test.penultimate']:.2f} | {r['recon_ratio']:.3f} | "
               f"{train_s / 60:.1f} min | {r['images_per_s']:.0f} | {machine()} |")
        append_row(REPO / "BENCHMARKS.md", "## BiGAN / ALI on permutation-invariant MNIST\n\n" + HEADER, row)
        print(f"wrote a row to BENCHMARKS.md ({cmd})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
