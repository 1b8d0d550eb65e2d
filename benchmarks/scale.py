"""Scaling out: BiGAN's training throughput for 1 and 2 processes (torchrun, gloo on the CPU) and for fp32
against bf16, and the 1NN accuracy of fp32 and bf16 runs after the same number of epochs.

    python benchmarks/scale.py --data-dir ../shared/data            # MNIST, the paper's MLPs (see below)
    python benchmarks/scale.py --quick                              # digits, tiny nets: a smoke check

Every run is the real command line, `advrep train bigan --config configs/bigan_mnist.toml`, started as a
user would: plain for 1 process, `python -m torch.distributed.run --nproc_per_node=2` for 2 (gloo,
loopback). The cores are shared out evenly: 1 process gets --cores threads, 2 processes get half each.

* throughput: images per second over the training steps only (from the timestamps in metrics.jsonl, so
  the final evaluation and the checkpoints are not counted), for (1 proc, fp32), (1, bf16), (2, fp32),
  (2, bf16); the 2-process runs train --throughput-epochs epochs;
* accuracy: 1NN (10k test vs 60k train, exact) on the encoder's penultimate layer and on z after
  --epochs epochs at constant learning rate, for fp32 and bf16 in one process, once per --seeds seed.

Prints a markdown table and the command; --write appends it to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from common import commit, machine  # noqa: E402


def run_training(run_dir: Path, *, procs: int, precision: str, epochs: int, seed: int, threads: int,
                 quick: bool, data_dir: str | None) -> dict:
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    if quick:
        recipe = ["--data", "digits", "--set", "hidden=32", "--set", "latent_dim=4", "--set", "batch_size=64"]
    else:
        recipe = ["--config", str(REPO / "configs" / "bigan_mnist.toml")]
        if data_dir:
            recipe += ["--data-dir", data_dir]
    settings = {"epochs": epochs, "decay_epochs": 0, "eval_every": 0, "sample_every": 0,
                "log_every": 2 if quick else 25,
                "progress": "false", "threads": threads, "seed": seed}
    args = ["-m", "advrep", "train", "bigan", *recipe, "--precision", precision, "--run-dir", str(run_dir),
            *[f"--set={k}={v}" for k, v in settings.items()]]
    launcher = [sys.executable] if procs == 1 else [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    if procs > 1 and Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    print(f"  {' '.join(launcher + args)}", flush=True)
    started = time.perf_counter()
    subprocess.run(launcher + args, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"procs": procs, "precision": precision, "epochs": epochs, "seed": seed, "threads": threads,
            "images_per_s": training_images_per_s(run_dir), "wall_s": wall,
            **{k: v for k, v in summary.items() if k.startswith("1nn_")}}


def training_images_per_s(run_dir: Path) -> float:
    """Images per second over consecutive log records of the same epoch: training steps only."""
    cfg = json.loads((run_dir / "config.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss_D" in r]
    done, seconds = 0, 0.0
    for a, b in zip(steps, steps[1:], strict=False):
        if a["epoch"] == b["epoch"]:
            done += b["step"] - a["step"]
            seconds += b["time"] - a["time"]
    return done * cfg["batch_size"] / seconds if seconds > 0 else float("nan")


def mean_spread(rows: list[dict], key: str) -> str:
    """Mean over seeds, with the standard deviation when there are several."""
    vals = [r[key] for r in rows if key in r]
    if not vals:
        return "-"
    spread = f" ± {statistics.stdev(vals):.2f}" if len(vals) > 1 else ""
    return f"{statistics.mean(vals):.2f}{spread}"


def table(rows: list[dict]) -> str:
    lines = ["| processes | precision | threads each | epochs | seeds | img/s (training steps) | "
             "1NN penultimate, test | 1NN z, test | wall |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["procs"], r["precision"], r["epochs"]), []).append(r)
    for (procs, precision, epochs), rs in groups.items():
        speed = statistics.mean(r["images_per_s"] for r in rs)
        lines.append(f"| {procs} | {precision} | {rs[0]['threads']} | {epochs} | "
                     f"{','.join(str(r['seed']) for r in rs)} | {speed:.0f} | "
                     f"{mean_spread(rs, '1nn_test.penultimate')} | {mean_spread(rs, '1nn_test.z')} | "
                     f"{sum(r['wall_s'] for r in rs) / 60:.1f} min |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10, help="epochs of the fp32 and bf16 accuracy runs")
    ap.add_argument("--throughput-epochs", type=int, default=1, help="epochs of the 2-process runs")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds of the accuracy runs")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data-dir", default=None, help="directory holding mnist/ (default $ADVREP_DATA_DIR)")
    ap.add_argument("--run-root", default=str(REPO / "runs" / "scale"))
    ap.add_argument("--quick", action="store_true", help="digits, tiny networks, 1 epoch: a smoke check")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.throughput_epochs = 1, 1
    seeds = [int(s) for s in args.seeds.split(",")]
    root = Path(args.run_root)
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty: remove it or pass another --run-root.")
    host = machine(args.cores)
    plan = [(1, p, args.epochs, s) for s in seeds for p in ("fp32", "bf16")]
    plan += [(2, p, args.throughput_epochs, seeds[0]) for p in ("fp32", "bf16")]
    rows = []
    for procs, precision, epochs, seed in plan:
        print(f"{procs} process(es), {precision}, {epochs} epochs, seed {seed}", flush=True)
        rows.append(run_training(root / f"p{procs}-{precision}-s{seed}", procs=procs, precision=precision,
                                 epochs=epochs, seed=seed, threads=max(1, args.cores // procs),
                                 quick=args.quick, data_dir=args.data_dir))
        print(f"  {rows[-1]['images_per_s']:.0f} img/s, " + ", ".join(
            f"{k} {v:.2f}" for k, v in rows[-1].items() if k.startswith("1nn_")), flush=True)
    (root / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    text = table(rows)
    cmd = "python benchmarks/scale.py " + " ".join(sys.argv[1:])
    print(text)
    print(f"machine: {host}\ncommand: {cmd}")
    if args.write:
        path = REPO / "BENCHMARKS.md"
        old = path.read_text() if path.exists() else ""
        data = "digits (quick)" if args.quick else "MNIST, BiGAN paper MLPs (configs/bigan_mnist.toml)"
        block = (f"\n### Scaling out: {datetime.date.today()}, commit {commit()}, {data}\n\n{host}.\n"
                 f"Command: `{cmd}`\n\n{text}\n")
        path.write_text(old + block)
        print("appended to BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
