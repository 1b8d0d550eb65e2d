"""BigBiGAN on MNIST as 28x28 images: does the paper's finding hold here, that the unary scores and the
stochastic encoder help? Three runs on the same budget, then the same evaluation for each:

    (a) BigBiGAN: unary F(x), H(z) scores + joint score, stochastic encoder (configs/bigbigan_mnist.toml)
    (b) joint score only (unary_scores=false)
    (c) deterministic encoder (stochastic_encoder=false)

Each row: linear probe (plain and BN+CReLU heads) and 1NN on the encoder's pooled features and on z
(10k test vs 60k train), domain FID/KID of 10k EMA samples against the test set in a domain
classifier's features (its SHA256 is printed and written with the numbers), and the training wall time.
The raw-pixel floor and the domain-FID sanity checks (real test vs train ~ 0; growing with noise, blur)
are printed first.

    python benchmarks/bigbigan_mnist.py                     # all three rows, 12 + 3 epochs each
    python benchmarks/bigbigan_mnist.py --rows a --epochs 6 --decay-epochs 2
    python benchmarks/bigbigan_mnist.py --quick --no-write  # smoke: 1 epoch on 2,048 images

MNIST is read from --data-dir or $ADVREP_DATA_DIR (here: ../shared/data).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import append_row, commit, machine  # noqa: E402

from advrep.checkpoint import load_model  # noqa: E402
from advrep.config import parse_overrides  # noqa: E402
from advrep.data import Dataset, load_dataset  # noqa: E402
from advrep.eval import (  # noqa: E402
    bn_crelu,
    domain_fid,
    feature_stats,
    feature_stats_of,
    frechet_distance,
    knn_accuracy,
    linear_probe,
    load_classifier,
    sample_batches,
    save_classifier,
    train_classifier,
)
from advrep.evaluate import evaluate, format_table  # noqa: E402
from advrep.methods import make_config  # noqa: E402
from advrep.train import train  # noqa: E402

ROWS = {
    "a": ("unary + joint scores, stochastic E", {}),
    "b": ("joint score only", {"unary_scores": False}),
    "c": ("deterministic E", {"stochastic_encoder": False}),
}
TITLE = "## BigBiGAN on MNIST images: unary scores and the stochastic encoder"
INTRO = """Three runs on one budget (`configs/bigbigan_mnist.toml`: DCGAN-style G/E, spectrally normalised
F/H/J discriminator, hinge losses, EMA generator). Probe = L-BFGS logistic regression on the 60k training
features, scored on the 10k test images; BN+CReLU = BigBiGAN's head (parameter-free batch norm with the
training statistics, then [ReLU(h), ReLU(-h)]). 1NN is test vs train. Domain FID/KID: 10k EMA samples vs
the 10k test images in the penultimate features of advrep's MNIST domain classifier (hash column) --
not comparable with Inception FIDs. Raw pixels are the floor."""
HEADER = ("| date | commit | run | epochs | probe E feats | BN+CReLU E feats | probe z | BN+CReLU z "
          "| 1NN E feats | 1NN z | domain FID | domain KID x1e3 | train wall | classifier | machine |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
CHECK_TITLE = "### Domain FID sanity checks (MNIST)"
CHECK_HEADER = ("| date | commit | classifier | test acc | test vs train | noise 0.1 | noise 0.2 | noise 0.4 "
                "| blur x1 | blur x2 | blur x3 |\n|---|---|---|---|---|---|---|---|---|---|---|")


def blur(x: torch.Tensor) -> torch.Tensor:
    """One pass of a 3x3 binomial blur, [N, C, H, W] -> same."""
    k = torch.tensor([1.0, 2.0, 1.0])
    kernel = (k.outer(k) / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


def domain_classifier(args, train_set: Dataset, test_set: Dataset):
    folder = Path(args.classifier)
    if (folder / "classifier.json").is_file():
        print(f"domain classifier: loading {folder}")
        return load_classifier(folder)
    print(f"domain classifier: training {args.classifier_epochs} epoch(s) into {folder}", flush=True)
    t0 = time.perf_counter()
    model, info = train_classifier(train_set.x, train_set.y, test_x=test_set.x, test_y=test_set.y,
                                   epochs=args.classifier_epochs, seed=0)
    info["train_s"] = time.perf_counter() - t0
    save_classifier(model, folder, {"data": "mnist", **info})
    return load_classifier(folder)


def fid_checks(model, test_set: Dataset, train_set: Dataset) -> dict[str, float]:
    """Domain FID of the real test set, then of corrupted copies, against the training set."""
    ref = feature_stats_of(model.features, train_set.x)

    def fid(x):
        s = feature_stats_of(model.features, x)
        return frechet_distance(s.mean, s.cov, ref.mean, ref.cov)

    out = {"test_vs_train": fid(test_set.x)}
    noise = torch.randn(test_set.x.shape, generator=torch.Generator().manual_seed(0))
    for sigma in (0.1, 0.2, 0.4):
        out[f"noise_{sigma}"] = fid((test_set.x + sigma * noise).clamp(0, 1))
    x = test_set.x
    for k in (1, 2, 3):
        x = blur(x)
        out[f"blur_x{k}"] = fid(x)
    return out


def raw_floor(train_set: Dataset, test_set: Dataset, cache: Path | None) -> dict[str, float]:
    """1NN and both probes on raw pixels; cached in ``cache`` (minutes of work, the same every time)."""
    if cache is not None and cache.is_file():
        return json.loads(cache.read_text())
    r, q = train_set.flat(), test_set.flat()
    mean, std = feature_stats(r)
    out = {"1nn_test.pixels": knn_accuracy(r, train_set.y, q, test_set.y, k=1),
            "probe_test.pixels": linear_probe(r, train_set.y, q, test_set.y),
            "probe_bncrelu_test.pixels": linear_probe(bn_crelu(r, mean, std), train_set.y,
                                                      bn_crelu(q, mean, std), test_set.y, standardize=False)}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(out, indent=2) + "\n")
    return out


def run_row(key: str, args, train_set: Dataset, test_set: Dataset, clf, clf_info) -> dict:
    label, settings = ROWS[key]
    cfg = make_config("bigbigan", file=str(REPO / "configs" / "bigbigan_mnist.toml"),
                      overrides=parse_overrides(args.set), epochs=args.epochs, decay_epochs=args.decay_epochs,
                      data_dir=args.data_dir, **settings)
    run_dir = Path(args.run_root) / f"bigbigan-{key}-{args.epochs}+{args.decay_epochs}"
    print(f"\n=== ({key}) {label}: {run_dir}", flush=True)
    t0 = time.perf_counter()
    summary = train(cfg, run_dir, resume=args.resume, train_set=train_set, test_set=test_set)
    train_s = time.perf_counter() - t0
    method = load_model(run_dir)
    t0 = time.perf_counter()
    results = evaluate(method, train_set, test_set, probe=True, protocols=("test",))
    rng = torch.Generator().manual_seed(0)
    samples = sample_batches(lambda k: method.generate(method.sample_prior(k, rng)), args.samples)
    results.update(domain_fid(clf.features, samples, test_set.x, classifier_sha256=clf_info["sha256"]))
    results.update(eval_s=time.perf_counter() - t0, train_wall_s=train_s,
                   images_per_s=summary["images_per_s"],
                   s_per_epoch=train_s / max(1, args.epochs + args.decay_epochs))
    (run_dir / "benchmark.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(format_table({k: v for k, v in results.items() if not isinstance(v, str)}))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="abc", help="which runs, e.g. 'abc' or 'a'")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--decay-epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=10000, help="generated images for domain FID")
    ap.add_argument("--classifier", default=str(REPO / "runs" / "classifiers" / "mnist"))
    ap.add_argument("--classifier-epochs", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 epoch on 2,048 images, small evaluation")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--run-root", default=str(REPO / "runs"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for all of it (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        args.set = [f"threads={args.threads}", *args.set]
    train_set = load_dataset("mnist", "train", data_dir=args.data_dir)
    test_set = load_dataset("mnist", "test", data_dir=args.data_dir)
    if args.quick:
        args.epochs, args.decay_epochs, args.samples, args.classifier_epochs = 1, 0, 1000, 1
        args.classifier = str(Path(args.run_root) / "classifiers" / "mnist-quick")
        args.run_root = str(Path(args.run_root) / "quick")
        train_set, test_set = train_set.subset(slice(0, 2048)), test_set.subset(slice(0, 1000))
        args.set = ["eval_every=0", "sample_every=1", *args.set]
    clf, info = domain_classifier(args, train_set, test_set)
    print(f"classifier sha256 {info['sha256']}  test accuracy {info.get('test_accuracy', float('nan')):.2f}%")
    checks = fid_checks(clf, test_set, train_set)
    print("domain FID against the training set:", json.dumps({k: round(v, 3) for k, v in checks.items()}))
    floor_cache = None if args.quick else Path(args.run_root) / "mnist-raw-floor.json"
    floor = raw_floor(train_set, test_set, floor_cache)
    print("raw-pixel floor:", json.dumps({k: round(v, 2) for k, v in floor.items()}))
    results = {key: run_row(key, args, train_set, test_set, clf, info) for key in args.rows}

    cmd = "python benchmarks/bigbigan_mnist.py " + " ".join(sys.argv[1:])
    today, rev, sha = datetime.date.today(), commit(), info["sha256"][:12]
    ep = f"{args.epochs}+{args.decay_epochs}"
    print(f"\n{'run':<40} {'probe E':>8} {'BN+CReLU':>9} {'1NN E':>7} {'dFID':>8} {'train':>8}")
    print(f"{'raw pixels':<40} {floor['probe_test.pixels']:8.2f} {floor['probe_bncrelu_test.pixels']:9.2f} "
          f"{floor['1nn_test.pixels']:7.2f}")
    for key, r in results.items():
        print(f"{'(' + key + ') ' + ROWS[key][0]:<40} {r['probe_test.penultimate']:8.2f} "
              f"{r['probe_bncrelu_test.penultimate']:9.2f} {r['1nn_test.penultimate']:7.2f} "
              f"{r['domain_fid']:8.3f} {r['train_wall_s'] / 60:7.1f}m")
    print(f"command: {cmd}")
    if args.no_write:
        return 0
    path = REPO / "BENCHMARKS.md"
    c, acc = checks, info.get("test_accuracy", float("nan"))
    section = f"{TITLE}\n\n{INTRO}\n\nReproduce: `{cmd}`\n\n{HEADER}"
    append_row(path, section,
               f"| {today} | {rev} | raw pixels | - | {floor['probe_test.pixels']:.2f} "
               f"| {floor['probe_bncrelu_test.pixels']:.2f} | - | - | {floor['1nn_test.pixels']:.2f} | - "
               f"| {checks['test_vs_train']:.4g} (real test) | - | - | {sha} | {machine()} |",
               unless=f"| raw pixels | - | {floor['probe_test.pixels']:.2f} ")
    rows = []
    for key, r in results.items():
        rows.append(f"| {today} | {rev} | ({key}) {ROWS[key][0]} | {ep} | {r['probe_test.penultimate']:.2f} "
                    f"| {r['probe_bncrelu_test.penultimate']:.2f} | {r['probe_test.z']:.2f} "
                    f"| {r['probe_bncrelu_test.z']:.2f} | {r['1nn_test.penultimate']:.2f} "
                    f"| {r['1nn_test.z']:.2f} | {r['domain_fid']:.4g} | {1e3 * r['domain_kid']:.3g} "
                    f"| {r['train_wall_s'] / 60:.1f} min "
                    f"| {sha} | {machine()} |")
    for row in rows:
        append_row(path, section, row)
    append_row(path, f"{CHECK_TITLE}\n\nDomain FID of real and corrupted MNIST test images against the training "
               "images (noise: Gaussian, clipped to [0, 1]; blur: repeated 3x3 binomial filter).\n\n"
               + CHECK_HEADER,
               f"| {today} | {rev} | {sha} | {acc:.2f} "
               f"| {c['test_vs_train']:.4g} "
               f"| {c['noise_0.1']:.4g} | {c['noise_0.2']:.4g} | {c['noise_0.4']:.4g} | {c['blur_x1']:.4g} "
               f"| {c['blur_x2']:.4g} | {c['blur_x3']:.4g} |", unless=f"| {sha} | {acc:.2f} |")
    print(f"wrote rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
