"""Do a trained model's features set the images it trained on apart from unseen ones? 1-nearest-neighbour
accuracy and distance of images it trained on (each against the other trained-on images, itself left
out) beside those of unseen images (against all trained-on images), in the features the table scores.

    python benchmarks/nn_gap.py runs/table-bigancode-200+200-seed2/d/best \\
        runs/table-bigancode-200+200-seed2/d --data-dir ../shared/data

Works for any method, whereas ``benchmarks/d_overfit.py`` asks the D baseline's discriminator alone.
Both kinds of query come from one distribution, so in features that treat them alike (raw pixels,
printed first as the control) their accuracies and distances agree up to sampling noise. Features that have
memorised the trained-on images put those nearer to each other than unseen images are to any of them
(a distance ratio above 1) and score them higher: the gap is what memorising costs the held-out score.

The references are the images the run trained on: the 50k of a ``hold_out_val`` run, whose held-out 10k
(its ``val_split``) and the test set are the unseen queries, else all training images, with the test
set as the unseen queries. Features as the run's own evaluations compute them: batch norm's statistics
refreshed over ``bn_batches`` training batches (seed 0), then eval mode, so the unseen rows reproduce
the run's logged 1NN scores (``1nn_val.*`` of a ``hold_out_val`` run, ``1nn_test.*`` otherwise) where
the run evaluated on the CPU, as this script does. Prints one markdown row per weights and query
source; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d_overfit import epochs_trained  # noqa: E402

from advrep.checkpoint import load_model  # noqa: E402
from advrep.data import load_dataset  # noqa: E402
from advrep.eval.knn import nearest_neighbours  # noqa: E402
from advrep.eval.splits import train_val_split  # noqa: E402
from advrep.evaluate import compute_features, fit_split, refresh_batch_norm  # noqa: E402


def nearest_other(queries: torch.Tensor, refs: torch.Tensor, rows: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance and index of each query's nearest reference other than itself: query ``i`` is
    ``refs[rows[i]]``, which is left out (an exact duplicate elsewhere in ``refs`` still counts)."""
    d, idx = nearest_neighbours(queries, refs, k=2)
    own = idx[:, 0] == rows
    return torch.where(own, d[:, 1], d[:, 0]), torch.where(own, idx[:, 1], idx[:, 0])


def nn_gap(refs: torch.Tensor, ref_y: torch.Tensor, unseen: dict[str, tuple[torch.Tensor, torch.Tensor]], *,
           n: int | None = None, seed: int = 0) -> dict[str, dict[str, float]]:
    """{source: {"n", "acc", "median_d"}} for ``n`` trained-on images (all of ``refs`` [N, F], or a
    seeded draw of ``n``; each queried against the others) under "trained on", then each unseen source
    ``{name: (feats [M, F], labels [M])}`` queried against all of ``refs``. "acc" is 1NN accuracy (%),
    "median_d" the median Euclidean distance to that nearest neighbour."""
    rows = torch.randperm(len(refs), generator=torch.Generator().manual_seed(seed))[:n]
    d, idx = nearest_other(refs[rows], refs, rows)
    out = {"trained on": _score(d, ref_y[idx], ref_y[rows])}
    for name, (feats, y) in unseen.items():
        d, idx = nearest_neighbours(feats, refs, k=1)
        out[name] = _score(d[:, 0], ref_y[idx[:, 0]], y)
    return out


def _score(d: torch.Tensor, predicted: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return {"n": len(d), "acc": (predicted == y).double().mean().item() * 100, "median_d": d.median().item()}


@torch.no_grad()
def run_features(method, train, test, feature: str | None) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(name, features of every training image, of every test image), computed as the run's evaluations
    do. ``feature=None``: the BiGAN table's, the penultimate layer (a GAN's: its discriminator's)."""
    cfg = method.cfg
    refresh_batch_norm(method, fit_split(train, cfg.hold_out_val, cfg.val_split), batches=cfg.bn_batches, seed=0)
    method.nets.eval()
    got = {}
    for name, data in (("train", train), ("test", test)):
        feats = compute_features(method.features, data.x)
        if feature is None:
            feature = "penultimate" if "penultimate" in feats else "discriminator"
        if feature not in feats:
            raise SystemExit(f"error: {method.name!r} has no feature {feature!r}; it has {sorted(feats)}. "
                             "Pass one of those with --feature.")
        got[name] = feats[feature]
    return feature, got["train"], got["test"]


def split(train_f, train_y, test_f, test_y, hold_out_val: bool, val_split: str):
    """(references, their labels, unseen sources) for a run trained with or without ``hold_out_val``."""
    if not hold_out_val:
        return train_f, train_y, {"test": (test_f, test_y)}
    ref, val = train_val_split(len(train_f), 10000, order=val_split)
    return train_f[ref], train_y[ref], {"held-out": (train_f[val], train_y[val]), "test": (test_f, test_y)}


def print_rows(label: str, epochs: str, scores: dict[str, dict[str, float]]) -> None:
    base = scores["trained on"]
    for name, s in scores.items():
        gap = "" if name == "trained on" else f"{s['acc'] - base['acc']:+.2f}"
        ratio = "1" if name == "trained on" else f"{s['median_d'] / base['median_d']:.3f}"
        print(f"| {label} | {epochs} | {name} | {s['n']} | {s['acc']:.2f} | {gap} | {s['median_d']:.4g} | "
              f"{ratio} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories or checkpoints (RUN/best) of trained models")
    parser.add_argument("--feature", default=None, help="which feature (default the BiGAN table's: "
                        "penultimate, for the D baseline discriminator)")
    parser.add_argument("--n", type=int, default=None,
                        help="trained-on images queried, a seeded draw (default all of them)")
    parser.add_argument("--data-dir", default=None,
                        help="directory holding the data (default: the run's own data_dir, else $ADVREP_DATA_DIR)")
    args = parser.parse_args(argv)
    print("| weights | epochs trained | queries | images | 1NN (%) | − trained on | median NN distance | "
          "÷ trained on |")
    print("|---|---|---|---|---|---|---|---|")
    controls_done = set()
    for run in args.runs:
        try:
            report(run, args, controls_done)
        except ValueError as exc:  # a dataset that is missing, or too small for the run's held-out 10k
            parser.error(f"{run}: {exc}")
    return 0


def report(run: str, args: argparse.Namespace, controls_done: set) -> None:
    """Print the rows of one run's weights, after the raw-pixel control of its protocol the first time."""
    method = load_model(run)
    cfg = method.cfg
    data = {"data_dir": args.data_dir or cfg.data_dir, "size": cfg.image_size or None, "download": False}
    train, test = load_dataset(cfg.data, "train", **data), load_dataset(cfg.data, "test", **data)
    if train.y is None or test.y is None:
        raise ValueError(f"dataset {cfg.data!r} has no labels, and 1NN accuracy needs them.")
    protocol = (cfg.data, cfg.hold_out_val, cfg.val_split if cfg.hold_out_val else "")
    if protocol not in controls_done:
        controls_done.add(protocol)
        pixels = split(train.x.flatten(1), train.y, test.x.flatten(1), test.y, cfg.hold_out_val, cfg.val_split)
        print_rows(f"raw pixels ({cfg.data})", "—", nn_gap(*pixels, n=args.n))
    feature, train_f, test_f = run_features(method, train, test, args.feature)
    scores = nn_gap(*split(train_f, train.y, test_f, test.y, cfg.hold_out_val, cfg.val_split), n=args.n)
    print_rows(f"{run} ({method.name}, {feature})", str(epochs_trained(run)), scores)


if __name__ == "__main__":
    sys.exit(main())
