"""The authors' own trained networks, scored by advrep's evaluator: same weights, same 1NN protocol.

benchmarks/reference_code_step.py shows that advrep trains as the reference code (jeffdonahue/bigan)
does. This script checks the other half of the table's pipeline, the evaluation: it takes weights the
reference code trained and saved, scores them with ``advrep.evaluate`` and sets the result beside the
reference code's own log line for that epoch::

    python benchmarks/reference_code_eval.py EXP/models/80 --log EXP/log.txt --data-dir ../shared/data

``EXP/models/80`` names the files ``80_{encode,gen,...}_params.jl`` that the reference code writes at
the end of each phase. A BiGAN run saves ``joint_discrim`` beside them; a latent regressor run (LR or
joint LR: the same three networks) saves ``discrim``. They are joblib pickles (joblib comes with
scikit-learn); they are read by an unpickler that builds numpy arrays and nothing else, so a file that
asks for any other object is refused before anything in it runs. The weights go into advrep's BiGAN or
latent regressor (configs/*_mnist.toml, the reference's batch-norm epsilon 1e-8, its 10k validation
split ``bigan_code``), which prints 1NN on the held-out 10k against the other 50k (and on the test set
against all 60k), once with the batch-norm statistics the reference code saved and once with advrep's
own (``bn_batches=1000``). With ``--log`` it reads the reference's ``NNC_e-`` (1NN on the encoder's
penultimate layer), ``NNC_e`` (on the pre-sigmoid code) and, for a latent regressor, ``NNC_d`` (on the
discriminator's penultimate layer) for that epoch, and exits 1 if advrep's scores, with the saved
statistics, differ by more than ``--tolerance`` points.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The reference's saved parameter lists, in its networks' order (net.py's params()): a name per entry.
# Weights are [in, out]; a batch norm saves a batch count and the sums of the batch means and variances.
# By advrep method: a BiGAN run saves the joint discriminator, a latent regressor run (LR or joint LR)
# the discriminator on x.
_ENCODE = ["E.fc1", "E.fc2", "E.bn2.count", "E.bn2.mean", "E.bn2.var", "E.out"]
_GEN = ["G.fc1", "G.bn1.count", "G.bn1.mean", "G.bn1.var", "G.fc2", "G.skip", "G.bn2.count", "G.bn2.mean",
        "G.bn2.var", "G.out"]
LAYOUTS = {
    "bigan": {"encode": _ENCODE, "gen": _GEN,
              "joint_discrim": ["D.fc1", "D.fc2", "D.z_proj", "D.bn2.count", "D.bn2.mean", "D.bn2.var", "D.out"]},
    "latent_regressor": {"encode": _ENCODE, "gen": _GEN,
                         "discrim": ["D.fc1", "D.fc2", "D.bn2.count", "D.bn2.mean", "D.bn2.var", "D.out"]},
}
# advrep's representation -> the reference log's 1NN key
LOGGED = {"penultimate": "NNC_e-", "z_pre": "NNC_e", "discriminator": "NNC_d"}
# What a joblib file of numpy arrays asks the unpickler for; anything else is refused.
ARRAY_GLOBALS = {("joblib.numpy_pickle", "NumpyArrayWrapper"), ("numpy", "ndarray"), ("numpy", "dtype"),
                 ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                 ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}


def read_arrays(path: Path) -> list:
    """A joblib file holding a list of numpy arrays (the reference's saved parameters), read without
    building any other object."""
    import pickle

    from joblib.numpy_pickle import NumpyUnpickler

    class ArraysOnly(NumpyUnpickler):
        def find_class(self, module, name):
            if (module, name) not in ARRAY_GLOBALS:
                raise pickle.UnpicklingError(f"{path} asks for {module}.{name}, which is not a numpy array; "
                                             "it is not a parameter file the reference code saved")
            return super().find_class(module, name)

    with open(path, "rb") as f:
        return ArraysOnly(str(path), f, True).load()


def saved_method(prefix: str) -> str:
    """Which advrep method the reference's files for one epoch fill: the discriminator file tells."""
    for method, layout in LAYOUTS.items():
        if Path(f"{prefix}_{list(layout)[-1]}_params.jl").is_file():
            return method
    sys.exit(f"{prefix}_joint_discrim_params.jl (BiGAN) and {prefix}_discrim_params.jl (LR, joint LR) do not "
             "exist; give the prefix of a saved epoch, e.g. EXP/models/80")


def reference_arrays(prefix: str, method: str = "bigan") -> dict:
    """The arrays the reference saved for one epoch, by role (``LAYOUTS[method]``)."""
    import numpy as np

    arrays = {}
    for group, names in LAYOUTS[method].items():
        path = Path(f"{prefix}_{group}_params.jl")
        if not path.is_file():
            sys.exit(f"{path} does not exist; give the prefix of a saved epoch, e.g. EXP/models/80")
        saved = read_arrays(path)
        if len(saved) != len(names):
            sys.exit(f"{path} holds {len(saved)} arrays, the MNIST {method}'s {group} has {len(names)}: "
                     "was it saved by another network or objective?")
        arrays.update({name: np.asarray(a) for name, a in zip(names, saved)})
    return arrays


def load_reference(method, arrays) -> None:
    """Put the reference's saved weights and batch-norm statistics into advrep's ``method`` (a BiGAN
    or a latent regressor)."""
    import torch

    state = method.nets.state_dict()
    layout = LAYOUTS["latent_regressor" if method.name == "joint_latent_regressor" else method.name]
    for names in layout.values():
        for name in names:
            if name.endswith((".count", ".mean", ".var")):
                continue
            value = torch.from_numpy(arrays[name]).T.contiguous()
            if state[f"{name}.weight"].shape != value.shape:
                raise ValueError(f"{name}: the reference saved {tuple(value.shape)} ([out, in]), advrep's "
                                 f"{method.name} has {tuple(state[f'{name}.weight'].shape)}")
            state[f"{name}.weight"] = value
        for bn in (n.removesuffix(".count") for n in names if n.endswith(".count")):
            count = float(arrays[f"{bn}.count"])
            state[f"{bn}.running_mean"] = torch.from_numpy(arrays[f"{bn}.mean"] / count)
            state[f"{bn}.running_var"] = torch.from_numpy(arrays[f"{bn}.var"] / count)
    method.nets.load_state_dict(state)


def reference_log(log: Path, epoch: int) -> dict[str, float]:
    """The reference's own 1NN scores for ``epoch`` from its log, by advrep's name (``LOGGED``):
    {'penultimate': NNC_e-, 'z_pre': NNC_e} and, where the run has a discriminator on x, NNC_d."""
    lines = log.read_text().splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.lstrip().startswith(f"{epoch}) "):
            found = dict(re.findall(r"(NNC_[ed]-?): ([\d.]+)%", lines[i + 1]))
            if {"NNC_e", "NNC_e-"} <= found.keys():
                return {ours: float(found[key]) for ours, key in LOGGED.items() if key in found}
    raise SystemExit(f"{log} has no evaluation of epoch {epoch} (a line '{epoch}) ...' followed by NNC_e)")


def score(prefix: str, log: Path | None, data_dir: str | None, tolerance: float) -> int:
    from advrep.data.load import resolve_data_dir
    from advrep.data.mnist import load_mnist_family
    from advrep.evaluate import evaluate
    from advrep.methods import build_method, make_config

    epoch = re.match(r"(\d+)$", Path(prefix).name)
    if epoch is None:
        sys.exit(f"{prefix}: the prefix of a saved epoch ends in its number, e.g. EXP/models/80")
    epoch = int(epoch.group(1))
    theirs = reference_log(log, epoch) if log is not None else {}  # before the minutes of scoring
    kind = saved_method(prefix)
    arrays = reference_arrays(prefix, kind)
    root = resolve_data_dir(data_dir)
    train, test = (load_mnist_family("mnist", split, root, download=False) for split in ("train", "test"))
    cfg = make_config(kind, file=str(REPO / "configs" / f"{kind}_mnist.toml"), bn_eps=1e-8, bn_batches=1000,
                      hold_out_val=True, val_split="bigan_code")
    method = build_method(cfg, train.image_shape)
    load_reference(method, arrays)
    keys = ("penultimate", "z_pre", "z") + (("discriminator",) if kind == "latent_regressor" else ())
    print(f"{prefix}: the reference's {kind} files")
    saved = evaluate(method, train, test, probe=False, refresh_bn=False)
    print(f"epoch {epoch}, the reference's batch-norm statistics: "
          + ", ".join(f"1nn_{p}.{k} {saved[f'1nn_{p}.{k}']:.2f}" for p in ("val", "test") for k in keys))
    own = evaluate(method, train, test, probe=False)
    print(f"epoch {epoch}, advrep's own statistics ({cfg.bn_batches} batches): "
          + ", ".join(f"1nn_{p}.{k} {own[f'1nn_{p}.{k}']:.2f}" for p in ("val", "test") for k in keys))
    worst = 0.0
    for key, logged in theirs.items():
        gap = round(saved[f"1nn_val.{key}"] - logged, 2) + 0.0  # + 0.0: no "-0.00"
        worst = max(worst, abs(gap))
        print(f"1nn_val.{key}: advrep {saved[f'1nn_val.{key}']:.2f}, the reference's log {logged:.2f} ({gap:+.2f})")
    return 0 if worst <= tolerance else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("prefix", help="a saved epoch's prefix, e.g. EXP/models/80")
    parser.add_argument("--log", type=Path, default=None, help="the reference run's log.txt, to compare with")
    parser.add_argument("--data-dir", default=None, help="directory holding MNIST (default $ADVREP_DATA_DIR)")
    parser.add_argument("--tolerance", type=float, default=0.02, help="points (0.02 = two of the 10k queries)")
    args = parser.parse_args(argv)
    return score(args.prefix, args.log, args.data_dir, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
