import json
import math
import os
import signal

import pytest
import torch

import advrep.train.loop as loop
from advrep.checkpoint import latest_checkpoint, load_model, load_state
from advrep.data import Dataset, load_dataset
from advrep.methods import make_config
from advrep.train import GeneratorCollapsed, TrainingError, lr_scale, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def small(method="bigan", **kw):
    base = dict(data="digits", hidden=32, latent_dim=4, batch_size=64, epochs=2, decay_epochs=1,
                eval_every=0, sample_every=0, log_every=5, progress=False)
    base.update(kw)
    return make_config(method, **base)


def test_schedule_is_constant_then_exponential_to_the_final_scale():
    cfg = make_config("bigan", epochs=200, decay_epochs=200)
    assert lr_scale(cfg, 0) == lr_scale(cfg, 199) == 1.0
    assert lr_scale(cfg, 399) == pytest.approx(0.01)
    assert lr_scale(cfg, 299) == pytest.approx(0.1)


def test_training_writes_a_complete_run_directory(tmp_path, digits):
    summary = train(small(sample_every=1), tmp_path, train_set=digits[0], test_set=digits[1])
    assert summary["step"] == 3 * (len(digits[0]) // 64)
    for key in ("1nn_test.z", "1nn_test.penultimate", "recon_ratio", "images_per_s"):
        assert key in summary
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_D" in r for r in lines) and lines[-1]["kind"] == "summary"
    assert not any(r.get("kind") == "collapse" for r in lines)  # a healthy G is not flagged
    assert (tmp_path / "samples" / "epoch0003.png").is_file() and (tmp_path / "recon" / "epoch0003.png").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["image_shape"] == [1, 8, 8]
    method = load_model(tmp_path)
    assert method.encode(digits[1].x[:3]).shape == (3, 4)
    # a second run into the same directory refuses instead of mixing runs
    with pytest.raises(TrainingError, match="--resume"):
        train(small(), tmp_path, train_set=digits[0], test_set=digits[1])


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, digits, monkeypatch):
    straight = tmp_path / "straight"
    train(small(), straight, train_set=digits[0], test_set=digits[1])

    real_step = loop.train_step
    calls = {"n": 0}

    def step_then_interrupt(*args, **kwargs):
        out = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 30:  # mid-epoch: 22 steps per epoch
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(loop, "train_step", step_then_interrupt)
    stopped = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        train(small(), stopped, train_set=digits[0], test_set=digits[1])
    monkeypatch.setattr(loop, "train_step", real_step)
    train(small(), stopped, resume=True, train_set=digits[0], test_set=digits[1])

    a, b = load_model(straight).nets.state_dict(), load_model(stopped).nets.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def poisoned(ds):
    """A copy of ``ds`` with one NaN pixel: the batch that holds it has a NaN loss."""
    x = ds.x.clone()
    x[5, 0, 3, 3] = float("nan")
    return Dataset(x=x, y=ds.y, name="poisoned")


def test_nan_loss_stops_with_step_and_network_and_keeps_checkpoint(tmp_path, digits):
    cfg = small(epochs=3, decay_epochs=0)
    train(cfg.updated({"epochs": 1}), tmp_path, train_set=digits[0], test_set=digits[1])
    before = load_model(tmp_path).nets.state_dict()
    per_epoch = len(digits[0]) // 64
    where = int((loop.epoch_order(len(digits[0]), 0, 1) == 5).nonzero()) // 64  # batch holding the NaN
    assert where < per_epoch  # not in the dropped partial batch
    with pytest.raises(TrainingError, match=rf"loss 'D' \(networks D\) is nan at step {per_epoch + where}\."):
        train(cfg, tmp_path, resume=True, train_set=poisoned(digits[0]), test_set=digits[1])
    after = load_model(tmp_path).nets.state_dict()  # the last good checkpoint, untouched
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_nonfinite_skip_drops_the_batch_and_goes_on(tmp_path, digits, monkeypatch):
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: {})  # features of the NaN image would be NaN
    summary = train(small(nonfinite="skip", epochs=1, decay_epochs=0, log_every=1), tmp_path,
                    train_set=poisoned(digits[0]), test_set=digits[1])
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("skipped", 0) for r in lines) == 1
    assert all(torch.isfinite(v).all() for v in load_model(tmp_path).nets.state_dict().values())
    assert summary["step"] == len(digits[0]) // 64


