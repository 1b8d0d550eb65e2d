"""A run's training losses at fixed weights, averaged over many batches: the costs the BiGAN reference
code prints at each evaluation, which its README's log gives for epochs 0, 1, 25, 200 and 400.

The reference code's ``deploy()`` runs 1000 training batches through every network in training mode
(batch statistics), with no update, and prints the mean of the costs. This does the same for a saved
run: the method's training losses (``Method.losses``, every phase) in training mode without gradients,
on ``--batches`` batches of the run's batch size, drawn with replacement from the images the run
trained on, with seeded z. Nothing is written, and the weights and batch-norm statistics are left as
they were.

    python benchmarks/deploy_losses.py runs/table-bigancode-200+200-fp32-seed1/bigan --data-dir ../shared/data

Prints one line per run: each optimiser's loss (e.g. ``D`` and ``EG`` for BiGAN, the reference log's
``JD`` and ``E``/``G``) and the method's other logged scalars (D's mean score on each side).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import training_forwards  # noqa: E402

from advrep.checkpoint import load_model  # noqa: E402
from advrep.data import load_run_dataset  # noqa: E402
from advrep.evaluate import fit_split  # noqa: E402


def deploy_losses(method, data, *, batches: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean of every training loss and logged scalar of ``method`` over ``batches`` batches of ``data``
    (the images it trains on), networks in training mode, no gradients, z seeded by ``seed``.

    Keys: ``loss_<optimiser>`` for each loss, then the method's extra scalars (e.g. ``D_real``). The
    networks' parameters and buffers (batch-norm statistics included) are left as they were.
    """
    sums: dict[str, float] = defaultdict(float)
    for losses, extra in training_forwards(method, data, batches=batches, seed=seed):
        for name, value in losses.items():
            sums[f"loss_{name}"] += float(value)
        for name, value in extra.items():
            sums[name] += float(value)
    return {k: v / batches for k, v in sums.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (or RUN/best) of MNIST-trained methods")
    parser.add_argument("--batches", type=int, default=1000,
                        help="batches to average over (default 1000, the reference code's --deploy_iters)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch and z draws (default 0)")
    parser.add_argument("--data-dir", default=None, help="directory holding MNIST (default $ADVREP_DATA_DIR)")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error(f"--batches must be at least 1, got {args.batches}")
    for run in args.runs:
        t0 = time.perf_counter()
        method = load_model(run)
        train = load_run_dataset(method.cfg, "train", data_dir=args.data_dir, run=run, download=False)
        data = fit_split(train, method.cfg.hold_out_val, method.cfg.val_split)
        means = deploy_losses(method, data, batches=args.batches, seed=args.seed)
        print(f"{run}: " + "  ".join(f"{k} {v:.4f}" for k, v in means.items())
              + f"  ({args.batches} batches of {min(method.cfg.batch_size, len(data))} from {len(data)} "
              f"images, {time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
