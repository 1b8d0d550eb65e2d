"""Raw-pixel 1NN on MNIST's validation protocol for several choices of the 10k held-out images: how much
the choice alone moves the score that the BiGAN table's held-out column compares with the paper.

    python benchmarks/val_split_floor.py --data-dir ../shared/data            # last, bigan_code, seeds 0-4
    python benchmarks/val_split_floor.py --data-dir ../shared/data --seeds 0-19 --no-write

Each split holds out 10k of the 60k training images and queries them against the other 50k (Euclidean
1NN on raw pixels). "last" and "bigan_code" are advrep's two ``val_split`` settings; "RandomState(s)" is
the reference code's recipe with another seed (``RandomState(s).permutation(60000)``, last 10k held
out). Appends one row to BENCHMARKS.md unless --no-write.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import append_row, commit, machine, seed_list  # noqa: E402

from advrep.data import load_dataset  # noqa: E402
from advrep.eval import knn_accuracy, train_val_split  # noqa: E402

HEADER = """### Raw-pixel 1NN on the validation protocol, by choice of the held-out 10k (benchmarks/val_split_floor.py)

10k of MNIST's 60k training images queried against the other 50k, raw pixels, Euclidean 1NN. "last" and
"bigan_code" (the BiGAN reference code's own 10k) are advrep's `val_split` settings; the seeded draws
show how far the choice of 10k alone moves the floor.

| date | commit | last | bigan_code | seeded draws: seeds, mean ± sd (min-max) | wall | machine |
|---|---|---|---|---|---|---|"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="where MNIST is (or $ADVREP_DATA_DIR)")
    ap.add_argument("--seeds", default="0-4", help="RandomState seeds, e.g. 0-4 or 0,1,43")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    started = time.perf_counter()
    train = load_dataset("mnist", "train", data_dir=args.data_dir)
    x, y = train.flat(), train.y

    def score(ref, val) -> float:
        return knn_accuracy(x[ref], y[ref], x[val], y[val], k=1)

    named = {order: score(*train_val_split(len(train), order=order)) for order in ("last", "bigan_code")}
    for order, acc in named.items():
        print(f"{order:>18}: {acc:.2f}", flush=True)
    drawn = []
    for s in seed_list(args.seeds):
        perm = torch.from_numpy(np.random.RandomState(s).permutation(len(train)))
        drawn.append(score(perm[:-10000], perm[-10000:]))
        print(f"{f'RandomState({s})':>18}: {drawn[-1]:.2f}", flush=True)
    wall = time.perf_counter() - started
    sd = statistics.stdev(drawn) if len(drawn) > 1 else 0.0
    spread = (f"{len(drawn)} seeds ({args.seeds}), {statistics.mean(drawn):.2f} ± {sd:.2f} "
              f"({min(drawn):.2f}-{max(drawn):.2f})")
    print(f"seeded draws: {spread}; {wall:.0f} s")
    if not args.no_write:
        append_row(REPO / "BENCHMARKS.md", HEADER,
                   f"| {datetime.date.today()} | {commit()} | {named['last']:.2f} | {named['bigan_code']:.2f} | "
                   f"{spread} | {wall:.0f} s | {machine()} |")
        print("wrote a row into BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