def test_a_generator_collapsed_to_one_image_is_reported_once(tmp_path, digits, collapsed_generator, capsys):
    train(small("gan"), tmp_path, train_set=digits[0], test_set=digits[1])
    out = capsys.readouterr().out
    assert out.count("warning: epoch 1: G draws the same image for all 64 fixed latents") == 1
    assert "starting afresh with another seed, or set stop_on_collapse" in out  # fp32 already: no precision advice
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    flagged = [r for r in lines if r.get("kind") == "collapse"]
    assert len(flagged) == 1 and flagged[0]["epoch"] == 1 and flagged[0]["G_spread"] < loop.COLLAPSED_SPREAD
    # once per run: a resumed run that already noted it says nothing more
    train(small("gan", epochs=4), tmp_path, resume=True, train_set=digits[0], test_set=digits[1])
    assert "G draws the same image" not in capsys.readouterr().out
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("kind") == "collapse" for r in lines) == 1


def test_stop_on_collapse_stops_where_the_check_fires_without_saving_that_epoch(tmp_path, digits,
                                                                               collapsed_generator, capsys):
    with pytest.raises(GeneratorCollapsed, match="stop_on_collapse is set") as info:
        train(small("gan", stop_on_collapse=True), tmp_path, train_set=digits[0], test_set=digits[1])
    assert info.value.epoch == 1 and info.value.spread < loop.COLLAPSED_SPREAD
    assert "training stops here" in capsys.readouterr().out
    assert latest_checkpoint(tmp_path) is None  # the collapsed epoch was not saved
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r.get("kind") == "collapse"] == [1]


def test_reconstruction_ratio_is_0_for_a_perfect_reconstruction_and_1_for_one_that_ignores_x():
    class Fake:
        def __init__(self, reconstruct):
            self.nets = torch.nn.ModuleDict({"E": torch.nn.BatchNorm1d(3)})
            self.inner = reconstruct

        def reconstruct(self, v):
            assert not self.nets.training  # measured in eval mode: no batch-norm update
            return self.inner(v)

    x = torch.rand(16, 1, 5, 5)
    same, blind = Fake(lambda v: v.clone()), Fake(lambda v: torch.full_like(v, 0.3))
    assert loop.reconstruction_ratio(same, x) == 0.0
    # one image whatever the input: exactly as far from each x as from another
    assert loop.reconstruction_ratio(blind, x) == pytest.approx(1.0)
    near = Fake(lambda v: v + 0.01 * torch.randn_like(v))
    assert 0 < loop.reconstruction_ratio(near, x) < 0.1
    assert same.nets.training  # the networks' mode is restored
    # every image and every reconstruction alike leave nothing to compare: nan, which no bound counts
    assert math.isnan(loop.reconstruction_ratio(same, torch.ones(8, 1, 5, 5)))


def unlinked_after(monkeypatch, ratios):
    """Training measures these reconstruction ratios, one an epoch, and checks from the first step on."""
    seen = iter(ratios)
    monkeypatch.setattr(loop, "reconstruction_ratio", lambda method, x: next(seen))
    monkeypatch.setattr(loop, "UNLINKED_FROM_STEP", 0)


def records_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_bigan_whose_reconstructions_stay_unrelated_to_x_is_reported_once(tmp_path, digits, monkeypatch, capsys):
    unlinked_after(monkeypatch, [1.0, 0.99, 0.5, 0.98, 1.01, 0.95, 1.0, 1.0])  # 0.95: the bound itself
    train(small(epochs=8, decay_epochs=0), tmp_path, train_set=digits[0], test_set=digits[1])
    out = capsys.readouterr().out
    # the third epoch in a row at or above the bound is epoch 6: epoch 3's 0.5 broke the first streak
    assert out.count("no closer to x") == 1
    assert ("warning: epoch 6: G(E(x)) has been no closer to x than to another training image for 3 epochs "
            "(reconstruction ratio 0.980, 1.010, 0.950") in out
    records = records_of(tmp_path)
    assert [r["recon_ratio"] for r in records if r.get("kind") == "health"] == [1.0, 0.99, 0.5, 0.98, 1.01, 0.95,
                                                                               1.0, 1.0]
    assert all(r["G_spread"] > loop.COLLAPSED_SPREAD for r in records if r.get("kind") == "health")
    (flagged,) = [r for r in records if r.get("kind") == "collapse"]
    assert flagged["mode"] == "unlinked" and flagged["epoch"] == 6 and flagged["recon_ratio"] == 0.95


