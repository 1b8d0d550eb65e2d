"""How small the batch variances entering a run's batch norms are, and whether batch norm's epsilon
(``bn_eps``: the reference code's 1e-8, PyTorch's 1e-5) changes the run's 1NN score at evaluation.

    python benchmarks/bn_variance.py runs/table-bigancode-200+200-bf16-seed1/jlr --data-dir ../shared/data
    python benchmarks/bn_variance.py RUN --eval-eps 1e-8 --data-dir ../shared/data

For every batch norm of the run's trained networks, the per-unit variance of its input over
``--batches`` training batches (the method's training forward pass, training mode, no gradients, seeded):
minimum, 1st percentile, median, and the share of units below 1e-5 and 1e-4. An epsilon far below a
unit's variance leaves that unit as it is; one near it damps it. With ``--eval-eps`` the run is also
scored (1NN, the run's protocols, no probes) once with its own epsilon and once with every batch norm
set to the given one, statistics recomputed and nothing retrained. Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import training_forwards  # noqa: E402

from advrep.checkpoint import load_model  # noqa: E402
from advrep.data import load_run_dataset  # noqa: E402
from advrep.evaluate import evaluate, fit_split  # noqa: E402


def _norms(method) -> dict[str, torch.nn.modules.batchnorm._BatchNorm]:
    return {name: m for name, m in method.nets.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}


def input_variances(method, data, *, batches: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """{batch norm name: per-unit input variance of each forward call, concatenated} over ``batches``
    batches of ``data`` through the method's training losses (training mode, no gradients). The run is
    left as it was."""
    found: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name:
                                     found.setdefault(name, []).append(inp[0].float().var(0, unbiased=False)))
             for name, m in _norms(method).items()]
    try:
        for _ in training_forwards(method, data, batches=batches, seed=seed):
            pass
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.cat(vs) for name, vs in found.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (or RUN/best) of MNIST-trained methods")
    parser.add_argument("--batches", type=int, default=5, help="training batches to measure (default 5)")
    parser.add_argument("--eval-eps", type=float, default=None,
                        help="also score 1NN with every batch norm's epsilon set to this value")
    parser.add_argument("--data-dir", default=None, help="directory holding MNIST (default $ADVREP_DATA_DIR)")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error(f"--batches must be at least 1, got {args.batches}")
    if args.eval_eps is not None and not args.eval_eps > 0:
        parser.error(f"--eval-eps must be positive, got {args.eval_eps}")
    for run in args.runs:
        method = load_model(run)
        train = load_run_dataset(method.cfg, "train", data_dir=args.data_dir, run=run, download=False)
        print(f"{run} (bn_eps {method.cfg.bn_eps:g}):")
        for name, v in input_variances(method, fit_split(train, method.cfg.hold_out_val, method.cfg.val_split),
                                       batches=args.batches).items():
            q01, med = torch.quantile(v, torch.tensor([0.01, 0.5])).tolist()
            print(f"  {name:12s} min {v.min():.2e}  1st pct {q01:.2e}  median {med:.2e}  "
                  f"below 1e-5: {(v < 1e-5).float().mean():.0%}  below 1e-4: {(v < 1e-4).float().mean():.0%}")
        if args.eval_eps is not None:
            test = load_run_dataset(method.cfg, "test", data_dir=args.data_dir, run=run, download=False)
            protocols = ("test", "val") if method.cfg.hold_out_val else ("test",)
            for eps in (method.cfg.bn_eps, args.eval_eps):
                t0 = time.perf_counter()
                for m in _norms(method).values():
                    m.eps = eps
                results = evaluate(method, train, test, probe=False, protocols=protocols)
                scores = {k: v for k, v in results.items() if k.startswith("1nn_") and k.split(".")[1] in
                          ("penultimate", "discriminator")}
                print(f"  eps {eps:g}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
                      + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
