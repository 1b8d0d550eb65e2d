"""benchmarks/bigan_table.py: a row trained with keep_best reports the test score of the weights the
validation split chose, beside the final weights' score; rows resumed in pieces; a row whose G
collapsed, or whose game failed with E and G no longer inverting each other; a regressor row's own
discriminator, against the paper's D row;
benchmarks/bn_seed_spread.py, which scores a table row's weights once per batch-norm draw;
benchmarks/deploy_losses.py, which averages a run's training losses at fixed weights;
benchmarks/bn_variance.py, which measures the batch variances entering a run's batch norms;
benchmarks/d_overfit.py, which scores the D baseline's D on the images it trained on and on others; and
benchmarks/nn_gap.py, which compares 1NN of trained-on and unseen images in any model's features."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bigan_table  # noqa: E402

from advrep.checkpoint import read_best  # noqa: E402


def row_args(tmp_path, *, keep_best=False, hold_out_val=False, val_split="last", epochs=2, decay_epochs=1,
             eval_every=0, batch=512, extra=(), reseed_on_collapse=0):
    """bigan_table's arguments for one small row (32-unit networks, 4-d code) trained into tmp_path."""
    return argparse.Namespace(run_root=str(tmp_path), resume=False, epochs=epochs, decay_epochs=decay_epochs,
                              reseed_on_collapse=reseed_on_collapse,
                              eval_every=eval_every, data_dir=None, no_progress=True, keep_best=keep_best,
                              hold_out_val=hold_out_val, val_split=val_split,
                              set=["hidden=32", "latent_dim=4", f"batch_size={batch}", *extra])


