"""Training speed of our BiGAN MNIST step, side by side with a textbook PyTorch step and the machine's
own matrix-multiply rate, all measured in one run (issue #9, items 1, 2 and 5).

    python benchmarks/train_speed.py                 # ~4-5 min on 2 busy cores: speed + peak memory
    python benchmarks/train_speed.py --write         # ... and append a row to BENCHMARKS.md
    python benchmarks/train_speed.py --quick         # a smoke check (~1 min): 2 rounds, few steps

What is timed, interleaved round by round (ours, textbook, ours in bf16, matmul, ours, ...) so a load
spike from other processes hits every contender alike; medians over rounds are reported:

* ours: ``advrep.train.loop.train_step`` on ``make_config("bigan")`` (the paper's MLPs, hidden 1024,
  latent 50, batch 128): one forward pass of G, E and D on both pairs, then D's backward and E/G's
  backward from that same graph (the simultaneous update of the BiGAN paper);
* textbook: the same networks (deep copies of ours, so both start from identical weights), the same
  losses and Adam settings, written the way most PyTorch GAN code is: a D step (G(z).detach(),
  E(x).detach(), D on both pairs, BCE, backward, step) followed by an E/G step with fresh forward
  passes through G, E and D and flipped labels (the 'inverse' objective, our default);
* textbook + fused Adam: the same textbook step with the fused Adam our loop uses
  (``make_optimizers``), so the table separates the gain of the shared forward pass from the optimiser's;
* ours in bf16: ``train_step(..., precision=Precision("bf16", "cpu"))`` (autocast; fp32 weights and Adam);
* matmul: fp32 [N, N] @ [N, N] (N = 2048), the rate the machine reaches on one large, ideal GEMM.

FLOP count of our step (``step_flops``; matmuls only, batch norm and activations ignored; a Linear of
shape in -> out costs 2*B*in*out per forward, the same again for its input gradient and again for its
weight gradient, each counted only where the step needs it):
  forward  G (z->H, skip z->H, H->H, H->784), E (784->H, H->H, H->50), D twice (784->H, z 50->H, H->H, H->1);
  D's backward: weight gradients of every D layer for both pairs, input gradients of D's out and fc2;
  E/G's backward: input gradients through D only along the paths to E(x) (z_proj, real pair) and G(z)
  (fc1, fc2, out, fake pair), then weight gradients of every E and G layer and their input gradients
  except at the first layers (whose inputs, x and z, are data).
Achieved GFLOP/s = that count x steps/s; its share of the matmul rate is the fraction of the machine's
best-case GEMM throughput the step turns into useful work.

Peak resident memory (ru_maxrss) is measured in two fresh subprocesses so their peaks stay separate:
a training run (full MNIST train + test in memory as ``advrep.train`` holds it, the networks, Adam,
``--memory-steps`` steps) and an evaluation (``advrep.evaluate.evaluate`` on MNIST: batch-norm refresh,
features of 70k images, exact 1NN and the linear probes, test protocol).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import append_row, commit, machine  # noqa: E402

from advrep.data import load_dataset  # noqa: E402
from advrep.methods import build_method, make_config  # noqa: E402
from advrep.train.loop import make_optimizers, train_step  # noqa: E402
from advrep.train.precision import Precision  # noqa: E402

MNIST_SHAPE = (1, 28, 28)


def step_flops(batch: int, *, x_dim: int = 784, latent: int = 50, hidden: int = 1024) -> dict[str, int]:
    """Matmul FLOPs of one of our BiGAN MLP steps, by part (see the module docstring)."""
    X, L, H = x_dim, latent, hidden
    g = [(L, H), (L, H), (H, H), (H, X)]  # G: fc1, skip, fc2, out
    e = [(X, H), (H, H), (H, L)]  # E: fc1, fc2, out
    d = [(X, H), (L, H), (H, H), (H, 1)]  # D: fc1, z_proj, fc2, out

    def mm(layers):  # one matmul per layer, 2*B*in*out
        return sum(2 * batch * i * o for i, o in layers)

    forward = mm(g) + mm(e) + 2 * mm(d)
    d_backward = 2 * mm(d) + 2 * mm([(H, 1), (H, H)])  # weight grads (both pairs) + input grads out, fc2
    eg_backward = (mm([(H, 1), (L, H)])  # real pair: D's out, then z_proj's input (E(x))
                   + mm([(H, 1), (H, H), (X, H)])  # fake pair: D's out, fc2, fc1's input (G(z))
                   + mm(e) + mm([(H, L), (H, H)])  # E: weight grads, input grads of out and fc2
                   + mm(g) + mm([(H, X), (H, H)]))  # G: weight grads, input grads of out and fc2
    return {"forward": forward, "d_backward": d_backward, "eg_backward": eg_backward,
            "total": forward + d_backward + eg_backward}


def textbook_losses(real: torch.Tensor, fake: torch.Tensor, *, flip: bool) -> torch.Tensor:
    """BCE with explicit labels, halved like ours: D labels the encoder pair 1 and the generator pair 0;
    the E/G step flips them (the 'inverse' objective)."""
    one, zero = torch.ones_like(real), torch.zeros_like(fake)
    if flip:
        one, zero = zero, one
    return 0.5 * (F.binary_cross_entropy_with_logits(real, one) + F.binary_cross_entropy_with_logits(fake, zero))


class Textbook:
    """The alternating step most PyTorch GAN code uses, on deep copies of our networks."""

    def __init__(self, method, cfg, *, fused: bool = False):
        self.G, self.E, self.D = (copy.deepcopy(method.nets[k]) for k in ("G", "E", "D"))
        adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, fused=fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), **adam)
        self.opt_eg = torch.optim.Adam([*self.E.parameters(), *self.G.parameters()], **adam)
        self.latent = cfg.latent_dim

    def step(self, x: torch.Tensor, rng: torch.Generator) -> None:
        x = x.reshape(x.shape[0], -1)  # [B, 784]
        z = torch.rand(x.shape[0], self.latent, generator=rng) * 2 - 1  # [B, 50], uniform prior
        # D step: G and E run forward, their outputs are detached.
        x_fake, z_real = self.G(z).detach(), self.E(x).detach()
        loss_d = textbook_losses(self.D(x, z_real), self.D(x_fake, z), flip=False)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        # E/G step: fresh forward passes through all three networks, flipped labels.
        loss_eg = textbook_losses(self.D(x, self.E(x)), self.D(self.G(z), z), flip=True)
        self.opt_eg.zero_grad()
        loss_eg.backward()
        self.opt_eg.step()


def matmul_gflops(n: int, reps: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def timed(fn, steps: int) -> float:
    """Seconds for ``steps`` calls of fn."""
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t0


def speed(args) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = make_config("bigan", image_shape=list(MNIST_SHAPE), batch_size=args.batch_size)
    data = load_dataset("mnist", "train", data_dir=args.data_dir)
    batches = [data.x[i * cfg.batch_size:(i + 1) * cfg.batch_size] for i in range(16)]  # [B, 1, 28, 28]

    def ours(precision: str):
        method = build_method(cfg, MNIST_SHAPE)
        method.nets.train()
        opts = make_optimizers(method, cfg)
        params = {name: method.parameters_of(name) for name in method.optimizers}
        prec, rng, count = Precision(precision, "cpu"), torch.Generator().manual_seed(1), [0]

        def one():
            train_step(method, opts, params, batches[count[0] % len(batches)], None, rng, step=count[0],
                       precision=prec)
            count[0] += 1
        return method, one

    method, ours_fp32 = ours("fp32")
    _, ours_bf16 = ours("bf16")
    def textbook(fused: bool):
        book, rng, count = Textbook(method, cfg, fused=fused), torch.Generator().manual_seed(1), [0]

        def one():
            book.step(batches[count[0] % len(batches)], rng)
            count[0] += 1
        return one

    # textbook_fused: the textbook step with our fused Adam, to separate the two sources of speed
    # (one shared forward pass vs. the optimiser).
    contenders = {"ours": ours_fp32, "textbook": textbook(False), "textbook_fused": textbook(True),
                  "ours_bf16": ours_bf16}
    for fn in contenders.values():  # warm-up: allocator, autocast caches, Adam state
        timed(fn, 2)
    # The matmul work each step really runs, counted by torch (a check on step_flops, and the
    # textbook's extra forward passes made visible).
    counted = {}
    for name in ("ours", "textbook"):
        with FlopCounterMode(display=False) as counter:
            contenders[name]()
        counted[name] = counter.get_total_flops()
    seconds: dict[str, list[float]] = {k: [] for k in contenders}
    gemm: list[float] = []
    for r in range(args.rounds):
        for name, fn in contenders.items():
            seconds[name].append(timed(fn, args.steps))
        gemm.append(matmul_gflops(args.matmul_n, args.matmul_reps))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {args.steps * cfg.batch_size / s[-1]:.0f} img/s" for k, s in seconds.items())
            + f", matmul {gemm[-1]:.1f} GFLOP/s", flush=True)
    ips = {k: args.steps * cfg.batch_size / statistics.median(v) for k, v in seconds.items()}
    # Ratios per round (the same load for both), then their median.
    ratio = statistics.median(b / a for a, b in zip(seconds["ours"], seconds["textbook"]))
    ratio_fused = statistics.median(b / a for a, b in zip(seconds["ours"], seconds["textbook_fused"]))
    bf16_ratio = statistics.median(a / b for a, b in zip(seconds["ours"], seconds["ours_bf16"]))
    flops = step_flops(cfg.batch_size)
    achieved = statistics.median(flops["total"] * args.steps / s / 1e9 for s in seconds["ours"])
    shares = [flops["total"] * args.steps / s / 1e9 / g for s, g in zip(seconds["ours"], gemm)]
    return {"batch": cfg.batch_size, "ours_img_s": ips["ours"], "textbook_img_s": ips["textbook"],
            "ratio": ratio, "textbook_fused_img_s": ips["textbook_fused"], "ratio_fused": ratio_fused,
            "bf16_img_s": ips["ours_bf16"], "bf16_speedup": bf16_ratio,
            "matmul_gflops": statistics.median(gemm), "step_gflop": flops["total"] / 1e9,
            "achieved_gflops": achieved, "matmul_share": statistics.median(shares),
            "counted_ours_gflop": counted["ours"] / 1e9, "counted_textbook_gflop": counted["textbook"] / 1e9}


def child(kind: str, args) -> None:
    """Runs in a fresh process; prints {"peak_rss_mb": ...} as its last line."""
    torch.manual_seed(0)
    train = load_dataset("mnist", "train", data_dir=args.data_dir)
    test = load_dataset("mnist", "test", data_dir=args.data_dir)
    cfg = make_config("bigan", image_shape=list(MNIST_SHAPE))
    method = build_method(cfg, MNIST_SHAPE)
    t0 = time.perf_counter()
    if kind == "train":
        opts = make_optimizers(method, cfg)
        params = {name: method.parameters_of(name) for name in method.optimizers}
        rng, x_all = torch.Generator().manual_seed(0), train.x
        method.nets.train()
        for step in range(args.memory_steps):
            idx = torch.randint(len(train), (cfg.batch_size,), generator=rng)
            train_step(method, opts, params, x_all[idx], None, rng, step=step)
    else:
        from advrep.evaluate import evaluate
        evaluate(method, train, test, probe=not args.quick, protocols=("test",))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"peak_rss_mb": rss_mb, "seconds": time.perf_counter() - t0}))


def peak_rss(kind: str, args) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", kind, "--memory-steps", str(args.memory_steps)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"memory subprocess {kind!r} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


COLUMNS = ["date", "commit", "batch", "ours img/s (fp32)", "textbook img/s (fp32)", "ours / textbook",
           "textbook + fused Adam img/s", "ours / that", "ours bf16 img/s", "bf16 speed-up", "matmul GFLOP/s",
           "step GFLOP", "achieved GFLOP/s", "share of matmul", "peak RSS train", "peak RSS eval", "machine",
           "command"]
HEADER = """## Training speed: our BiGAN step vs a textbook step, same run (benchmarks/train_speed.py)

