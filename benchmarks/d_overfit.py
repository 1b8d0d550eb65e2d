"""Does the D baseline's discriminator learn the images it trained on rather than digits? Scores a
trained GAN's D on the images it trained on (the 50k of a ``hold_out_val`` run, else all 60k), the
held-out 10k of such a run (its ``val_split``), the test 10k and G's samples. A D that memorises scores
its training images as real and unseen digits less so; the gap between the two is that memorisation.

    python benchmarks/d_overfit.py runs/table-bigancode-200+200-seed2/d/best \\
        runs/table-bigancode-200+200-seed2/d --data-dir ../shared/data

Each source is scored in shuffled batches of the run's batch size with D in training mode, so every batch
is normalised by its own statistics as in a training step (D never sees population statistics while it
trains). Prints, per checkpoint and source, D's mean probability of "real" and the share of images it
calls real (probability above 0.5), over up to 10000 images a source. Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from advrep.checkpoint import BEST, load_model, load_state, read_best, resolve_weights  # noqa: E402
from advrep.data import load_dataset  # noqa: E402
from advrep.eval.splits import train_val_split  # noqa: E402
from advrep.methods.gan import GAN  # noqa: E402


@torch.no_grad()
def d_scores(method: GAN, x: torch.Tensor | None, *, n: int, batch_size: int, seed: int = 0) -> dict[str, float]:
    """D's mean probability of "real" and the share of inputs above 0.5 over ``n`` inputs: ``n`` of the
    images ``x`` [N, C, H, W] in a seeded random order, or with ``x=None`` ``n`` samples of G. D runs in
    training mode on batches of ``batch_size`` (its running statistics change; nothing is saved)."""
    gen = torch.Generator().manual_seed(seed)
    D, G = method.nets["D"], method.nets["G"]
    was_training = method.nets.training
    method.nets.train()
    try:
        if x is not None:
            order = torch.randperm(len(x), generator=gen)[:n]
            n = len(order)
        probs = []
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            batch = method.flat(x[order[i:i + m]]) if x is not None else G(method.sample_prior(m, gen))
            probs.append(torch.sigmoid(D(batch).float()))
    finally:
        method.nets.train(was_training)
    p = torch.cat(probs)
    return {"n": len(p), "mean": p.mean().item(), "real": (p > 0.5).float().mean().item() * 100}


def epochs_trained(path: str | Path) -> int:
    """The epochs behind the weights ``load_model(path)`` loads: RUN/best's recorded epoch, else that
    checkpoint's."""
    ckpt = resolve_weights(path).parent
    return read_best(ckpt.parent)["epoch"] if ckpt.name == BEST else load_state(ckpt)["epoch"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories or checkpoints (RUN/best) of MNIST-trained GANs")
    parser.add_argument("--n", type=int, default=10000, help="images a source (default 10000)")
    parser.add_argument("--data-dir", default=None,
                        help="directory holding MNIST (default: the run's own data_dir, else $ADVREP_DATA_DIR)")
    args = parser.parse_args(argv)
    datasets = {}
    print("| weights | epochs trained | source | images | D's mean P(real) | called real (%) |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        method = load_model(run)
        if not isinstance(method, GAN):
            parser.error(f"{run} holds a {method.name!r} model; this scores the D baseline (method gan).")
        cfg = method.cfg
        data = {"data_dir": args.data_dir or cfg.data_dir, "size": cfg.image_size or None, "download": False}
        key = (cfg.data, data["data_dir"], data["size"])
        if key not in datasets:
            try:
                datasets[key] = (load_dataset(cfg.data, "train", **data), load_dataset(cfg.data, "test", **data))
            except ValueError as exc:  # a missing or corrupt dataset
                parser.error(f"{run}: {exc}")
        train, test = datasets[key]
        if cfg.hold_out_val:
            ref, val = train_val_split(len(train), 10000, order=cfg.val_split)
            sources = {f"trained on ({len(train) - 10000})": train.x[ref], "held-out": train.x[val]}
        else:
            sources = {f"trained on ({len(train)})": train.x}
        sources |= {"test": test.x, "G's samples": None}
        epoch = epochs_trained(run)
        for name, x in sources.items():
            s = d_scores(method, x, n=args.n, batch_size=cfg.batch_size)
            print(f"| {run} | {epoch} | {name} | {s['n']} | {s['mean']:.3f} | {s['real']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
