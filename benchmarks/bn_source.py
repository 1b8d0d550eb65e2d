"""Score a latent regressor's encoder (LR or joint LR) with its batch-norm statistics gathered on two
sources: real training images, as every evaluation does (and the reference code), or G's samples, the
only inputs E ever saw while it trained. If E's features fall on real images because the statistics
do not match what it learnt on, the second source should score higher.

    python benchmarks/bn_source.py runs/table-bigancode-200+200/lr --data-dir ../shared/data

Prints 1NN on the penultimate features (test vs train and, for a run with hold_out_val, the held-out
validation split) for each source. The weights are the same; only the statistics change. Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from advrep.checkpoint import load_model  # noqa: E402
from advrep.data import load_run_dataset  # noqa: E402
from advrep.evaluate import evaluate  # noqa: E402
from advrep.methods.latent_regressor import LatentRegressor  # noqa: E402


def on_samples(method: LatentRegressor):
    """A batch_norm_forward that runs E on G(z) (G in training mode, as in a training step), D on the
    real batch and G on the prior, so only E's statistics differ from the method's own."""
    def forward(x, y, rng):
        method.nets["D"](method.flat(x))
        method.nets["E"](method.nets["G"](method.sample_prior(x.shape[0], rng)))
    return forward


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory (or RUN/best) of an MNIST-trained LR or joint LR")
    parser.add_argument("--feature", default="penultimate", help="feature to score (default penultimate)")
    parser.add_argument("--data-dir", default=None, help="directory holding MNIST (default $ADVREP_DATA_DIR)")
    args = parser.parse_args()
    method = load_model(args.run)
    if not isinstance(method, LatentRegressor):
        parser.error(f"{args.run} holds a {method.name!r} model; this compares batch-norm sources for "
                     "latent_regressor or joint_latent_regressor runs.")
    train = load_run_dataset(method.cfg, "train", data_dir=args.data_dir, run=args.run, download=False)
    test = load_run_dataset(method.cfg, "test", data_dir=args.data_dir, run=args.run, download=False)
    protocols = ("test", "val") if method.cfg.hold_out_val else ("test",)
    own = method.batch_norm_forward
    for source, forward in (("real images", own), ("G's samples", on_samples(method))):
        method.batch_norm_forward = forward
        t0 = time.perf_counter()
        results = evaluate(method, train, test, probe=False, protocols=protocols)
        print(f"E's statistics on {source}: "
              + ", ".join(f"1nn_{p}.{args.feature} {results[f'1nn_{p}.{args.feature}']:.2f}" for p in protocols)
              + f" ({time.perf_counter() - t0:.0f} s, bn_batches={method.cfg.bn_batches})", flush=True)
    method.batch_norm_forward = own
    return 0


if __name__ == "__main__":
    sys.exit(main())
