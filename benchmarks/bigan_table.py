"""The BiGAN paper's permutation-invariant MNIST table (Donahue et al. 2017, table 1), reproduced: BiGAN
and its five baselines trained with the same networks and schedule, evaluated the same way, printed
beside the paper's numbers (with each row's in-training 1NN curve, read from its metrics.jsonl) and written
into BENCHMARKS.md.

    python benchmarks/bigan_table.py                          # the full budget: 200 + 200 epochs a row
    python benchmarks/bigan_table.py --rows gan,lr --resume   # some rows; finish interrupted ones
    python benchmarks/bigan_table.py --quick                  # 1 + 1 epochs a row, a check
    python benchmarks/bigan_table.py --quick --subset 6000 --no-write   # a smoke test in minutes
    python benchmarks/bigan_table.py --rows bigan --keep-best  # + the weights validation chose (RUN/ROW/best)
    python benchmarks/bigan_table.py --hold-out-val           # + the authors' code's protocol (held-out 10k)
    python benchmarks/bigan_table.py --reseed-on-collapse 2   # a row whose game fails: again, next seed

Each row trains into RUN_ROOT/ROW (default runs/bigan-table-E+D/ROW). With --resume a row whose
benchmark.json exists is read back instead of retrained, and an interrupted row continues from its
last checkpoint, so the day-long full run can be stopped and restarted at any time. Rows can also run
as separate processes (one --rows each, same --run-root), then one final --resume run assembles the
table from their benchmark.json files. A finished run of the same recipe (e.g. from bigan_mnist.py)
can be linked in as RUN_ROOT/ROW: --resume then only evaluates it.
MNIST is read from --data-dir or $ADVREP_DATA_DIR.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import commit, machine  # noqa: E402

from advrep.checkpoint import RunLock, latest_checkpoint, load_model, read_best  # noqa: E402
from advrep.config import parse_overrides  # noqa: E402
from advrep.data import Dataset, load_dataset  # noqa: E402
from advrep.distributed import pick_device  # noqa: E402
from advrep.eval import VAL_SPLITS, knn_accuracy, train_val_split  # noqa: E402
from advrep.evaluate import evaluate  # noqa: E402
from advrep.methods import make_config  # noqa: E402
from advrep.report import first_record, read_metrics  # noqa: E402
from advrep.train import GeneratorCollapsed, train  # noqa: E402


@dataclass(frozen=True)
class Row:
    label: str  # as the paper's table names it
    method: str
    config: str  # file under configs/
    paper: float  # the paper's 1NN accuracy, test vs train, percent
    feature: str  # which of the method's features the paper's number is about


# The paper's table 1 (permutation-invariant MNIST, 1NN accuracy of the learnt features, test vs train).
ROWS = {
    "bigan": Row("BiGAN", "bigan", "bigan_mnist.toml", 97.39, "penultimate"),
    "d": Row("D", "gan", "gan_mnist.toml", 97.30, "discriminator"),
    "lr": Row("LR", "latent_regressor", "latent_regressor_mnist.toml", 97.44, "penultimate"),
    "jlr": Row("JLR", "joint_latent_regressor", "joint_latent_regressor_mnist.toml", 97.13, "penultimate"),
    "ae_l2": Row("AE (l2)", "autoencoder", "autoencoder_mnist.toml", 97.58, "penultimate"),
    "ae_l1": Row("AE (l1)", "autoencoder", "autoencoder_l1_mnist.toml", 97.63, "penultimate"),
}
SECTION = "## The BiGAN paper's MNIST table"
INTRO = """Donahue, Kraehenbuehl & Darrell, *Adversarial Feature Learning*, table 1: 1-nearest-neighbour
accuracy (%) on permutation-invariant MNIST, 10k test images against the 60k training images, of each
method's features (the encoder's 1024-d penultimate layer; for D the discriminator's). All rows use the
BiGAN recipe's networks, optimiser and schedule (`configs/*_mnist.toml`); see docs/methods/baselines.md.
"1NN z" is on the encoder's 50-d output, "probe" a logistic-regression probe on the same features as
"ours", "recon ratio" = mean ||x - G(E(x))|| / mean ||x' - G(E(x))|| for a random other test image x'
(lower is better; 1: no better than a random image), "best by val" the test 1NN of the weights kept
where 1NN on the validation split (10k training images against the other 50k) peaked, with
its epoch (rows trained with `--keep-best`), "held-out val" the authors' code's protocol (rows trained
with `--hold-out-val` on 50k training images only: 1NN of the other 10k, never trained on, against
those 50k). The validation 10k are the authors' own seeded draw with `--val-split bigan_code` (raw
pixels 97.20) or the last 10k with `--val-split last` (raw pixels 97.12). "wall" the training time including
the periodic 1NN checks: a row stopped by max_minutes and continued with --resume adds up its pieces
(benchmark.json keeps each piece's epochs, time, scores, probe included, commit and machine, and the notes
under the table list each piece's); "(resumed)" marks time
before the first recorded piece that is not counted, and a row trained again with `--reseed-on-collapse`
adds the time its failed seeds trained, as their metrics.jsonl record it. Raw pixels are the floor.
The LR and JLR rows' own discriminators are scored too (a list under the table, and their curves), as
the reference code logs their 1NN (NNC_d) in those runs: LR's GAN is trained as D's, JLR's G also takes
the regression loss."""


def refuse_another_protocol(key: str, path: Path, recorded: dict, args) -> None:
    """--resume never mixes protocols in one table: ``recorded`` (a row's benchmark.json or config.json)
    must have been trained with the same --hold-out-val and --val-split as this run asks for."""
    held, split = bool(recorded.get("hold_out_val")), recorded.get("val_split", "last")
    if held != bool(args.hold_out_val):
        was = "with" if held else "without"
        raise SystemExit(f"[{key}] {path} is of a row trained {was} --hold-out-val; run {was} it as that "
                         "row was, or choose another --run-root.")
    if split != args.val_split:
        raise SystemExit(f"[{key}] {path} is of a row whose validation split is {split!r}, not {args.val_split!r}; "
                         f"pass --val-split {split} as that row was, or choose another --run-root.")


def evaluate_row(key: str, row: Row, args, train_set: Dataset, test_set: Dataset) -> dict:
    run_dir = Path(args.run_root) / key
    done, saved = run_dir / "benchmark.json", run_dir / "config.json"
    pieces: list[dict] = []  # the earlier pieces of a run that max_minutes stopped, oldest first
    if args.resume and done.is_file():
        cached = json.loads(done.read_text())
        refuse_another_protocol(key, done, cached, args)
        if not cached.get("stopped_early"):
            print(f"[{key}] reading {done} (delete it to evaluate the run again)", flush=True)
            return cached
        print(f"[{key}] {done} is of a run that max_minutes stopped at epoch {cached['epochs_run']}: "
              "continuing it", flush=True)
        pieces = cached.get("pieces") or [piece_record(cached, row.feature)]
    keep = {"keep_best": f"1nn_val.{row.feature}"} if args.keep_best else {}
    keep["val_split"] = args.val_split
    if args.hold_out_val:
        keep["hold_out_val"] = True
    cfg = make_config(row.method, file=str(REPO / "configs" / row.config),
                      overrides={**keep, **parse_overrides(args.set)}, epochs=args.epochs,
                      decay_epochs=args.decay_epochs,
                      eval_every=args.eval_every, sample_every=args.eval_every, data_dir=args.data_dir,
                      progress=not args.no_progress)
    reseeds = args.reseed_on_collapse if row.method in ADVERSARIAL else 0
    # runs of this row an earlier launch's --reseed-on-collapse moved aside (looked for even without the
    # flag, so that --resume goes on with the seed the row reached, not the first one)
    collapsed = collapsed_attempts(run_dir, cfg.seed) if row.method in ADVERSARIAL else []
    if collapsed:
        if not args.resume:
            raise SystemExit(f"[{key}] {collapsed_dir(run_dir, cfg.seed)} holds an earlier run of this row whose game "
                             f"failed; pass --resume to go on with seed {collapsed[-1]['seed'] + 1}, or choose "
                             "another --run-root.")
        cfg = cfg.updated({"seed": collapsed[-1]["seed"] + 1})
    resume = args.resume and latest_checkpoint(run_dir) is not None
    if resume and saved.is_file():  # an interrupted row: say which flags it needs, before training refuses
        refuse_another_protocol(key, saved, json.loads(saved.read_text()), args)
    while True:
        ran = provenance()  # before training: the code this process runs is the code of this commit
        print(f"[{key}] training {row.method} ({row.config}), seed {cfg.seed}, into {run_dir}"
              + (" (resuming)" if resume else ""), flush=True)
        started = time.perf_counter()
        try:
            summary = train(cfg.updated({"stop_on_collapse": True}) if reseeds else cfg, run_dir, resume=resume,
                            train_set=train_set, test_set=test_set)
            break
        except GeneratorCollapsed as exc:
            aside = collapsed_dir(run_dir, cfg.seed)
            if aside.exists():
                raise SystemExit(f"[{key}] {FAILED[exc.mode]} with seed {cfg.seed}, but {aside} already exists, so "
                                 f"the run cannot be moved there; move or delete {aside} and rerun with "
                                 "--resume.") from None
            with RunLock(run_dir):  # no other process may be resuming it while it moves
                run_dir.rename(aside)
            # the epoch the log recorded first (a run resumed with the flag may have collapsed before)
            record = first_record(aside / "metrics.jsonl", "collapse")
            collapsed.append({"seed": cfg.seed, "epoch": record["epoch"] if record else exc.epoch,
                              "mode": record.get("mode", "one_image") if record else exc.mode,
                              "wall_s": recorded_wall_s(aside / "metrics.jsonl")})
            print(f"[{key}] {FAILED[collapsed[-1]['mode']]} after epoch {collapsed[-1]['epoch']} with seed "
                  f"{cfg.seed}; moved the run to {aside}", flush=True)
            if len(collapsed) > reseeds:
                raise SystemExit(f"[{key}] the game failed (G collapsed, or E and G stopped inverting each other) "
                                 f"with each of seeds "
                                 f"{', '.join(str(c['seed']) for c in collapsed)} (--reseed-on-collapse {reseeds}); "
                                 f"their runs are in {run_dir.parent}/{key}.collapsed-seed*. To try more seeds, "
                                 f"rerun with --resume --reseed-on-collapse {len(collapsed) + 1}; or try another "
                                 "--set seed or precision.") from None
            cfg, resume, pieces = cfg.updated({"seed": cfg.seed + 1}), False, []  # earlier pieces went aside too
    train_s = time.perf_counter() - started
    device = pick_device(cfg.device)  # on a GPU, 1NN runs there too (the probe stays on the CPU)
    method = load_model(run_dir, device=device)
    t0 = time.perf_counter()
    held_out = cfg.hold_out_val  # then also 1NN of the 10k never trained on against the 50k trained on
    results = evaluate(method, train_set, test_set, probe=True, protocols=("test", "val") if held_out else ("test",))
    # epochs_run: where training stopped, fewer than asked when --set max_minutes=M ran out first;
    # wall_s covers this process's epochs only (start_epoch on)
    wall_s, trained = summary.get("wall_s", 0.0), summary["epochs"] - summary.get("start_epoch", 0)
    results.update(eval_s=time.perf_counter() - t0, train_wall_s=train_s, loop_wall_s=wall_s,
                   s_per_epoch=wall_s / max(1, trained), resumed=resume, epochs_run=summary["epochs"],
                   stopped_early=bool(summary.get("stopped_by_max_minutes")), hold_out_val=held_out,
                   val_split=cfg.val_split)
    collapse = first_record(run_dir / "metrics.jsonl", "collapse")
    if collapse is not None:  # the trainer's warning of a lost game (docs/reliability.md)
        results["collapsed_epoch"] = collapse["epoch"]
        results["collapse_mode"] = collapse.get("mode", "one_image")
    if collapsed:  # runs of earlier seeds stopped by --reseed-on-collapse
        results.update(seed=cfg.seed, collapsed_seeds=collapsed)
    results["pieces"] = [*pieces, {**piece_record({**results, "start_epoch": summary.get("start_epoch", 0)},
                                                  row.feature), **ran, "ended": utc_now()}]
    kept = read_best(run_dir) if cfg.keep_best else None
    if kept is not None:  # trained with keep_best: the test score of the weights validation chose
        best = evaluate(load_model(run_dir / "best", device=device), train_set, test_set, probe=False,
                        protocols=("test",))
        results.update({"best_val_metric": kept["metric"], "best_val_value": kept["value"],
                        "best_epoch": kept["epoch"], "best_1nn_test": best[f"1nn_test.{row.feature}"]})
    done.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


# The rows whose generator is trained adversarially, which --reseed-on-collapse restarts; an
# autoencoder's decoder is trained by reconstruction and can recover (docs/reliability.md).
ADVERSARIAL = ("bigan", "gan", "latent_regressor", "joint_latent_regressor")


# How the trainer's check saw a row's game fail (its "collapse" record's mode; docs/reliability.md).
FAILED = {"one_image": "G collapsed", "unlinked": "E and G stopped inverting each other"}


def collapsed_dir(run_dir: Path, seed: int) -> Path:
    """Where --reseed-on-collapse moves a row's run whose game failed: RUN_ROOT/ROW.collapsed-seedS."""
    return run_dir.with_name(f"{run_dir.name}.collapsed-seed{seed}")


def collapsed_attempts(run_dir: Path, seed: int) -> list[dict]:
    """The runs --reseed-on-collapse moved aside for this row, from ``seed`` on with no gap, oldest first:
    [{"seed", "epoch", "mode", "wall_s"}], the epoch being where the trainer's check fired and the mode
    which check ("one_image" or "unlinked")."""
    found = []
    while collapsed_dir(run_dir, seed).is_dir():
        metrics = collapsed_dir(run_dir, seed) / "metrics.jsonl"
        record = first_record(metrics, "collapse")
        found.append({"seed": seed, "epoch": record["epoch"] if record else None,
                      "mode": record.get("mode", "one_image") if record else None, "wall_s": recorded_wall_s(metrics)})
        seed += 1
    return found


def recorded_wall_s(metrics: Path) -> float:
    """The training seconds a run's metrics.jsonl records: the clock of its step, eval, health and collapse lines
    restarts with each process (a --resume), so the last reading before each restart, and the last of all,
    are summed. It misses what came after a process's last line (at most ``log_every`` steps) and setup."""
    total = last = 0.0
    for record in read_metrics(metrics):
        t = record.get("time")
        if isinstance(t, (int, float)):
            if t < last:  # a new process
                total += last
            last = t
    return total + last


def piece_record(results: dict, feature: str) -> dict:
    """What benchmark.json keeps of one piece of a row's training (one process, up to where max_minutes
    stopped it or the run ended): its epochs, its wall time and its scores at its last epoch, the probe
    included, which is measured nowhere else. A row resumed over several sessions keeps them all."""
    keys = ("start_epoch", "epochs_run", "train_wall_s", "resumed", "stopped_early", "recon_ratio",
            *(f"{m}.{f}" for m in ("1nn_test", "1nn_val", "probe_test") for f in (feature, "z")))
    return {k: results[k] for k in keys if k in results}


def provenance() -> dict:
    """Where and when a piece of training starts: the commit, the machine and the UTC time. A row resumed
    in another session may run its pieces at different commits or on different CPUs."""
    return {"commit": commit(), "machine": machine(), "started": utc_now()}


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def pieces_lines(key: str, results: dict) -> list[str]:
    """For a row trained in several pieces, one line a piece: its epochs and where and when it ran
    (pieces recorded before benchmark.json kept that say so). [] for a row trained in one piece."""
    pieces = results.get("pieces") or []
    if len(pieces) < 2:
        return []
    lines = []
    for p in pieces:
        where = (f"commit {p['commit']}, {p['started']} to {p['ended']}, {p['machine']}" if "commit" in p
                 else "commit and machine not recorded")
        lines.append(f"- {key}, epochs {p.get('start_epoch', 0) + 1}-{p['epochs_run']}: {where}")
    return lines


def cell(results: dict, key: str, fmt: str = "{:.2f}") -> str:
    return fmt.format(results[key]) if key in results else "—"


def table_lines(rows: dict[str, Row], results: dict[str, dict], raw: float, raw_val: float | None = None
                ) -> list[str]:
    """The markdown table. ``raw_val``: raw pixels on the validation split, given when rows were trained
    with hold_out_val; the table then has a "held-out val" column (the reference code's protocol)."""
    val = raw_val is not None
    lines = ["| row | paper 1NN | ours 1NN (test vs train) | ours − paper | "
             + ("held-out val | − paper | " if val else "")
             + "best by val (epoch) | 1NN z | probe | recon ratio | wall |",
             "|---|---|---|---|" + ("---|---|" if val else "") + "---|---|---|---|---|",
             f"| raw pixels (floor) | — | {raw:.2f} | — | " + (f"{raw_val:.2f} | — | " if val else "")
             + "— | — | — | — | — |"]
    for key, row in rows.items():
        r = results[key]
        ours = r[f"1nn_test.{row.feature}"]
        held = ""
        if val:
            v = r.get(f"1nn_val.{row.feature}") if r.get("hold_out_val") else None
            held = "— | — | " if v is None else f"{v:.2f} | {v - row.paper:+.2f} | "
        pieces = r.get("pieces") or []
        if len(pieces) > 1:  # a row continued with --resume after max_minutes: all of its pieces
            wall = (f"{sum(p['train_wall_s'] for p in pieces) / 60:.1f} min in {len(pieces)} pieces"
                    + (" (resumed)" if pieces[0].get("resumed") else ""))  # earlier pieces unrecorded
        else:
            wall = f"{r['train_wall_s'] / 60:.1f} min" + (" (resumed)" if r.get("resumed") else "")
        if r.get("stopped_early"):
            wall += f", stopped by max_minutes after epoch {r['epochs_run']}"
        if r.get("collapsed_seeds"):  # a benchmark.json from before collapsed seeds' time was kept has none
            spent = [c.get("wall_s") for c in r["collapsed_seeds"]]
            wall += (f", + {sum(spent) / 60:.1f} min on the failed seeds" if None not in spent else
                     ", + the failed seeds' time (not recorded)")
        best = f"{r['best_1nn_test']:.2f} ({r['best_epoch']})" if "best_1nn_test" in r else "—"
        label = row.label
        if "collapsed_epoch" in r:
            label += f" ({FAILED[r.get('collapse_mode', 'one_image')]} at epoch {r['collapsed_epoch']})"
        if r.get("collapsed_seeds"):
            label += f" (seed {r['seed']}; " + ", ".join(
                f"seed {c['seed']}: {FAILED[c.get('mode') or 'one_image']} at epoch {c['epoch']}"
                for c in r["collapsed_seeds"]) + ")"
        lines.append(f"| {label} | {row.paper:.2f} | {ours:.2f} | {ours - row.paper:+.2f} | {held}{best} | "
                     f"{cell(r, '1nn_test.z')} | {cell(r, f'probe_test.{row.feature}')} | "
                     f"{cell(r, 'recon_ratio', '{:.3f}')} | {wall} |")
    return lines


def own_d_row(row: Row) -> Row | None:
    """The D baseline's row for another row's x-only discriminator, scored where its method gives one (LR
    and JLR; see the module docstring). None for the D row itself."""
    if row.feature == ROWS["d"].feature:
        return None
    return replace(ROWS["d"], label=f"{row.label}'s D", method=row.method, config=row.config)


def discriminator_lines(rows: dict[str, Row], results: dict[str, dict]) -> list[str]:
    """One line per row other than D whose results score its discriminator, against the paper's D row."""
    lines = []
    for key, row in rows.items():
        d, r = own_d_row(row), results[key]
        if d is None or f"1nn_test.{d.feature}" not in r:
            continue  # the D row, a method without such a D, or a run from before LR and JLR scored theirs
        held = r.get(f"1nn_val.{d.feature}") if r.get("hold_out_val") else None
        lines.append(f"- {d.label} ({key}): test {r[f'1nn_test.{d.feature}']:.2f}"
                     + (f", held-out val {held:.2f} ({held - d.paper:+.2f})" if held is not None else "")
                     + f", probe {cell(r, f'probe_test.{d.feature}')}; the paper's D row: {d.paper:.2f}")
    return ["", "The regressor rows' discriminators (the reference code's NNC_d; LR's GAN is trained as "
                "D's, JLR's G also takes the regression loss):", *lines] if lines else []


def curve_lines(key: str, row: Row, run_dir: Path) -> list[str]:
    """The row's in-training 1NN on its feature, one column per evaluated epoch: test, and the validation
    split ("held-out val" when the row never trained on it: hold_out_val). Read from RUN/ROW/metrics.jsonl; an epoch
    evaluated again after a resume keeps its last record. No lines when the row logged no evaluation."""
    evals = {int(r["epoch"]): r for r in read_metrics(run_dir / "metrics.jsonl")
             if r.get("kind") == "eval" and f"1nn_test.{row.feature}" in r}
    if not evals:
        return []
    epochs = sorted(evals)
    config = run_dir / "config.json"
    held = config.is_file() and bool(json.loads(config.read_text()).get("hold_out_val"))
    lines = [f"{row.label} ({key}), in-training 1NN on the {row.feature} features:", "",
             "| epoch | " + " | ".join(map(str, epochs)) + " |", "|---|" + "---|" * len(epochs)]
    for name, metric in (("test", "1nn_test"), ("held-out val" if held else "val", "1nn_val")):
        values = [evals[e].get(f"{metric}.{row.feature}") for e in epochs]
        if any(v is not None for v in values):
            lines.append(f"| {name} | " + " | ".join("—" if v is None else f"{v:.2f}" for v in values) + " |")
    stop = stopped_by_test(evals, row.feature) if held else None
    if stop is not None:
        epoch, test, val = stop
        lines += ["", "Had training stopped where test 1NN peaked (the test set picks, the held-out 10k scores): "
                      f"epoch {epoch}, test {test:.2f} (the peak), held-out {val:.2f} ({val - row.paper:+.2f} "
                      f"against the paper's {row.paper:.2f})."]
    return lines


def stopped_by_test(evals: dict[int, dict], feature: str) -> tuple[int, float, float] | None:
    """Early stopping on a split that does not also score the result: the evaluated epoch where test 1NN
    peaked (the earliest of equals), with its test and held-out 1NN. The test images are never trained on
    and are not the held-out 10k, so the held-out score of that epoch is not chosen by itself. Only the
    scores are read: the weights of that epoch are not kept. None unless at least two evaluations have both
    scores (with one there is nothing to choose)."""
    both = [(e, r[f"1nn_test.{feature}"], r[f"1nn_val.{feature}"]) for e, r in sorted(evals.items())
            if f"1nn_val.{feature}" in r]
    return max(both, key=lambda t: (t[1], -t[0])) if len(both) >= 2 else None


def write_benchmarks(path: Path, block: str) -> None:
    """Add ``block`` at the end of this table's section, creating the section if it is new."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{INTRO}\n"
    start = text.index(SECTION)
    after = text.find("\n## ", start + len(SECTION))  # the next section, if any
    end = len(text) if after < 0 else after + 1
    head, tail = text[:end].rstrip("\n"), text[end:]
    path.write_text(head + "\n\n" + block.strip("\n") + "\n" + ("\n" + tail if tail else ""))


def default_run_root(args) -> Path:
    """runs/bigan-table-E+D[-subsetN][-heldout][-bigan_code]: rows of another budget or protocol never
    share a directory (the -heldout root of rows trained before --val-split existed is the last-10k one)."""
    return REPO / "runs" / (f"bigan-table-{args.epochs}+{args.decay_epochs}"
                            + (f"-subset{args.subset}" if args.subset else "")
                            + ("-heldout" if args.hold_out_val else "")
                            + ("" if args.val_split == "last" else f"-{args.val_split}"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)}")
    ap.add_argument("--epochs", type=int, default=200, help="epochs at constant learning rate")
    ap.add_argument("--decay-epochs", type=int, default=200, help="epochs of learning-rate decay")
    ap.add_argument("--quick", action="store_true", help="1 + 1 epochs a row")
    ap.add_argument("--subset", type=int, default=0,
                    help="train on the first N MNIST training images and test on the first N/6 (smoke tests)")
    ap.add_argument("--eval-every", type=int, default=25, help="epochs between in-training 1NN checks")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--run-root", default=None)
    ap.add_argument("--resume", action="store_true", help="reuse finished rows, continue interrupted ones")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every row")
    ap.add_argument("--keep-best", action="store_true",
                    help="keep each row's weights where 1NN on the validation split peaked, and report their "
                         "test 1NN too (keep_best=1nn_val.<the row's feature>)")
    ap.add_argument("--hold-out-val", action="store_true",
                    help="train each row on 50k training images only and also report 1NN of the held-out "
                         "other 10k against them: the authors' code's protocol (hold_out_val=true)")
    ap.add_argument("--val-split", choices=VAL_SPLITS, default=None,
                    help="which 10k training images are the validation split: bigan_code, the authors' seeded "
                         "draw (the default with --hold-out-val), or last, the last 10k (the default without "
                         "it, and what rows trained before this option used)")
    ap.add_argument("--reseed-on-collapse", type=int, default=0, metavar="N",
                    help="when an adversarial row's game fails (G draws one image for every latent, or G(E(x)) "
                         "stays no closer to x than another image: the trainer's stop_on_collapse), stop it, move "
                         "its run to ROW.collapsed-seedS and train the row again with the next seed, up to N times; "
                         "the table names the seed used and the ones that failed, and its wall time adds "
                         "theirs (default 0: train on)")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bars (for logs)")
    args = ap.parse_args()
    if args.val_split is None:
        args.val_split = "bigan_code" if args.hold_out_val else "last"
    for setting, flag in (("hold_out_val", "--hold-out-val"), ("val_split", "--val-split")):
        if setting in parse_overrides(args.set):
            ap.error(f"--set {setting}=...: give {flag} instead, so that the raw-pixel floor, the run root and "
                     "--resume's checks follow it too.")
    if args.quick:
        args.epochs, args.decay_epochs = 1, 1
    unknown = [k for k in args.rows.split(",") if k not in ROWS]
    if unknown:
        ap.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    rows = {k: ROWS[k] for k in args.rows.split(",")}
    budget = (f"{args.epochs}+{args.decay_epochs} epochs" + (f", subset {args.subset}" if args.subset else "")
              + (", held-out" if args.hold_out_val else "") + f", validation split {args.val_split}")
    if args.hold_out_val and args.subset and args.subset <= 10000:
        ap.error(f"--hold-out-val holds out 10000 training images; --subset {args.subset} leaves none "
                 "to train on. Give --subset above 10000, or drop one of the two.")
    args.run_root = args.run_root or str(default_run_root(args))

    train_set = load_dataset("mnist", "train", data_dir=args.data_dir)
    test_set = load_dataset("mnist", "test", data_dir=args.data_dir)
    if args.subset:
        train_set = train_set.subset(slice(args.subset))
        test_set = test_set.subset(slice(max(2, args.subset // 6)))
    results = {key: evaluate_row(key, row, args, train_set, test_set) for key, row in rows.items()}
    t0 = time.perf_counter()  # the floor, after training, so that rows run side by side start at once
    on_gpu = parse_overrides(args.set).get("device") == "cuda"
    raw = knn_accuracy(train_set.flat(), train_set.y, test_set.flat(), test_set.y, k=1,
                       device="cuda" if on_gpu else None)
    print(f"raw-pixel 1NN {raw:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    raw_val = None
    if any(r.get("hold_out_val") for r in results.values()):
        ref, val = train_val_split(len(train_set), 10000, order=args.val_split)
        raw_val = knn_accuracy(train_set.flat()[ref], train_set.y[ref], train_set.flat()[val], train_set.y[val],
                               k=1, device="cuda" if on_gpu else None)
        print(f"raw-pixel 1NN, validation split ({args.val_split}) {raw_val:.2f}", flush=True)
    lines = table_lines(rows, results, raw, raw_val) + discriminator_lines(rows, results)
    for key, row in rows.items():
        for scored in (row, own_d_row(row)):
            curve = curve_lines(key, scored, Path(args.run_root) / key) if scored else []
            lines += ["", *curve] if curve else []
    cmd = "python benchmarks/bigan_table.py " + " ".join(sys.argv[1:])
    pieces = [line for key in rows for line in pieces_lines(key, results[key])]
    lines += ["", "Rows trained in pieces:", *pieces] if pieces else []
    print("\n".join(lines))
    print(f"command: {cmd}")
    if not args.no_write:
        block = "\n".join([f"### {datetime.date.today()}, {budget}, commit {commit()}", "",
                           f"Machine: {machine()}. Command: `{cmd}`.", "", *lines])
        write_benchmarks(REPO / "BENCHMARKS.md", block)
        print("wrote the table into BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