Images/s are medians over interleaved rounds; the ratio is the median of per-round ratios. The step's
FLOPs are counted analytically (matmuls only; see the script's docstring). Peak RSS: ru_maxrss of a
fresh process (training: MNIST in memory + N steps; evaluation: features, 1NN and probes on MNIST).

""" + "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=12, help="steps per contender per round")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--matmul-reps", type=int, default=4)
    ap.add_argument("--memory-steps", type=int, default=50)
    ap.add_argument("--no-memory", action="store_true", help="skip the two peak-RSS subprocesses")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 3 steps; evaluation without probes")
    ap.add_argument("--data-dir", default=os.environ.get("ADVREP_DATA_DIR"))
    ap.add_argument("--write", action="store_true", help="append a row to BENCHMARKS.md")
    ap.add_argument("--child", choices=["train", "eval"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args)
        return 0
    if args.quick:
        args.rounds, args.steps, args.matmul_reps, args.memory_steps = 2, 3, 2, 5
    command = "python " + " ".join([Path(__file__).relative_to(REPO).as_posix(), *sys.argv[1:]])
    r = speed(args)
    mem = {} if args.no_memory else {k: peak_rss(k, args) for k in ("train", "eval")}
    print(f"\nours (fp32)       {r['ours_img_s']:8.0f} img/s   batch {r['batch']}")
    print(f"textbook (fp32)   {r['textbook_img_s']:8.0f} img/s   ours/textbook {r['ratio']:.2f}x (goal >= 1.3)")
    print(f"textbook + fused Adam {r['textbook_fused_img_s']:4.0f} img/s   ours/that {r['ratio_fused']:.2f}x")
    print(f"ours (bf16)       {r['bf16_img_s']:8.0f} img/s   bf16/fp32 {r['bf16_speedup']:.2f}x")
    print(f"matmul {args.matmul_n}^3 fp32 {r['matmul_gflops']:.1f} GFLOP/s; our step {r['step_gflop']:.2f} GFLOP "
          f"-> {r['achieved_gflops']:.1f} GFLOP/s = {100 * r['matmul_share']:.0f}% of matmul (goal >= 60%)")
    print(f"matmul work per step counted by torch: ours {r['counted_ours_gflop']:.2f} GFLOP, "
          f"textbook {r['counted_textbook_gflop']:.2f} GFLOP")
    for k, v in mem.items():
        print(f"peak RSS {k}: {v['peak_rss_mb']:.0f} MB ({v['seconds']:.0f} s)")
    print(f"command: {command}")
    if args.write:
        rss = {k: f"{v['peak_rss_mb']:.0f} MB" for k, v in mem.items()}
        cells = [datetime.date.today(), commit(), r["batch"], f"{r['ours_img_s']:.0f}",
                 f"{r['textbook_img_s']:.0f}", f"{r['ratio']:.2f}x", f"{r['textbook_fused_img_s']:.0f}",
                 f"{r['ratio_fused']:.2f}x", f"{r['bf16_img_s']:.0f}", f"{r['bf16_speedup']:.2f}x",
                 f"{r['matmul_gflops']:.1f}", f"{r['step_gflop']:.2f}", f"{r['achieved_gflops']:.1f}",
                 f"{100 * r['matmul_share']:.0f}%", f"{rss.get('train', '-')} ({args.memory_steps} steps)",
                 rss.get("eval", "-"), machine(), f"`{command}`"]
        row = "| " + " | ".join(str(c) for c in cells) + " |"
        append_row(REPO / "BENCHMARKS.md", HEADER, row)
        print("appended to BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
