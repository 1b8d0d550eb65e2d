"""How much a run's 1NN score moves with the draw of batches that batch norm's statistics are averaged
over before an evaluation (the run's ``bn_batches``, drawn with a seed that is 0 in every evaluation).
The same weights are scored once per seed; the spread is the evaluation's own noise, apart from training.

    python benchmarks/bn_seed_spread.py runs/table-bigancode-200+200/bigan --seeds 0-3 --data-dir ../shared/data

Prints 1NN on the run's penultimate features (test vs train and, for a run with hold_out_val, the held-out
validation split) for each seed, then their mean and standard deviation. Writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import seed_list  # noqa: E402

from advrep.checkpoint import load_model  # noqa: E402
from advrep.data import load_run_dataset  # noqa: E402
from advrep.evaluate import evaluate  # noqa: E402


def spread(method, train, test, seeds: list[int], feature: str = "penultimate") -> dict[str, list[float]]:
    """1NN on ``feature`` of the same weights once per batch-norm seed: {protocol: [score per seed]}.
    Seed 0 is what every evaluation uses, so its scores are the run's own."""
    protocols = ("test", "val") if method.cfg.hold_out_val else ("test",)
    scores: dict[str, list[float]] = {p: [] for p in protocols}
    for seed in seeds:
        t0 = time.perf_counter()
        results = evaluate(method, train, test, probe=False, protocols=protocols, bn_seed=seed)
        for p in protocols:
            scores[p].append(results[f"1nn_{p}.{feature}"])
        print(f"seed {seed}: " + ", ".join(f"1nn_{p} {scores[p][-1]:.2f}" for p in protocols)
              + f" ({time.perf_counter() - t0:.0f} s, bn_batches={method.cfg.bn_batches})", flush=True)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory (or RUN/best) of an MNIST-trained method")
    parser.add_argument("--seeds", type=seed_list, default="0-3", help="batch-draw seeds, e.g. 0-3 (default) or 0,5")
    parser.add_argument("--feature", default="penultimate", help="feature to score (default penultimate)")
    parser.add_argument("--data-dir", default=None, help="directory holding MNIST (default $ADVREP_DATA_DIR)")
    args = parser.parse_args()
    method = load_model(args.run)
    train = load_run_dataset(method.cfg, "train", data_dir=args.data_dir, run=args.run, download=False)
    test = load_run_dataset(method.cfg, "test", data_dir=args.data_dir, run=args.run, download=False)
    for p, values in spread(method, train, test, args.seeds, args.feature).items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"1nn_{p}.{args.feature}: mean {statistics.mean(values):.2f} ± {sd:.2f} "
              f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