def test_a_keep_best_row_reports_the_validation_choice_beside_the_final_weights(tmp_path, noisy_digits):
    train_set, test_set = noisy_digits
    args = row_args(tmp_path, keep_best=True, eval_every=1)
    row = bigan_table.ROWS["ae_l2"]
    results = bigan_table.evaluate_row("ae_l2", row, args, train_set, test_set)
    kept = read_best(tmp_path / "ae_l2")
    assert kept["metric"] == "1nn_val.penultimate" and results["best_epoch"] == kept["epoch"]
    # the column scores RUN/best's weights: the same test 1NN as the in-training evaluation at that epoch
    evals = {r["epoch"]: r for r in map(json.loads, (tmp_path / "ae_l2" / "metrics.jsonl").read_text().splitlines())
             if r.get("kind") == "eval"}
    assert results["best_1nn_test"] == evals[kept["epoch"]]["1nn_test.penultimate"]
    assert kept["value"] == max(r["1nn_val.penultimate"] for r in evals.values())
    lines = bigan_table.table_lines({"ae_l2": row}, {"ae_l2": results}, raw=97.0)
    assert lines[0].count("|") == lines[-1].count("|") == lines[2].count("|")
    assert f"| {results['best_1nn_test']:.2f} ({kept['epoch']}) |" in lines[-1]
    # a row without keep_best shows a dash in that column
    plain = {k: v for k, v in results.items() if not k.startswith("best_")}
    assert "| — |" in bigan_table.table_lines({"ae_l2": row}, {"ae_l2": plain}, raw=97.0)[-1]
    # the in-training curve: one column per evaluated epoch, the test and validation scores of that epoch
    curve = bigan_table.curve_lines("ae_l2", row, tmp_path / "ae_l2")
    assert curve[2] == "| epoch | " + " | ".join(map(str, sorted(evals))) + " |"
    assert curve[4] == "| test | " + " | ".join(f"{evals[e]['1nn_test.penultimate']:.2f}" for e in sorted(evals)) + " |"
    assert curve[5].startswith("| val | ") and len(curve) == 6 and len(evals) == 3
    # a line cut short by a killed run is skipped, and a run that logged no evaluation has no curve
    with (tmp_path / "ae_l2" / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "eval", "epoch": 9, "1nn_te')
    assert bigan_table.curve_lines("ae_l2", row, tmp_path / "ae_l2") == curve
    assert bigan_table.curve_lines("ae_l2", row, tmp_path / "nothing") == []


def test_a_row_cut_short_by_max_minutes_says_where_it_stopped(tmp_path, noisy_digits):
    train_set, test_set = noisy_digits
    args = row_args(tmp_path, extra=["max_minutes=1e-6"])
    row = bigan_table.ROWS["ae_l1"]
    results = bigan_table.evaluate_row("ae_l1", row, args, train_set, test_set)
    assert results["epochs_run"] == 1 and results["stopped_early"] is True
    assert "stopped by max_minutes after epoch 1 |" in bigan_table.table_lines({"ae_l1": row}, {"ae_l1": results},
                                                                               raw=97.0)[-1]
    # --resume does not take the cut-short row's benchmark.json as final: it trains on to the end
    args.resume, args.set = True, args.set[:-1]
    done = bigan_table.evaluate_row("ae_l1", row, args, train_set, test_set)
    assert done["epochs_run"] == 3 and done["stopped_early"] is False and done["resumed"] is True
    assert done["s_per_epoch"] > 0
    # both pieces are kept, each with its epochs, wall time and probe; the wall column adds them up
    first, last = done["pieces"]
    assert (first["epochs_run"], first["stopped_early"], last["start_epoch"], last["epochs_run"]) == (1, True, 1, 3)
    assert first["probe_test.penultimate"] == results["probe_test.penultimate"] and "probe_test.z" in last
    total = (first["train_wall_s"] + last["train_wall_s"]) / 60
    assert f"| {total:.1f} min in 2 pieces |" in bigan_table.table_lines({"ae_l1": row}, {"ae_l1": done}, raw=97.0)[-1]
    # each piece records the commit and machine it ran on, which the table's notes list piece by piece
    assert all(p["commit"] and p["machine"] and p["started"] <= p["ended"] for p in done["pieces"])
    lines = bigan_table.pieces_lines("ae_l1", done)
    assert len(lines) == 2 and lines[0].startswith("- ae_l1, epochs 1-1: commit ")
    assert lines[1].startswith("- ae_l1, epochs 2-3: commit ") and lines[1].endswith(last["machine"])
    # a piece benchmark.json kept before it recorded these says so; a row of one piece has no such lines
    older = {**done, "pieces": [{k: v for k, v in first.items() if k not in ("commit", "machine")}, last]}
    assert bigan_table.pieces_lines("ae_l1", older)[0] == "- ae_l1, epochs 1-1: commit and machine not recorded"
    assert bigan_table.pieces_lines("ae_l1", results) == []
    # and a finished row is read back as it is
    assert bigan_table.evaluate_row("ae_l1", row, args, train_set, test_set) == done


def test_a_row_whose_generator_collapsed_says_so_in_the_table(tmp_path, noisy_digits, collapsed_generator):
    train_set, test_set = noisy_digits
    row = bigan_table.ROWS["d"]
    results = bigan_table.evaluate_row("d", row, row_args(tmp_path), train_set, test_set)
    assert results["collapsed_epoch"] == 1
    assert bigan_table.table_lines({"d": row}, {"d": results}, raw=97.0)[-1].startswith(
        f"| {row.label} (G collapsed at epoch 1) |")
    collapsed_generator.undo()
    healthy = bigan_table.evaluate_row("d", row, row_args(tmp_path / "healthy"), train_set, test_set)
    assert "collapsed_epoch" not in healthy


def test_reseed_on_collapse_moves_a_collapsed_row_aside_and_trains_it_again_with_the_next_seed(
        tmp_path, noisy_digits, collapsed_generator):
    train_set, test_set = noisy_digits
    row = bigan_table.ROWS["d"]
    args = row_args(tmp_path, reseed_on_collapse=1)
    with pytest.raises(SystemExit, match="with each of seeds 0, 1"):
        bigan_table.evaluate_row("d", row, args, train_set, test_set)
    assert [c["seed"] for c in bigan_table.collapsed_attempts(tmp_path / "d", 0)] == [0, 1]
    assert not (tmp_path / "d").exists()
    collapsed_generator.undo()
    # a new launch without --resume would silently skip seeds: it is refused
    with pytest.raises(SystemExit, match="pass --resume to go on with seed 2"):
        bigan_table.evaluate_row("d", row, args, train_set, test_set)
    # --resume goes on with the seed after the collapsed ones, with the flag or without it
    args.resume, args.reseed_on_collapse = True, 0
    results = bigan_table.evaluate_row("d", row, args, train_set, test_set)
    assert results["seed"] == 2 and "collapsed_epoch" not in results
    assert [{k: c[k] for k in ("seed", "epoch")} for c in results["collapsed_seeds"]] == [
        {"seed": 0, "epoch": 1}, {"seed": 1, "epoch": 1}]
    # each collapsed seed's training time, read back from its run's log, ends at its collapse record
    for c in results["collapsed_seeds"]:
        log = (tmp_path / f"d.collapsed-seed{c['seed']}" / "metrics.jsonl").read_text().splitlines()
        assert c["wall_s"] == json.loads(log[-1])["time"] > 0 and json.loads(log[-1])["kind"] == "collapse"
    assert json.loads((tmp_path / "d" / "config.json").read_text())["seed"] == 2
    line = bigan_table.table_lines({"d": row}, {"d": results}, raw=97.0)[-1]
    assert line.startswith(f"| {row.label} (seed 2; seed 0: G collapsed at epoch 1, seed 1: G collapsed at epoch 1) |")
    spent = sum(c["wall_s"] for c in results["collapsed_seeds"]) / 60
    assert line.endswith(f" min, + {spent:.1f} min on the failed seeds |")
    # a row recorded before that time was kept says so rather than leaving it out
    old = {**results, "collapsed_seeds": [{"seed": 0, "epoch": 1}]}
    assert bigan_table.table_lines({"d": row}, {"d": old}, raw=97.0)[-1].endswith(
        ", + the failed seeds' time (not recorded) |")


def test_reseed_on_collapse_also_retrains_a_bigan_whose_e_and_g_stopped_inverting_each_other(
        tmp_path, noisy_digits, monkeypatch):
    import advrep.train.loop as loop

    ratios = iter([1.0, 0.99, 1.02] + [0.6] * 3)  # seed 0's three epochs, then seed 1's
    monkeypatch.setattr(loop, "reconstruction_ratio", lambda method, x: next(ratios))
    monkeypatch.setattr(loop, "UNLINKED_FROM_STEP", 0)
    train_set, test_set = noisy_digits
    row = bigan_table.ROWS["bigan"]
    results = bigan_table.evaluate_row("bigan", row, row_args(tmp_path, reseed_on_collapse=1), train_set, test_set)
    assert results["seed"] == 1 and "collapsed_epoch" not in results
    assert [{k: c[k] for k in ("seed", "epoch", "mode")} for c in results["collapsed_seeds"]] == [
        {"seed": 0, "epoch": 3, "mode": "unlinked"}]
    assert [c["mode"] for c in bigan_table.collapsed_attempts(tmp_path / "bigan", 0)] == ["unlinked"]
    line = bigan_table.table_lines({"bigan": row}, {"bigan": results}, raw=97.0)[-1]
    assert line.startswith(f"| {row.label} (seed 1; seed 0: E and G stopped inverting each other at epoch 3) |")


def test_the_training_time_a_log_records_sums_the_processes_that_wrote_it(tmp_path):
    log = tmp_path / "metrics.jsonl"
    lines = [{"step": 1, "time": 5.0}, {"kind": "eval", "time": 9.0}, {"kind": "best", "epoch": 1},
             {"step": 3, "time": 2.0}, {"kind": "collapse", "time": 4.5}]  # a resumed process from step 3
    log.write_text("\n".join(map(json.dumps, lines)) + "\n{\"step\": 4, \"ti")  # a line cut short by a kill
    assert bigan_table.recorded_wall_s(log) == 13.5
    assert bigan_table.recorded_wall_s(tmp_path / "absent.jsonl") == 0.0


def test_a_held_out_row_adds_the_reference_codes_protocol_beside_the_test_score(tmp_path, noisy_digits):
    train_set, test_set = noisy_digits
    args = row_args(tmp_path, hold_out_val=True, val_split="bigan_code", epochs=2, decay_epochs=0, batch=64,
                    eval_every=1)
    row = bigan_table.ROWS["ae_l2"]
    results = bigan_table.evaluate_row("ae_l2", row, args, train_set, test_set)
    assert results["hold_out_val"] is True and results["epochs_run"] == 2 and results["val_split"] == "bigan_code"
    # the benchmark's own evaluation agrees with the end-of-training one on both protocols
    last = [json.loads(line) for line in (tmp_path / "ae_l2" / "metrics.jsonl").read_text().splitlines()
            if '"eval"' in line][-1]
    assert results["1nn_val.penultimate"] == last["1nn_val.penultimate"]
    assert results["1nn_test.penultimate"] == last["1nn_test.penultimate"]
    lines = bigan_table.table_lines({"ae_l2": row}, {"ae_l2": results}, raw=96.9, raw_val=97.1)
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|") == lines[-1].count("|")
    v = results["1nn_val.penultimate"]
    assert f"| {v:.2f} | {v - row.paper:+.2f} |" in lines[-1] and "| 97.10 | — |" in lines[2]
    # a row trained on every image has no held-out score: dashes, not its contaminated validation score
    plain = {**results, "hold_out_val": False}
    assert "| — | — |" in bigan_table.table_lines({"ae_l2": row}, {"ae_l2": plain}, raw=96.9, raw_val=97.1)[-1]
    curve = bigan_table.curve_lines("ae_l2", row, tmp_path / "ae_l2")
    assert curve[-3].startswith("| held-out val | ") and curve[-3].endswith(f" | {v:.2f} |")
    # under the curve: the held-out score where the test score peaked
    evals = {r["epoch"]: r for r in map(json.loads, (tmp_path / "ae_l2" / "metrics.jsonl").read_text().splitlines())
             if r.get("kind") == "eval"}
    e = max(sorted(evals), key=lambda k: evals[k]["1nn_test.penultimate"])
    assert curve[-1].startswith("Had training stopped where test 1NN peaked") and (
        f"epoch {e}, test {evals[e]['1nn_test.penultimate']:.2f} (the peak), "
        f"held-out {evals[e]['1nn_val.penultimate']:.2f} (") in curve[-1]
    # --resume never mixes the two protocols: the finished held-out row is refused without the flag
    args.resume, args.hold_out_val = True, False
    with pytest.raises(SystemExit, match="trained with --hold-out-val; run with it"):
        bigan_table.evaluate_row("ae_l2", row, args, train_set, test_set)
    # ... nor two validation splits: a row held out on the reference code's 10k is refused on the last 10k
    args.hold_out_val, args.val_split = True, "last"
    with pytest.raises(SystemExit, match="validation split is 'bigan_code', not 'last'; pass --val-split bigan_code"):
        bigan_table.evaluate_row("ae_l2", row, args, train_set, test_set)
    # ... also for a row that stopped before its benchmark.json: its config.json says how it was trained
    (tmp_path / "ae_l2" / "benchmark.json").unlink()
    with pytest.raises(SystemExit, match="config.json is of a row whose validation split is 'bigan_code'"):
        bigan_table.evaluate_row("ae_l2", row, args, train_set, test_set)


def test_early_stopping_on_the_test_set_scores_the_held_out_split_at_that_epoch():
    evals = {25: {"1nn_test.f": 96.5, "1nn_val.f": 97.4}, 50: {"1nn_test.f": 96.9, "1nn_val.f": 97.0},
             75: {"1nn_test.f": 96.9, "1nn_val.f": 97.6}, 100: {"1nn_test.f": 99.0}}
    # epoch 100 has no held-out score; of the two equal test peaks the earlier one is taken, whatever the
    # held-out split says (it does not choose)
    assert bigan_table.stopped_by_test(evals, "f") == (50, 96.9, 97.0)
    assert bigan_table.stopped_by_test({100: {"1nn_test.f": 99.0}}, "f") is None
    assert bigan_table.stopped_by_test({25: evals[25], 100: evals[100]}, "f") is None  # nothing to choose from


def test_rows_of_another_protocol_get_another_default_run_root():
    def root(**kw):
        args = argparse.Namespace(**{"epochs": 200, "decay_epochs": 200, "subset": 0, "hold_out_val": False,
                                     "val_split": "last", **kw})
        return bigan_table.default_run_root(args).name

    assert root() == "bigan-table-200+200"
    assert root(hold_out_val=True) == "bigan-table-200+200-heldout"  # where rows before --val-split went
    assert root(hold_out_val=True, val_split="bigan_code") == "bigan-table-200+200-heldout-bigan_code"
    assert root(val_split="bigan_code", subset=12000) == "bigan-table-200+200-subset12000-bigan_code"


def test_bn_seed_spread_scores_the_same_weights_once_per_batch_norm_draw(tmp_path, noisy_digits):
    """benchmarks/bn_seed_spread.py: seed 0 reproduces the run's own evaluation; other seeds draw other
    batches for batch norm's statistics, so the evaluation's own noise can be read off."""
    import bn_seed_spread

    from advrep.checkpoint import load_model
    from advrep.evaluate import evaluate, fit_split, refresh_batch_norm

    train_set, test_set = noisy_digits
    args = row_args(tmp_path, hold_out_val=True, epochs=1, decay_epochs=0, batch=64, extra=["bn_batches=4"])
    bigan_table.evaluate_row("bigan", bigan_table.ROWS["bigan"], args, train_set, test_set)
    method = load_model(tmp_path / "bigan")
    own = evaluate(method, train_set, test_set, probe=False, protocols=("test", "val"))
    scores = bn_seed_spread.spread(method, train_set, test_set, [0, 1, 2])
    assert set(scores) == {"test", "val"} and all(len(v) == 3 for v in scores.values())
    assert scores["test"][0] == own["1nn_test.penultimate"] and scores["val"][0] == own["1nn_val.penultimate"]
    # the statistics left by seed 2 are not seed 0's
    norms = [m for m in method.nets.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    after_seed_2 = norms[0].running_mean.clone()
    refresh_batch_norm(method, fit_split(train_set, True, "last"), batches=4, seed=0)
    assert not torch.equal(after_seed_2, norms[0].running_mean)
    from common import seed_list
    assert seed_list("0-3") == [0, 1, 2, 3] and seed_list("5,7-8") == [5, 7, 8]
    for bad in ("3-1", "a"):  # an empty range or a non-number is a usage error that names it
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            seed_list(bad)


def test_deploy_losses_average_the_training_losses_at_fixed_weights(tmp_path, noisy_digits):
    """benchmarks/deploy_losses.py: the mean of the method's own training losses over seeded batches of
    the images it trained on, in training mode, leaving the weights and batch-norm statistics as they were."""
    import deploy_losses

    from advrep.checkpoint import load_model
    from advrep.evaluate import fit_split

    train_set, test_set = noisy_digits
    args = row_args(tmp_path, hold_out_val=True, epochs=1, decay_epochs=0, batch=64)
    bigan_table.evaluate_row("bigan", bigan_table.ROWS["bigan"], args, train_set, test_set)
    method = load_model(tmp_path / "bigan")
    data = fit_split(train_set, True, method.cfg.val_split)
    assert len(data) == len(train_set) - 10000
    before = [t.clone() for t in (*method.nets.parameters(), *method.nets.buffers())]
    means = deploy_losses.deploy_losses(method, data, batches=3, seed=0)
    assert set(means) == {"loss_D", "loss_EG", "D_real", "D_fake"}
    assert all(torch.equal(a, b) for a, b in zip(before, (*method.nets.parameters(), *method.nets.buffers())))
    assert not method.nets.training  # load_model's eval mode is kept
    assert deploy_losses.deploy_losses(method, data, batches=3, seed=1)["loss_D"] != means["loss_D"]
    # the same draws by hand: batches of the run's batch size, z from a generator seeded alike
    rng, z_rng = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    method.nets.train()
    by_hand = {"D": 0.0, "EG": 0.0}
    with torch.no_grad():
        for _ in range(3):
            idx = torch.randint(0, len(data), (64,), generator=rng)
            losses, _ = method.losses(0, data.x[idx], data.y[idx], z_rng)
            for k in by_hand:
                by_hand[k] += float(losses[k]) / 3
    assert means["loss_D"] == pytest.approx(by_hand["D"]) and means["loss_EG"] == pytest.approx(by_hand["EG"])


def test_bn_variance_measures_every_batch_norm_input_and_leaves_the_run_alone(tmp_path, noisy_digits):
    """benchmarks/bn_variance.py: one variance per unit and forward call of every batch norm (D scores real
    and generated pairs in two calls), computed by hand the same way; weights and statistics untouched."""
    import bn_variance

    from advrep.checkpoint import load_model
    from advrep.evaluate import fit_split

    train_set, test_set = noisy_digits
    args = row_args(tmp_path, hold_out_val=True, epochs=1, decay_epochs=0, batch=64)
    bigan_table.evaluate_row("bigan", bigan_table.ROWS["bigan"], args, train_set, test_set)
    method = load_model(tmp_path / "bigan")
    data = fit_split(train_set, True, method.cfg.val_split)
    before = [t.clone() for t in (*method.nets.parameters(), *method.nets.buffers())]
    var = bn_variance.input_variances(method, data, batches=2)
    assert set(var) == {"E.bn2", "D.bn2", "G.bn1", "G.bn2"}
    assert var["E.bn2"].shape == (2 * 32,) and var["D.bn2"].shape == (2 * 2 * 32,)
    assert all(bool((v > 0).all()) for v in var.values())
    assert all(torch.equal(a, b) for a, b in zip(before, (*method.nets.parameters(), *method.nets.buffers())))
    # E's input at its batch norm for the first batch, by hand: fc2 of the leaky-ReLU'd fc1 of the images
    idx = torch.randint(0, len(data), (64,), generator=torch.Generator().manual_seed(0))
    E = method.nets["E"]
    with torch.no_grad():
        h = E.fc2(torch.nn.functional.leaky_relu(E.fc1(data.x[idx].flatten(1)), 0.2))
    assert torch.allclose(var["E.bn2"][:32], h.var(0, unbiased=False), rtol=1e-5, atol=1e-9)


def test_gan_collapse_reports_which_runs_lost_their_generator(tmp_path, noisy_digits, collapsed_generator):
    import gan_collapse

    train_set, test_set = noisy_digits

    def run(name, **settings):
        return gan_collapse.one_run(tmp_path / name, precision="fp32", seed=0, epochs=2, threads=1, data_dir=None,
                                    train_set=train_set, test_set=test_set, log_every=1, **settings)

    lost = run("lost")
    assert lost["collapsed_epoch"] == 1 and lost["spread"] < gan_collapse.COLLAPSED_SPREAD
    assert lost["epochs"] == 2 and abs(lost["D_fake"] - 0.5) < 0.01 and 0 <= lost["1nn_val"] <= 100
    collapsed_generator.undo()
    # a run cut short (here by max_minutes after epoch 1) is continued, not refused or started again
    cut = run("healthy", max_minutes=1e-6)
    assert cut["epochs"] == 1
    healthy = run("healthy")
    assert healthy["epochs"] == 2 and healthy["collapsed_epoch"] is None and healthy["spread"] > 1e-3
    # a finished run directory is read back as it is
    assert run("healthy") == healthy


def test_d_overfit_scores_a_trained_d_on_each_source_and_names_its_epochs(tmp_path, noisy_digits):
    import d_overfit

    from advrep.checkpoint import load_model

    train_set, test_set = noisy_digits
    bigan_table.evaluate_row("d", bigan_table.ROWS["d"], row_args(tmp_path, keep_best=True, eval_every=1),
                             train_set, test_set)
    run = tmp_path / "d"
    assert d_overfit.epochs_trained(run) == 3  # 2 constant-rate epochs + 1 of decay
    kept = [r["epoch"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r.get("kind") == "best"]
    assert d_overfit.epochs_trained(run / "best") == kept[-1]  # the last evaluation that improved
    method = load_model(run)
    scores = d_overfit.d_scores(method, test_set.x, n=10**6, batch_size=64)
    assert scores["n"] == len(test_set) and 0 < scores["mean"] < 1
    assert not method.nets.training  # back in eval mode, as load_model left it
    # the same seed scores the same images in the same batches: flipping D's last layer flips every score
    with torch.no_grad():
        method.nets["D"].out.weight.neg_()
    flipped = d_overfit.d_scores(method, test_set.x, n=10**6, batch_size=64)
    assert flipped["mean"] == pytest.approx(1 - scores["mean"], abs=1e-6)
    assert flipped["real"] + scores["real"] == pytest.approx(100, abs=0.2)
    samples = d_overfit.d_scores(method, None, n=100, batch_size=64)  # G's samples, a short last batch
    assert samples["n"] == 100
    with torch.no_grad():
        method.nets["D"].out.weight.zero_()
    assert d_overfit.d_scores(method, test_set.x, n=50, batch_size=64) == {"n": 50, "mean": 0.5, "real": 0.0}


def test_d_overfit_reads_the_data_the_run_trained_on_unless_told_otherwise(tmp_path, mnist_dir, monkeypatch, capsys):
    import d_overfit

    from advrep.methods import make_config
    from advrep.train import train

    monkeypatch.delenv("ADVREP_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no cached copy to fall back on
    run = tmp_path / "gan"
    train(make_config("gan", data="mnist", data_dir=str(mnist_dir), hidden=16, latent_dim=4, epochs=1,
                      decay_epochs=0, eval_every=0, sample_every=0, progress=False), run)
    assert d_overfit.main([str(run), "--n", "100"]) == 0  # no --data-dir: the run's own data_dir
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split(" | ")[2] for r in rows] == ["trained on (60000)", "test", "G's samples"]
    with pytest.raises(SystemExit):
        d_overfit.main([str(run), "--data-dir", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert f"{run}: " in err and "nowhere" in err  # names the run and the directory it looked in


def test_nn_gap_leaves_each_trained_on_image_out_and_queries_unseen_ones_against_all():
    import nn_gap

    gen = torch.Generator().manual_seed(0)
    refs, ref_y = torch.randn(300, 5, generator=gen), torch.randint(0, 3, (300,), generator=gen)
    refs[7] = refs[3]  # an exact duplicate: each is the other's nearest neighbour, at distance 0
    ref_y[7] = (ref_y[3] + 1) % 3  # with another label, so taking the image itself would score differently
    unseen, unseen_y = torch.randn(50, 5, generator=gen), torch.randint(0, 3, (50,), generator=gen)
    scores = nn_gap.nn_gap(refs, ref_y, {"unseen": (unseen, unseen_y)}, n=10**6)
    # brute force: every reference queried against the others (itself excluded)
    d = torch.cdist(refs.double(), refs.double())
    d.fill_diagonal_(float("inf"))
    best, idx = d.min(1)
    assert best[3] == best[7] == 0 and idx[3] == 7 and idx[7] == 3
    assert nn_gap.nearest_other(refs[[3, 7]], refs, torch.tensor([3, 7]))[1].tolist() == [7, 3]
    trained = scores["trained on"]
    assert trained["n"] == 300
    assert trained["median_d"] == pytest.approx(best.median().item(), rel=1e-5)
    assert trained["acc"] == pytest.approx((ref_y[idx] == ref_y).double().mean().item() * 100)
    d_u, idx_u = torch.cdist(unseen.double(), refs.double()).min(1)
    assert scores["unseen"]["median_d"] == pytest.approx(d_u.median().item(), rel=1e-5)
    assert scores["unseen"]["acc"] == pytest.approx((ref_y[idx_u] == unseen_y).double().mean().item() * 100)
    assert nn_gap.nn_gap(refs, ref_y, {}, n=20)["trained on"]["n"] == 20  # a seeded draw of 20 queries
    # a hold_out_val run: its 10k held out, and the test set, are queried against the other images
    feats, y = torch.arange(10240.0)[:, None], torch.arange(10240) % 10
    ref, ref_labels, unseen_sets = nn_gap.split(feats, y, unseen, unseen_y, True, "last")
    assert torch.equal(ref, feats[:240]) and torch.equal(ref_labels, y[:240])
    assert set(unseen_sets) == {"held-out", "test"}
    assert torch.equal(unseen_sets["held-out"][0], feats[240:]) and torch.equal(unseen_sets["held-out"][1], y[240:])
    assert unseen_sets["test"][0] is unseen and unseen_sets["test"][1] is unseen_y


def test_nn_gap_reproduces_the_runs_own_1nn_score(tmp_path, capsys):
    import nn_gap

    from advrep.data import load_dataset
    from advrep.eval.knn import knn_accuracy
    from advrep.methods import make_config
    from advrep.train import train

    run = tmp_path / "ae"
    summary = train(make_config("autoencoder", data="digits", hidden=32, latent_dim=4, epochs=1, decay_epochs=1,
                                bn_batches=5, eval_every=0, sample_every=0, progress=False), run)
    assert nn_gap.main([str(run)]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    by = {(r[0].lstrip("| "), r[2]): r for r in rows}
    test_row = by[(f"{run} (autoencoder, penultimate)", "test")]
    assert test_row[1] == "2"  # epochs trained
    assert float(test_row[4]) == pytest.approx(summary["1nn_test.penultimate"], abs=0.005)
    train_set, test_set = load_dataset("digits", "train"), load_dataset("digits", "test")
    pixels = knn_accuracy(train_set.x.flatten(1), train_set.y, test_set.x.flatten(1), test_set.y)
    assert float(by[("raw pixels (digits)", "test")][4]) == pytest.approx(pixels, abs=0.005)
    with pytest.raises(SystemExit, match="has no feature 'nope'"):
        nn_gap.main([str(run), "--feature", "nope"])


def test_a_regressor_row_also_reports_its_discriminator_against_the_paper_d_row(tmp_path, noisy_digits):
    train_set, test_set = noisy_digits
    row = bigan_table.ROWS["lr"]
    results = bigan_table.evaluate_row("lr", row, row_args(tmp_path, eval_every=1), train_set, test_set)
    d = bigan_table.own_d_row(row)
    assert (d.label, d.feature, d.paper) == ("LR's D", "discriminator", bigan_table.ROWS["d"].paper)
    assert bigan_table.own_d_row(bigan_table.ROWS["d"]) is None
    lines = bigan_table.discriminator_lines({"lr": row}, {"lr": results})
    assert lines[-1] == (f"- LR's D (lr): test {results['1nn_test.discriminator']:.2f}, probe "
                         f"{results['probe_test.discriminator']:.2f}; the paper's D row: 97.30")
    # held out: the authors' protocol's score, against the paper's
    held = {**results, "hold_out_val": True, "1nn_val.discriminator": 97.0}
    assert ", held-out val 97.00 (-0.30), probe" in bigan_table.discriminator_lines({"lr": row}, {"lr": held})[-1]
    # a run from before the regressors scored their D, and the other rows, add nothing
    old = {k: v for k, v in results.items() if "discriminator" not in k}
    assert bigan_table.discriminator_lines({"lr": row}, {"lr": old}) == []
    assert bigan_table.discriminator_lines({"bigan": bigan_table.ROWS["bigan"]}, {"bigan": old}) == []  # a joint D
    curve = bigan_table.curve_lines("lr", d, tmp_path / "lr")
    assert curve[0] == "LR's D (lr), in-training 1NN on the discriminator features:"
    assert curve[2] == "| epoch | 1 | 2 | 3 |" and curve[4].startswith("| test | ") and len(curve) == 5
