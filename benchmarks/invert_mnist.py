"""Inverting a trained BiGAN's generator on the MNIST test set (Creswell & Bharath, IEEE TNNLS 2018), and
ranking generators by how well they reconstruct the same held-out images.

    python benchmarks/invert_mnist.py --run RUN                       # 10k test images, 5000 steps each
    python benchmarks/invert_mnist.py --run RUN --compare RUN2 RUN3   # plus the generator comparison
    python benchmarks/invert_mnist.py --run /tmp/inv-bigan --quick    # smoke: 200 images, 100 steps
    python benchmarks/invert_mnist.py --run RUN --b-steps 500 --baseline-steps 500   # (a) in full; (b) and
                                              # the paper's loop shortened (speed and steps-to-reach only)

RUN is a trained BiGAN run directory (benchmarks/bigan_mnist.py makes one). Measured in one process:
  baseline  a plain loop following the paper's public code, on the first --baseline-n images: per batch
            of 500, z from the prior, RMSprop(lr 0.01) on z, loss = MSE - alpha * mean log p(z), G in eval
            mode with its weights still requiring gradients, loss.item() every step; z clipped to the
            support for a uniform prior (the paper's earlier version)
  (a)       advrep.inversion.invert with the same settings (random start) on --n images
  (b)       the same from the BiGAN's own encoder, z0 = E(x)
  reach     (b) run again for exactly the steps its trace needed to reach (a)'s final mean error
and with --compare, every listed generator (and RUN) inverted through the same --compare-n images.
MNIST is read from --data-dir or $ADVREP_DATA_DIR.
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
from advrep.data import load_run_dataset  # noqa: E402
from advrep.inversion import compare_generators, format_ranking, invert_method  # noqa: E402


def paper_loop(method, x: torch.Tensor, *, steps: int, lr: float, alpha: float, batch_size: int,
               seed: int) -> tuple[torch.Tensor, list[float]]:
    """Per-sample MSE [N] and the first batch's loss history, following the paper's code step for step."""
    G = method.nets["G"]
    G.eval()  # as in their find_z; G's parameters keep requires_grad=True, as there
    normal = torch.distributions.Normal(0.0, 1.0)
    torch.manual_seed(seed)
    errors, history = [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].reshape(-1, method.data_dim).to(z_device(method))
        z = method.sample_prior(xb.shape[0]).clone().requires_grad_(True)
        opt = torch.optim.RMSprop([z], lr=lr)
        for _ in range(steps):
            rec = F.mse_loss(G(z), xb)
            log_prob = normal.log_prob(z).mean(dim=1) if method.cfg.prior == "gaussian" else z.new_zeros(1)
            loss = rec - alpha * log_prob.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if method.cfg.prior == "uniform":
                with torch.no_grad():
                    z.clamp_(-1.0, 1.0)
            if start == 0:
                history.append(rec.item())
            else:
                rec.item()
        with torch.no_grad():
            errors.append((G(z) - xb).pow(2).mean(dim=1))
    G.zero_grad(set_to_none=True)
    return torch.cat(errors), history


def z_device(method) -> torch.device:
    return next(method.nets.parameters()).device


def first_reaching(trace: torch.Tensor, target: float) -> int | None:
    hit = (trace <= target).nonzero()
    return int(hit[0]) if hit.numel() else None


def fmt(mean: float, std: float) -> str:
    return f"{mean:.5f} ± {std:.5f}"


HEADER = ("| date | commit | generator | setting | images | steps | per-sample MSE (mean ± std) | wall | "
          "image-steps/s | machine |\n|---|---|---|---|---|---|---|---|---|---|")
COMPARE_HEADER = ("| date | commit | rank | run | method | prior | d | images | steps | "
                  "per-sample MSE (mean ± std) | wall | machine |\n" + "|---" * 12 + "|")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a trained BiGAN run directory")
    ap.add_argument("--n", type=int, default=10000, help="test images to invert (full: 10000)")
    ap.add_argument("--steps", type=int, default=5000, help="the paper's 5000")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=0.01, help="log-prior weight (their scripts: 0.01; "
                    "no effect for a uniform prior, whose log density is flat on its support)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--baseline-n", type=int, default=500, help="images through the paper's loop (0: skip)")
    ap.add_argument("--compare", nargs="*", default=[], metavar="RUN",
                    help="more generators to rank beside RUN")
    ap.add_argument("--compare-n", type=int, default=None, help="images for the comparison (default --n)")
    ap.add_argument("--compare-steps", type=int, default=None,
                    help="steps for the comparison (default --steps)")
    ap.add_argument("--quick", action="store_true", help="200 images, 100 steps, baseline on 100")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (every generator is loaded there)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--b-optimizer", default="rmsprop", choices=["rmsprop", "adam"],
                    help="optimiser for (b) (default: the paper's, as in (a))")
    ap.add_argument("--b-lr", type=float, default=None, help="learning rate for (b) (default --lr)")
    ap.add_argument("--b-steps", type=int, default=None,
                    help="steps for (b) (default --steps; fewer still gives the steps to reach (a)'s error "
                    "when it gets there within them)")
    ap.add_argument("--baseline-steps", type=int, default=None,
                    help="steps for the paper's loop (default --steps; fewer measures its speed only)")
    ap.add_argument("--reuse-a", default=None, metavar="JSON",
                    help="take (a) from an earlier run's invert_benchmark.json with the same settings instead of "
                    "running it again (its mean error is the target for (b); its time is the time ratio's)")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    if args.quick:
        args.n, args.steps, args.baseline_n = 200, 100, min(args.baseline_n, 100)
    if args.threads:
        torch.set_num_threads(args.threads)
    compare_n = args.compare_n or args.n
    b_steps = args.b_steps or args.steps
    baseline_steps = args.baseline_steps or args.steps
    compare_steps = args.compare_steps or args.steps

    method = load_model(args.run, device=args.device)
    if not (method.has_generator and method.has_encoder):
        raise SystemExit(f"--run {args.run} is a {method.cfg.method!r} run; it needs a generator and an "
                         "encoder (a BiGAN).")
    test = load_run_dataset(method.cfg, "test", data_dir=args.data_dir, run=args.run)
    # every generator to compare is loaded now, so a bad run directory fails before the long inversions
    runs = {args.run: method, **{run: load_model(run, device=args.device) for run in args.compare
                                 if run != args.run}}
    x = test.x[:args.n]
    common = dict(steps=args.steps, lr=args.lr, optimizer="rmsprop", batch_size=args.batch_size,
                  seed=args.seed, prior_weight=args.alpha if method.cfg.prior == "gaussian" else 0.0)
    # one-time costs (lazy imports on the first optimiser step, allocator warm-up) land in neither timing
    invert_method(method, x[:20], **{**common, "steps": 3})
    paper_loop(method, x[:20], steps=3, lr=args.lr, alpha=args.alpha, batch_size=args.batch_size,
               seed=args.seed)

    results: dict = {"run": args.run, "n": len(x), "steps": args.steps, "lr": args.lr, "alpha": args.alpha,
                     "batch_size": args.batch_size, "seed": args.seed, "threads": torch.get_num_threads(),
                     "b_optimizer": args.b_optimizer, "b_lr": args.b_lr or args.lr}
    if args.baseline_n:
        xb = x[:args.baseline_n]
        t0 = time.perf_counter()
        base_err, _ = paper_loop(method, xb, steps=baseline_steps, lr=args.lr, alpha=args.alpha,
                                 batch_size=args.batch_size, seed=args.seed)
        base_s = time.perf_counter() - t0
        results["baseline"] = {"n": len(xb), "steps": baseline_steps, "mse_mean": float(base_err.double().mean()),
                               "mse_std": float(base_err.double().std()), "seconds": base_s,
                               "image_steps_per_s": len(xb) * baseline_steps / base_s}
        base = results["baseline"]
        print(f"baseline (paper's loop): {fmt(base['mse_mean'], base['mse_std'])} on {len(xb)} images in "
              f"{base_s:.1f} s",
              flush=True)
        # the speed ratio: advrep on the same images and steps, right after the paper's loop
        same = invert_method(method, xb, init="prior", **{**common, "steps": baseline_steps})
        ours = len(xb) * same.steps_run / same.seconds
        results["speed"] = {"n": len(xb), "steps": baseline_steps, "paper_loop_image_steps_per_s":
                            results["baseline"]["image_steps_per_s"], "advrep_image_steps_per_s": ours,
                            "ratio": ours / results["baseline"]["image_steps_per_s"]}
        print(f"speed on the same {len(xb)} images x {baseline_steps} steps: advrep {ours:.0f} image-steps/s, "
              f"the paper's loop {results['baseline']['image_steps_per_s']:.0f}: "
              f"{results['speed']['ratio']:.2f}x", flush=True)

    def record(key: str, r) -> None:
        s = r.summary()
        results[key] = {**s, "steps": r.steps_run, "image_steps_per_s": len(x) * r.steps_run / r.seconds,
                        "start_mse": float(r.trace[0]), "final_trace": float(r.trace[-1])}
        print(f"{key}: {fmt(s['mse_mean'], s['mse_std'])} in {r.seconds:.1f} s "
              f"(start {float(r.trace[0]):.5f})", flush=True)

    if args.reuse_a:
        earlier = json.loads(Path(args.reuse_a).read_text())
        for key in ("run", "n", "steps", "lr", "alpha", "batch_size", "seed"):
            theirs, ours = earlier.get(key, results[key]), results[key]  # files from before "seed" was kept
            if key == "run":
                theirs, ours = Path(theirs).resolve(), Path(ours).resolve()
            if theirs != ours:
                raise SystemExit(f"--reuse-a {args.reuse_a}: its {key} is {theirs!r}, this run's is {ours!r}; "
                                 "run (a) again or match the settings.")
        results["a_random_start"] = {**earlier["a_random_start"], "reused_from": args.reuse_a}
        a_seconds, target = earlier["a_random_start"]["seconds"], earlier["reach"]["target"]
        print(f"(a) reused from {args.reuse_a}: final mean error {target:.5f} in {a_seconds:.1f} s", flush=True)
    else:
        a = invert_method(method, x, init="prior", **common)
        record("a_random_start", a)
        a_seconds, target = a.seconds, float(a.trace[-1])
        if args.baseline_n:
            results["a_on_baseline_images"] = float(a.mse[:args.baseline_n].double().mean())
    b_settings = {**common, "optimizer": args.b_optimizer, "lr": args.b_lr or args.lr}
    b = invert_method(method, x, init="encoder", **{**b_settings, "steps": b_steps})
    record("b_encoder_start", b)

    reach = first_reaching(b.trace, target)
    if reach is None:
        results["reach"] = {"reached": False, "target": target}
        print(f"(b) never reached (a)'s final mean error {target:.5f} within {b_steps} steps")
    else:
        r = invert_method(method, x, init="encoder", **{**b_settings, "steps": reach})
        results["reach"] = {"reached": True, "target": target, "steps": reach, "seconds": r.seconds,
                            "mse_mean": r.summary()["mse_mean"], "step_speedup": args.steps / max(reach, 1),
                            "time_speedup": a_seconds / r.seconds}
        print(f"(b) reaches (a)'s final {target:.5f} after {reach} steps, {r.seconds:.1f} s: "
              f"{results['reach']['step_speedup']:.1f}x fewer steps, {results['reach']['time_speedup']:.1f}x "
              "less time", flush=True)

    rows = []
    if args.compare:
        rows = compare_generators(runs, test.x[:compare_n], steps=compare_steps, lr=args.lr,
                                  optimizer="rmsprop", batch_size=args.batch_size, seed=args.seed)
        results["compare"] = {"n": compare_n, "steps": compare_steps, "ranking": rows}
        print(format_ranking(rows))

    out = Path(args.run) / "invert_benchmark.json"
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    cmd = "python benchmarks/invert_mnist.py " + " ".join(sys.argv[1:])
    print(f"wrote {out}\ncommand: {cmd}")
    if not args.no_write:
        _write_tables(results, rows, args, cmd)
    return 0


def _write_tables(results: dict, rows: list, args, cmd: str) -> None:
    today, sha, where = datetime.date.today(), commit(), machine()
    if args.device.startswith("cuda"):
        where += f", {torch.cuda.get_device_name()}"
    gen = f"{Path(args.run).name}"
    lines = []
    if "baseline" in results:
        r = results["baseline"]
        lines.append(f"| {today} | {sha} | {gen} | paper's loop (random start, RMSprop {args.lr}) | "
                     f"{r['n']} | {r['steps']} | {fmt(r['mse_mean'], r['mse_std'])} | {r['seconds']:.0f} s | "
                     f"{r['image_steps_per_s']:.0f} | {where} |")
    if "speed" in results:
        r = results["speed"]
        lines.append(f"| {today} | {sha} | {gen} | advrep on the paper's loop's images and steps: "
                     f"{r['ratio']:.2f}x its speed | {r['n']} | {r['steps']} | | | "
                     f"{r['advrep_image_steps_per_s']:.0f} | {where} |")
    b_opt = f"{'RMSprop' if args.b_optimizer == 'rmsprop' else 'Adam'} {args.b_lr or args.lr}"
    for key, label in (("a_random_start", f"(a) advrep, random start, RMSprop {args.lr}"),
                       ("b_encoder_start", f"(b) advrep, E(x) start, {b_opt}")):
        r = results[key]
        if "reused_from" in r:  # already in the table from the run that measured it
            continue
        lines.append(f"| {today} | {sha} | {gen} | {label} | {r['n']} | {r['steps']} | "
                     f"{fmt(r['mse_mean'], r['mse_std'])} | {r['seconds']:.0f} s | "
                     f"{r['image_steps_per_s']:.0f} | {where} |")
    reach = results["reach"]
    if reach["reached"]:
        lines.append(f"| {today} | {sha} | {gen} | (b) until (a)'s final {reach['target']:.5f}: "
                     f"{reach['step_speedup']:.1f}x fewer steps, {reach['time_speedup']:.1f}x sooner | "
                     f"{args.n} | {reach['steps']} | {reach['mse_mean']:.5f} | {reach['seconds']:.0f} s | | "
                     f"{where} |")
    else:
        lines.append(f"| {today} | {sha} | {gen} | (b) never reached (a)'s final {reach['target']:.5f} | "
                     f"{results['b_encoder_start']['n']} | {results['b_encoder_start']['steps']} | | | | {where} |")
    title = "## Inverting a BiGAN generator on the MNIST test set (Creswell & Bharath)"
    for line in lines:
        append_row(REPO / "BENCHMARKS.md", f"{title}\n\n{HEADER}", line)
    if rows:
        for r in rows:
            row = (f"| {today} | {sha} | {r['rank']} | {Path(r['name']).name} | {r['method']} | "
                   f"{r['prior']} | {r['latent_dim']} | {r['n']} | {results['compare']['steps']} | "
                   f"{fmt(r['mse_mean'], r['mse_std'])} | {r['seconds']:.0f} s | {where} |")
            append_row(REPO / "BENCHMARKS.md", "## Generators ranked by inversion error, MNIST test\n\n"
                       + COMPARE_HEADER, row)
    print(f"wrote rows to BENCHMARKS.md ({cmd})")


if __name__ == "__main__":
    sys.exit(main())
