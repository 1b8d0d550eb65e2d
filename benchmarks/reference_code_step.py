"""advrep's training steps for the BiGAN table against the authors' own code: same weights, images and codes.

tests/test_reference_step.py checks advrep's step against a hand-written reading of the reference code
(jeffdonahue/bigan). This script checks it against the reference code itself, which rules out a
misreading that advrep and that test share. It runs in two environments, because the reference code
needs Theano (or PyTensor, its maintained fork) and advrep needs PyTorch:

1. ``python benchmarks/reference_code_step.py advrep OUT.npz --kind KIND --data-dir ../shared/data``
   (advrep's environment; KIND is bigan, gan (the D row), latent_regressor or joint_latent_regressor):
   builds that row's MNIST model from configs/KIND_mnist.toml in float64 with the reference's batch
   norm epsilon (1e-8), gives the zero-started layers random weights so that every gradient is live,
   takes ``--steps`` training steps on the first MNIST training images and saves the start weights,
   each batch (uint8), each batch's codes and the weights after every step.
2. ``REF_PYTHON benchmarks/reference_code_step.py reference OUT.npz --reference-dir DIR`` (an
   environment with PyTensor and a Python 3 port of the reference code in DIR; the port is not part of
   advrep): builds the reference's training function with train_mnist.sh's flags and that row's
   objective in float64, loads the start weights into its shared variables, replays the same batches
   and codes through its compiled update (``_train_gd``: every network from one batch, Adam with L2 decay)
   and prints, for every step and weight matrix, the largest gap to advrep's weights beside how far the
   step moved them. It exits 1 if a gap exceeds ``--tolerance``.

The weight decay defaults to 0.05, far above the recipe's 2.5e-5, so that a loss weighted differently
would show (Adam ignores a loss's scale, but not against the decay). In a float64 graph the reference's
Adam shrinks b1 by 1 - 1e-8 a step (in its float32 runs that constant is exactly 1.0, as in advrep), so
gaps of about 1e-8 of a step's movement are expected from the second step on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# advrep's weights (nn.Linear, [out, in]) and the reference's shared variables ([in, out]) by role.
KINDS = ("bigan", "gan", "latent_regressor", "joint_latent_regressor")
ADVREP = {"G1": "G.fc1", "G2": "G.fc2", "Gz": "G.skip", "G3": "G.out", "E1": "E.fc1", "E2": "E.fc2",
          "E3": "E.out", "D1": "D.fc1", "D2": "D.fc2", "Dz": "D.z_proj", "D3": "D.out"}


def reference_names(kind: str) -> dict:
    """The reference's shared variable of each role; its plain and joint discriminators differ in name."""
    d = "JointDiscriminator" if kind == "bigan" else "Discriminator"
    names = {"G1": "Generator/FC1/w", "G2": "Generator/FC2/w", "Gz": "Generator/FC3/w", "G3": "Generator/FC4/w",
             "D1": f"{d}/FC1/w", "D2": f"{d}/FC2/w", "D3": f"{d}/FC4/w"}
    if kind == "bigan":
        names["Dz"] = f"{d}/FC3/w"
    if kind != "gan":
        names.update(E1="Encoder/FC1/w", E2="Encoder/FC2/w", E3="Encoder/FC4/w")
    return names


# train_mnist.sh's flags, then each row's objective: BiGAN, LR and joint LR as train_mnist.sh writes them;
# the D row (a plain GAN, which train_mnist.sh does not list) drops the encoder.
REFERENCE_FLAGS = [
    "--encode_normalize", "--dataset", "mnist", "--crop_size", "28", "--encode_net", "mnist_mlp",
    "--discrim_net", "mnist_mlp", "--gen_net", "deconvnet_mnist_mlp", "--megabatch_gb", "0.5", "--classifier",
    "--classifier_deploy", "--nolog_gain", "--nogain", "--nobias", "--no_decay_gain", "--deploy_iters", "1000",
    "--disp_samples", "400", "--disp_interval", "25", "--epochs", "200", "--decay_epochs", "200",
    "--optimizer", "adam", "--noise", "u-50",
]
OBJECTIVES = {
    "bigan": "--encode --encode_gen_weight 1 --encode_weight 0 --discrim_weight 0 --joint_discrim_weight 1",
    "gan": "--no-encode --discrim_weight 1 --joint_discrim_weight 0",
    "latent_regressor": "--encode --encode_gen_weight 0 --encode_weight 1 --discrim_weight 1 --joint_discrim_weight 0",
    "joint_latent_regressor":
        "--encode --encode_gen_weight 0.25 --encode_weight 1 --discrim_weight 1 --joint_discrim_weight 0",
}


def advrep_side(out: Path, kind: str, steps: int, decay: float, data_dir: str | None) -> None:
    import torch

    from advrep.data.load import resolve_data_dir
    from advrep.data.mnist import load_mnist_family

    train = load_mnist_family("mnist", "train", resolve_data_dir(data_dir), download=False)
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _advrep_steps(out, kind, steps, decay, train)
    finally:
        torch.set_default_dtype(old_dtype)