def test_unlinked_is_only_checked_from_unlinked_from_step_on(tmp_path, digits, monkeypatch, capsys):
    unlinked_after(monkeypatch, [1.0] * 5)
    per_epoch = len(digits[0]) // 64
    monkeypatch.setattr(loop, "UNLINKED_FROM_STEP", 2 * per_epoch + 1)  # epochs 1 and 2 end before it
    train(small(epochs=5, decay_epochs=0), tmp_path, train_set=digits[0], test_set=digits[1])
    out = capsys.readouterr().out
    assert out.count("no closer to x") == 1 and "warning: epoch 5: G(E(x))" in out


def test_unlinked_ratio_0_turns_the_check_off(tmp_path, digits, monkeypatch, capsys):
    unlinked_after(monkeypatch, [1.0] * 4)
    train(small(epochs=4, decay_epochs=0, unlinked_ratio=0), tmp_path, train_set=digits[0], test_set=digits[1])
    assert "no closer to x" not in capsys.readouterr().out
    assert [r["recon_ratio"] for r in records_of(tmp_path) if r.get("kind") == "health"] == [1.0] * 4  # still logged


def test_a_run_of_unlinked_epochs_goes_on_across_a_resume(tmp_path, digits, monkeypatch, capsys):
    unlinked_after(monkeypatch, [0.5, 1.0, 1.0, 1.0])
    train(small(epochs=3, decay_epochs=0), tmp_path, train_set=digits[0], test_set=digits[1])
    assert "no closer to x" not in capsys.readouterr().out  # epochs 2 and 3 only
    train(small(epochs=4, decay_epochs=0), tmp_path, resume=True, train_set=digits[0], test_set=digits[1])
    assert "warning: epoch 4: G(E(x)) has been no closer to x than to another training image for 3 epochs" in (
        capsys.readouterr().out)


def test_a_collapse_logged_before_modes_were_does_not_silence_the_unlinked_check(tmp_path, digits, monkeypatch,
                                                                                capsys):
    unlinked_after(monkeypatch, [0.5] + [1.0] * 3)
    train(small(epochs=1, decay_epochs=0), tmp_path, train_set=digits[0], test_set=digits[1])
    with open(tmp_path / "metrics.jsonl", "a") as f:  # what an older advrep wrote for a one-image collapse
        f.write(json.dumps({"kind": "collapse", "step": 1, "epoch": 1, "G_spread": 0.0}) + "\n")
    train(small(epochs=4, decay_epochs=0), tmp_path, resume=True, train_set=digits[0], test_set=digits[1])
    out = capsys.readouterr().out
    assert "warning: epoch 4: G(E(x)) has been no closer" in out and "G draws the same image" not in out


def test_each_kind_of_failure_is_reported_once(tmp_path, digits, monkeypatch, capsys):
    unlinked_after(monkeypatch, [1.0] * 5)
    spreads = iter([0.1, 0.1, 0.1, 0.0, 0.0])  # G draws one image from epoch 4 on
    monkeypatch.setattr(loop, "generator_spread", lambda method, z: next(spreads))
    train(small(epochs=5, decay_epochs=0), tmp_path, train_set=digits[0], test_set=digits[1])
    out = capsys.readouterr().out
    assert out.count("no closer to x") == 1 and out.count("G draws the same image") == 1
    flagged = [(r["mode"], r["epoch"]) for r in records_of(tmp_path) if r.get("kind") == "collapse"]
    assert flagged == [("unlinked", 3), ("one_image", 4)]


def test_stop_on_collapse_also_stops_a_bigan_whose_e_and_g_do_not_invert_each_other(tmp_path, digits, monkeypatch,
                                                                                   capsys):
    unlinked_after(monkeypatch, [1.0, 1.0, 1.0])
    with pytest.raises(GeneratorCollapsed, match="E and G stopped inverting each other") as info:
        train(small(epochs=4, decay_epochs=0, stop_on_collapse=True), tmp_path, train_set=digits[0],
              test_set=digits[1])
    assert info.value.mode == "unlinked" and info.value.epoch == 3 and info.value.ratio == 1.0
    assert "training stops here" in capsys.readouterr().out
    assert load_state(latest_checkpoint(tmp_path))["epoch"] == 2  # epoch 3, where it fired, was not saved


