"""Time to quality (issue #9, item 3): 1NN accuracy of training runs against wall time, as a PNG plot and
a markdown table, read from each run's metrics.jsonl (never retrains anything).

    python benchmarks/time_to_quality.py /tmp/bench/bigan-30+15 --out bench-out/ttq
    python benchmarks/time_to_quality.py runs/a runs/b --feature 1nn_test.z_pre --target 92.10
    python benchmarks/time_to_quality.py runs/a --write   # also append the table to BENCHMARKS.md

Every ``"kind": "eval"`` line of metrics.jsonl carries ``time`` (seconds of training since the run
started, evaluations included) and the feature's accuracy. A resumed run restarts its clock, so times
that go backwards are continued from the last time before the restart. The table gives, per run, each
evaluation and the first time the run reached ``--target`` (97.39: the BiGAN paper's table 1, 1NN on
the encoder's penultimate layer, test vs train; the reference took 30 minutes on a Titan X).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from advrep.inversion.lineplot import line_plot  # noqa: E402

PAPER_TARGET = 97.39


def read_evals(run_dir: Path, feature: str) -> list[dict[str, float]]:
    """[{"epoch", "minutes", "train_minutes", "acc"}] of a run's evaluations, in file order, on one
    continuous clock. ``minutes`` is wall time with the evaluations; ``train_minutes`` leaves out the
    time spent evaluating (and drawing samples), estimated from the step lines: an evaluation costs the
    time its record lags the last step line before it, less the steps in between at the run's median
    seconds per step."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"run {run_dir} has no metrics.jsonl; pass a run directory written by "
                                "advrep train.")
    records, offset, last = [], 0.0, 0.0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if "time" not in record:
            continue
        if record["time"] < last:  # a resume restarted the clock: continue from where it stopped
            offset += last
        last = record["time"]
        records.append({**record, "time": offset + record["time"]})
    steps = [r for r in records if "kind" not in r and "step" in r]
    rates = sorted((b["time"] - a["time"]) / (b["step"] - a["step"]) for a, b in zip(steps, steps[1:])
                   if b["step"] > a["step"])
    per_step = rates[len(rates) // 2] if rates else 0.0
    rows, spent, before = [], 0.0, None
    for record in records:
        if record.get("kind") != "eval":
            if "kind" not in record:
                before = record
            continue
        if feature not in record:
            known = sorted(k for k in record if k.startswith(("1nn", "probe")))
            raise KeyError(f"run {run_dir}: evaluation at epoch {record.get('epoch')} has no {feature!r}; "
                           f"choose --feature from {known}.")
        if before is not None:
            spent += max(0.0, record["time"] - before["time"] - (record["step"] - before["step"]) * per_step)
            before = {"time": record["time"], "step": record["step"]}  # training resumes from here
        rows.append({"epoch": record["epoch"], "minutes": record["time"] / 60,
                     "train_minutes": (record["time"] - spent) / 60, "acc": record[feature]})
    return rows


def table(runs: dict[str, list[dict[str, float]]], feature: str, target: float) -> str:
    lines = [f"| run | epoch | wall (min) | training only (min) | {feature} | reached {target}? |",
             "|---|---|---|---|---|---|"]
    for name, rows in runs.items():
        for r in rows:
            hit = "yes" if r["acc"] >= target else ""
            lines.append(f"| {name} | {r['epoch']} | {r['minutes']:.1f} | {r['train_minutes']:.1f} | "
                         f"{r['acc']:.2f} | {hit} |")
    return "\n".join(lines)


def first_hit(rows: list[dict[str, float]], target: float) -> dict[str, float] | None:
    return next((r for r in rows if r["acc"] >= target), None)


def aligned(runs: dict[str, list[dict[str, float]]]) -> tuple[list[float], dict[str, list[float]]]:
    """The runs on one minutes axis (the union of their evaluation times), for a plotter that wants one
    x for all series: each run is interpolated linearly between its own evaluations and is NaN outside
    them, so no run is drawn before its first or past its last evaluation."""
    times = sorted({r["minutes"] for rows in runs.values() for r in rows})
    series = {}
    for name, rows in runs.items():
        values = []
        for t in times:
            after = next((i for i, r in enumerate(rows) if r["minutes"] >= t), None)
            if after is None or (after == 0 and rows[0]["minutes"] > t):  # before the first, after the last
                values.append(float("nan"))
            elif rows[after]["minutes"] == t:
                values.append(rows[after]["acc"])
            else:
                a, b = rows[after - 1], rows[after]
                w = (t - a["minutes"]) / (b["minutes"] - a["minutes"])
                values.append(a["acc"] + w * (b["acc"] - a["acc"]))
        series[name] = values
    return times, series


def plot(runs: dict[str, list[dict[str, float]]], path: Path, *, feature: str, target: float) -> Path:
    """One line per run against wall time, with the target as a flat line."""
    times, series = aligned(runs)
    series[f"target {target}"] = [target] * len(times)
    return line_plot(series, path, x=times, title=f"{feature} against wall time", xlabel="wall time (min)",
                     ylabel="1NN accuracy (%)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run directories holding metrics.jsonl")
    ap.add_argument("--feature", default="1nn_test.penultimate")
    ap.add_argument("--target", type=float, default=PAPER_TARGET)
    ap.add_argument("--out", type=Path, default=Path("bench-out/time_to_quality"),
                    help="folder for time_to_quality.png and .md")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()
    runs = {}
    for run in args.runs:
        rows = read_evals(run, args.feature)
        if not rows:
            print(f"{run}: no evaluations yet, skipped", file=sys.stderr)
            continue
        runs[run.name] = rows
    if not runs:
        print("no run has an evaluation; nothing to plot", file=sys.stderr)
        return 1
    command = "python " + " ".join([Path(__file__).resolve().relative_to(REPO).as_posix(), *sys.argv[1:]])
    text = table(runs, args.feature, args.target)
    summary = []
    for name, rows in runs.items():
        hit = first_hit(rows, args.target)
        best = max(rows, key=lambda r: r["acc"])
        summary.append(f"- {name}: " + (f"reached {args.target} at epoch {hit['epoch']}, {hit['minutes']:.1f} min "
                                        f"({hit['train_minutes']:.1f} training)"
                                        if hit else f"did not reach {args.target}; best {best['acc']:.2f} "
                                        f"at epoch {best['epoch']} ({best['minutes']:.1f} min, "
                                        f"{best['train_minutes']:.1f} training)"))
    report = text + "\n\n" + "\n".join(summary) + f"\n\nCommand: `{command}`\n"
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot(runs, args.out / "time_to_quality.png", feature=args.feature, target=args.target)
    (args.out / "time_to_quality.md").write_text(report)
    print(report)
    print(f"wrote {png} and {args.out / 'time_to_quality.md'}")
    if args.write:
        bench = REPO / "BENCHMARKS.md"
        body = bench.read_text() if bench.exists() else "# Benchmarks\n"
        bench.write_text(body.rstrip("\n") + f"\n\n## Time to quality ({args.feature}, target {args.target})\n\n"
                         + report)
        print("appended to BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