def _advrep_steps(out: Path, kind: str, steps: int, decay: float, train) -> None:
    import numpy as np
    import torch

    from advrep.methods import build_method, make_config
    from advrep.train.loop import make_optimizers, train_step

    images = (train.x * 255).round().to(torch.uint8).numpy()
    torch.manual_seed(0)
    image = (1, 28, 28)
    config = Path(__file__).resolve().parent.parent / "configs" / f"{kind}_mnist.toml"
    cfg = make_config(kind, file=str(config), bn_eps=1e-8, weight_decay=decay)
    method = build_method(cfg, image)
    with torch.no_grad():
        for p in method.nets.parameters():
            if not p.any():
                p.normal_(0, 0.02)

    def weights() -> dict:
        res = {}
        for key, path in ADVREP.items():
            net, layer = path.split(".")
            if net not in method.nets or not hasattr(method.nets[net], layer):
                continue
            res[key] = getattr(method.nets[net], layer).weight.detach().T.numpy().copy()
        return res

    opts = make_optimizers(method, method.cfg)
    params = {k: method.parameters_of(k) for k in method.optimizers}
    record = {f"w0_{k}": v for k, v in weights().items()}
    n = cfg.batch_size
    for step in range(steps):
        batch = images[step * n:(step + 1) * n].reshape(n, *image)
        x = torch.from_numpy(batch.astype(np.float64) / 255.0)
        z = method.sample_prior(n, torch.Generator().manual_seed(100 + step))  # the codes train_step draws
        train_step(method, opts, params, x, None, torch.Generator().manual_seed(100 + step), step=step)
        record[f"x{step}"] = batch
        record[f"z{step}"] = z.numpy()
        record.update({f"w{step + 1}_{k}": v for k, v in weights().items()})
    np.savez(out, kind=kind, steps=steps, decay=decay, **record)
    print(f"advrep: {steps} float64 {kind} steps (weight decay {decay}) written to {out}")


def reference_side(record_file: Path, reference_dir: Path, data_dir: Path, tolerance: float) -> int:
    import numpy as np

    if not (reference_dir / "train_gan.py").is_file():
        sys.exit(f"--reference-dir {reference_dir} has no train_gan.py: point it at a Python 3 port of "
                 "jeffdonahue/bigan")
    record = np.load(record_file)
    kind, steps, decay = str(record["kind"]), int(record["steps"]), float(record["decay"])
    names = reference_names(kind)
    missing = [k for k in names if f"w0_{k}" not in record.files]
    if missing:
        sys.exit(f"{record_file} holds no advrep weights for {missing}; was it written for another kind?")
    os.environ.setdefault("PYTENSOR_FLAGS", "floatX=float64")
    os.environ.setdefault("BIGAN_MNIST_DIR", str((data_dir / "mnist").resolve()))
    os.environ.setdefault("MPLBACKEND", "Agg")
    exp_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "reference_code_step"
    os.chdir(reference_dir)
    sys.path.insert(0, str(reference_dir))
    sys.argv = ["train_gan.py", *REFERENCE_FLAGS, *OBJECTIVES[kind].split(), "--exp_dir", str(exp_dir),
                "--seed", "0", "--decay", repr(decay)]
    import train_gan as ref  # builds the graphs (and loads MNIST) at import; trains only under __main__

    if ref.theano.config.floatX != "float64":
        sys.exit(f"the reference graph is {ref.theano.config.floatX}; run with PYTENSOR_FLAGS=floatX=float64")
    shared = {}
    nets = [ref.train_gen.net] + [f.net for f in (ref.f_discrim, getattr(ref, "f_encoder", None),
                                                   getattr(ref, "f_joint_discrim", None)) if f is not None]
    for net in nets:
        shared.update({name: p for name, (p, _) in net._params.items()})
    for key, name in names.items():
        start = record[f"w0_{key}"]
        if shared[name].get_value().shape != start.shape:
            sys.exit(f"{name}: the reference has shape {shared[name].get_value().shape}, advrep {start.shape}")
        shared[name].set_value(start)
    worst = 0.0
    for step in range(steps):
        ref._train_gd(record[f"x{step}"], record[f"z{step}"])
        cells = []
        for key, name in names.items():
            want, before = record[f"w{step + 1}_{key}"], record[f"w{step}_{key}"]
            gap = float(np.abs(shared[name].get_value() - want).max())
            worst = max(worst, gap)
            cells.append(f"{key} {gap:.1e}/{np.abs(want - before).max():.1e}")
        print(f"step {step + 1}: gap/moved " + " ".join(cells))
    print(f"largest gap between the reference code's weights and advrep's after {steps} steps: {worst:.3e}")
    return 0 if worst <= tolerance else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="side", required=True)
    a = sub.add_parser("advrep", help="advrep's steps (run in advrep's environment)")
    a.add_argument("out", type=Path)
    a.add_argument("--kind", choices=KINDS, default="bigan")
    a.add_argument("--steps", type=int, default=3)
    a.add_argument("--decay", type=float, default=0.05)
    a.add_argument("--data-dir", default=None, help="directory holding MNIST (default $ADVREP_DATA_DIR)")
    r = sub.add_parser("reference", help="replay them through the reference code (run with PyTensor)")
    r.add_argument("record", type=Path)
    r.add_argument("--reference-dir", type=Path, required=True)
    r.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ADVREP_DATA_DIR", "data")),
                   help="the folder whose mnist/ sub-folder the port reads (its BIGAN_MNIST_DIR)")
    r.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args(argv)
    if args.side == "advrep":
        advrep_side(args.out, args.kind, args.steps, args.decay, args.data_dir)
        return 0
    return reference_side(args.record.resolve(), args.reference_dir.resolve(), args.data_dir, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
