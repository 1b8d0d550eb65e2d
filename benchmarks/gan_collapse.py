"""How often the D baseline's GAN collapses early, by precision and seed: each (precision, seed) trains
configs/gan_mnist.toml on the authors' 50k split (the table's protocol) for the first few constant-rate
epochs, and reports whether the trainer's collapse check fired (G drew one image for all 64 fixed
latents, docs/reliability.md), G's per-pixel spread over 512 fresh latents at the end, and D's mean
score on G's samples over the last epoch (0.5 and a spread near 0: a collapsed G that D cannot tell
apart and so cannot push away), with the held-out 1NN of D's features that the end of training measures.

    python benchmarks/gan_collapse.py --precisions bf16,fp32 --seeds 0-3 --epochs 12 --data-dir ../shared/data

Each run trains into RUN_ROOT/PRECISION-seedN (default runs/gan-collapse). A run cut short continues from
its last checkpoint; a finished one is read back as it is, with the epochs it ran (the table says how
many). Prints one line a run and a markdown table; writes nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import commit, machine, seed_list  # noqa: E402

from advrep.checkpoint import latest_checkpoint, load_model  # noqa: E402
from advrep.data import load_dataset  # noqa: E402
from advrep.methods import make_config  # noqa: E402
from advrep.report import first_record, read_metrics  # noqa: E402
from advrep.train import train  # noqa: E402
from advrep.train.loop import COLLAPSED_SPREAD, generator_spread  # noqa: E402


def one_run(run_dir: Path, *, precision: str, seed: int, epochs: int, threads: int, data_dir: str | None,
            train_set, test_set, **settings) -> dict:
    """Train one short run (continuing it if an earlier launch was cut short; a finished one is read back
    as it is) and measure its generator. ``settings`` go on top of the recipe (the tests' ``log_every``)."""
    cfg = make_config("gan", file=str(REPO / "configs" / "gan_mnist.toml"), epochs=epochs, decay_epochs=0,
                      eval_every=0, sample_every=0, hold_out_val=True, val_split="bigan_code",
                      precision=precision, seed=seed, threads=threads, data_dir=data_dir, progress=False, **settings)
    summary = train(cfg, run_dir, resume=latest_checkpoint(run_dir) is not None, train_set=train_set,
                    test_set=test_set)
    records = read_metrics(run_dir / "metrics.jsonl")
    collapse = first_record(run_dir / "metrics.jsonl", "collapse")
    last_epoch = summary["epochs"] - 1  # step records count epochs from 0
    method = load_model(run_dir)
    z = method.sample_prior(512, torch.Generator().manual_seed(0))
    return {"run": run_dir.name, "precision": precision, "seed": seed, "epochs": summary["epochs"],
            "collapsed_epoch": None if collapse is None else collapse["epoch"],
            "spread": generator_spread(method, z),
            "D_fake": statistics.mean(r["D_fake"] for r in records if "D_fake" in r and r["epoch"] == last_epoch),
            "1nn_val": summary["1nn_val.discriminator"],
            # the last process's epochs only: an interrupted run's earlier pieces are not timed
            "s_per_epoch": summary["wall_s"] / max(1, summary["epochs"] - summary.get("start_epoch", 0))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", default="bf16,fp32", help="comma-separated (default bf16,fp32)")
    parser.add_argument("--seeds", type=seed_list, default="0-3", help="training seeds, e.g. 0-3 (default)")
    parser.add_argument("--epochs", type=int, default=12, help="constant-rate epochs a run (default 12)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=None, help="directory holding MNIST (default $ADVREP_DATA_DIR)")
    parser.add_argument("--run-root", default=str(REPO / "runs" / "gan-collapse"))
    args = parser.parse_args()
    train_set = load_dataset("mnist", "train", data_dir=args.data_dir, download=False)
    test_set = load_dataset("mnist", "test", data_dir=args.data_dir, download=False)
    rows = []
    for precision in args.precisions.split(","):
        for seed in args.seeds:
            r = one_run(Path(args.run_root) / f"{precision}-seed{seed}", precision=precision, seed=seed,
                        epochs=args.epochs, threads=args.threads, data_dir=args.data_dir,
                        train_set=train_set, test_set=test_set)
            rows.append(r)
            print(r, flush=True)
    print(f"\nMachine: {machine()}; commit {commit()}. Collapsed: G's 64 fixed samples spread below "
          f"{COLLAPSED_SPREAD:g} per pixel after some epoch.\n")
    print("| precision | seed | epochs | collapsed at epoch | G spread (512 latents) | D on G(z), last epoch "
          "| 1NN held-out | s/epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        when = "—" if r["collapsed_epoch"] is None else str(r["collapsed_epoch"])
        print(f"| {r['precision']} | {r['seed']} | {r['epochs']} | {when} | {r['spread']:.2g} | {r['D_fake']:.3f} | "
              f"{r['1nn_val']:.2f} | {r['s_per_epoch']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