def test_a_fresh_run_sets_an_earlier_log_aside_instead_of_appending_to_it(tmp_path, digits, capsys):
    stale = '{"kind": "collapse", "step": 5, "epoch": 1, "G_spread": 0.0}\n'
    (tmp_path / "metrics.jsonl").write_text(stale)  # a run killed before its first checkpoint
    train(small("gan", epochs=1, decay_epochs=0), tmp_path, train_set=digits[0], test_set=digits[1])
    assert "kept it as metrics-before-" in capsys.readouterr().out
    (kept,) = tmp_path.glob("metrics-before-*.jsonl")
    assert kept.read_text() == stale
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records and not any(r.get("kind") == "collapse" for r in records)
    assert any(r.get("kind") == "eval" for r in records)


def test_resume_refuses_other_model_settings(tmp_path, digits):
    train(small(epochs=1, decay_epochs=0), tmp_path, train_set=digits[0], test_set=digits[1])
    with pytest.raises(TrainingError, match="hidden"):
        train(small(hidden=48), tmp_path, resume=True, train_set=digits[0], test_set=digits[1])


def test_keep_best_keeps_the_weights_where_the_validation_score_peaked(tmp_path, noisy_digits):
    from advrep.checkpoint import read_best
    from advrep.evaluate import evaluate

    train_set, test_set = noisy_digits
    cfg = small(keep_best="1nn_val.penultimate", eval_every=1, batch_size=512, epochs=3, decay_epochs=1)
    summary = train(cfg, tmp_path, train_set=train_set, test_set=test_set)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if r.get("kind") == "eval"]
    assert len(evals) == 4 and all("1nn_val.penultimate" in r and "1nn_test.penultimate" in r for r in evals)
    scores = [r["1nn_val.penultimate"] for r in evals]
    peak = max(scores)
    info = read_best(tmp_path)
    assert info["metric"] == "1nn_val.penultimate" and info["value"] == peak
    assert info["epoch"] == evals[scores.index(peak)]["epoch"]  # the first evaluation reaching the peak
    assert summary["best_1nn_val.penultimate"] == peak and summary["best_epoch"] == info["epoch"]
    kept = [r for r in lines if r.get("kind") == "best"]
    assert [r["value"] for r in kept] == sorted({s for i, s in enumerate(scores) if s > max(scores[:i], default=-1)})
    # the kept weights are the evaluated ones: scoring them again gives the recorded number
    best = load_model(tmp_path / "best")
    again = evaluate(best, train_set, test_set, probe=False, protocols=("val",))
    assert again["1nn_val.penultimate"] == peak
    # a resumed run compares against the kept score, and refuses another selection metric before it
    # touches the run directory
    saved_config = (tmp_path / "config.json").read_text()
    with pytest.raises(TrainingError, match="chosen by '1nn_val.penultimate', not '1nn_val.z'"):
        train(cfg.updated({"keep_best": "1nn_val.z", "decay_epochs": 2}), tmp_path, resume=True,
              train_set=train_set, test_set=test_set)
    assert read_best(tmp_path) == info and (tmp_path / "config.json").read_text() == saved_config
    train(cfg.updated({"decay_epochs": 2}), tmp_path, resume=True, train_set=train_set, test_set=test_set)
    last = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
            if '"eval"' in line][-1]
    assert last["epoch"] == 5
    assert read_best(tmp_path) == (info if last["1nn_val.penultimate"] <= peak else
                                   {**info, "value": last["1nn_val.penultimate"], "epoch": 5, "step": last["step"]})


@pytest.mark.parametrize("val_split", ["last", "bigan_code"])
def test_hold_out_val_never_trains_on_the_validation_split(tmp_path, digits, noisy_digits, monkeypatch, val_split):
    import advrep.evaluate as ev
    from advrep.data import Dataset
    from advrep.eval import train_val_split
    from advrep.train import loop

    train_set, test_set = noisy_digits
    x = train_set.x.clone()
    x[:, 0, 0, 0] = 0.0
    x[train_val_split(len(x), 10000, order=val_split)[1], 0, 0, 0] = 0.5  # marks the validation split's images
    marked = Dataset(x, train_set.y, "marked")
    seen, bn_sets, bn_batches = [], [], []
    real_step, real_refresh = loop.train_step, ev.refresh_batch_norm

    def step(method, optimizers, params, xb, *args, **kwargs):
        seen.append(xb[:, 0, 0, 0].clone())
        return real_step(method, optimizers, params, xb, *args, **kwargs)

    def refresh(method, data, **kwargs):
        bn_sets.append(data)
        bn_batches.append(kwargs.get("batches"))
        return real_refresh(method, data, **kwargs)

    monkeypatch.setattr(loop, "train_step", step)
    monkeypatch.setattr(ev, "refresh_batch_norm", refresh)
    cfg = small(hold_out_val=True, val_split=val_split, epochs=2, decay_epochs=0, eval_every=1, bn_batches=3)
    summary = train(cfg, tmp_path, train_set=marked, test_set=test_set)
    assert summary["step"] == 2 * (240 // 64)  # 10,240 images less the 10,000 held out, batches of 64
    assert torch.cat(seen).eq(0).all()  # no batch held a validation image ...
    assert len(bn_sets) == 2 and all(len(d) == 240 and d.x[:, 0, 0, 0].eq(0).all() for d in bn_sets)  # ... nor BN
    assert bn_batches == [3, 3]  # the run's bn_batches, not the default 100
    # every evaluation scores the held-out images against the trained-on ones, beside the test set
    evals = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert len(evals) == 2 and all("1nn_val.penultimate" in r and "1nn_test.penultimate" in r for r in evals)
    with pytest.raises(TrainingError, match="hold_out_val: run has True, asked False"):
        train(cfg.updated({"hold_out_val": False, "epochs": 3}), tmp_path, resume=True, train_set=marked,
              test_set=test_set)
    other = "last" if val_split == "bigan_code" else "bigan_code"
    with pytest.raises(TrainingError, match=f"val_split: run has '{val_split}', asked '{other}'"):
        train(cfg.updated({"val_split": other, "epochs": 3}), tmp_path, resume=True, train_set=marked,
              test_set=test_set)
    seen.clear()
    resumed = train(cfg.updated({"epochs": 3}), tmp_path, resume=True, train_set=marked, test_set=test_set)
    assert resumed["step"] == 3 * 3 and len(seen) == 3 and torch.cat(seen).eq(0).all()
    # evaluating the saved run later refreshes batch norm on the same 240 images by default
    bn_sets.clear()
    ev.evaluate(load_model(tmp_path), marked, test_set, probe=False, protocols=("val",))
    assert len(bn_sets) == 1 and len(bn_sets[0]) == 240
    with pytest.raises(TrainingError, match="no labels to score; set hold_out_val=false"):
        train(cfg, tmp_path / "unlabelled", train_set=Dataset(x, None, "unlabelled"), test_set=test_set)
    with pytest.raises(TrainingError, match="hold_out_val holds out 10000 training images.*has only 1437"):
        train(small(hold_out_val=True), tmp_path / "small", train_set=digits[0], test_set=digits[1])


def test_batch_norm_refresh_averages_as_many_batches_as_asked(noisy_digits):
    """bn_batches=1000 means 1000 batches (the reference code's deploy_iters), even where the data hold
    fewer than 1000 * 128 images: batches are drawn with replacement."""
    from advrep.data import Dataset
    from advrep.evaluate import refresh_batch_norm
    from advrep.methods import build_method

    cfg = small().updated({"image_shape": [1, 8, 8]})
    method = build_method(cfg, (1, 8, 8))
    calls = []
    real = method.batch_norm_forward
    method.batch_norm_forward = lambda x, y, z_rng: calls.append(len(x)) or real(x, y, z_rng)
    few = Dataset(noisy_digits[0].x[:240], noisy_digits[0].y[:240], "few")
    refresh_batch_norm(method, few, batches=7)
    assert calls == [128] * 7


def test_keep_best_refuses_what_could_never_keep_anything(tmp_path, digits, noisy_digits):
    from advrep.config import ConfigError

    with pytest.raises(ConfigError, match="keep_best.*1nn_val"):
        small(keep_best="1nn_test.penultimate")
    with pytest.raises(TrainingError, match="more than 10000.*has 1437; set keep_best=''"):
        train(small(keep_best="1nn_val.z", eval_every=1), tmp_path / "a", train_set=digits[0], test_set=digits[1])
    with pytest.raises(TrainingError, match="no feature 'h9'.*1nn_val.penultimate"):
        train(small(keep_best="1nn_val.h9", eval_every=1, batch_size=512), tmp_path / "b",
              train_set=noisy_digits[0], test_set=noisy_digits[1])
    with pytest.raises(TrainingError, match="eval_every=0 evaluates only the last of 3 epochs; set eval_every below 3"):
        train(small(keep_best="1nn_val.z", batch_size=512), tmp_path / "c", train_set=noisy_digits[0],
              test_set=noisy_digits[1])
    assert not any((tmp_path / d / "config.json").exists() for d in "abc")  # refused before the run was set up


def test_keep_best_survives_a_stop_between_the_checkpoint_and_the_copy(tmp_path, noisy_digits, monkeypatch):
    from advrep.checkpoint import latest_checkpoint, read_best, read_weights

    train_set, test_set = noisy_digits
    cfg = small(keep_best="1nn_val.z", eval_every=1, batch_size=512, epochs=1, decay_epochs=1)

    def killed(*args, **kwargs):  # the first improvement's copy never happens: the process "dies"
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(loop, "save_best", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", train_set=train_set, test_set=test_set)
    monkeypatch.undo()
    ckpt = latest_checkpoint(tmp_path / "run")
    assert read_best(tmp_path / "run") is None and ckpt.name == f"step-{len(train_set) // 512:08d}"
    # resuming from that checkpoint copies its weights to RUN/best
    train(cfg, tmp_path / "run", resume=True, train_set=train_set, test_set=test_set)
    kept = read_best(tmp_path / "run")
    assert kept["step"] >= len(train_set) // 512
    if kept["step"] == len(train_set) // 512:  # epoch 1 stayed the best: its checkpoint's weights were copied
        _, want = read_weights(ckpt / "weights.safetensors")
        _, got = read_weights(tmp_path / "run" / "best" / "weights.safetensors")
        assert all(torch.equal(want[k], got[k]) for k in want)
    # a fresh run into a directory holding another run's RUN/best would mix two runs' choices
    (tmp_path / "other").mkdir()
    (tmp_path / "run" / "best").rename(tmp_path / "other" / "best")
    with pytest.raises(TrainingError, match="holds weights another run kept"):
        train(cfg, tmp_path / "other", train_set=train_set, test_set=test_set)


def test_max_minutes_ends_the_run_after_the_epoch_that_runs_past_it_and_resume_goes_on(tmp_path, digits):
    straight = train(small(), tmp_path / "straight", train_set=digits[0], test_set=digits[1])
    # a budget every epoch overruns: the first epoch is the last, evaluated and checkpointed
    short = train(small(max_minutes=1e-6), tmp_path / "budget", train_set=digits[0], test_set=digits[1])
    per_epoch = len(digits[0]) // 64
    assert short["epochs"] == 1 and short["step"] == per_epoch and short["stopped_by_max_minutes"] is True
    assert "1nn_test.penultimate" in short
    saved = json.loads((tmp_path / "budget" / "summary.json").read_text())
    assert saved["epochs"] == 1 and saved["stopped_by_max_minutes"] is True
    # --resume without a budget finishes the schedule exactly as the uninterrupted run did
    done = train(small(), tmp_path / "budget", resume=True, train_set=digits[0], test_set=digits[1])
    assert done["epochs"] == 3 and done["step"] == straight["step"] and done["stopped_by_max_minutes"] is False
    a = load_model(tmp_path / "straight").nets.state_dict()
    b = load_model(tmp_path / "budget").nets.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_max_minutes_must_not_be_negative():
    from advrep.config import ConfigError

    with pytest.raises(ConfigError, match="max_minutes"):
        small(max_minutes=-1)


def test_bf16_on_a_cpu_that_emulates_it_warns_with_the_fix(monkeypatch):
    import warnings

    import advrep.train.precision as precision

    monkeypatch.setattr(precision, "cpu_bf16_is_fast", lambda: False)
    with pytest.warns(UserWarning, match="precision=fp32"):
        precision.Precision("bf16", "cpu")
    monkeypatch.setattr(precision, "cpu_bf16_is_fast", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision.Precision("bf16", "cpu")
        precision.Precision("fp32", "cpu")
