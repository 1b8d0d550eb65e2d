"""The speed benchmarks' own arithmetic: the analytic FLOP count of our BiGAN step, the textbook
baseline's losses, the fused Adam the loop builds, and the time-to-quality reader."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import time_to_quality  # noqa: E402
from train_speed import Textbook, step_flops, textbook_losses  # noqa: E402

from advrep.methods import build_method, make_config  # noqa: E402
from advrep.methods import losses as L  # noqa: E402
from advrep.train.loop import make_optimizers, train_step  # noqa: E402


def tiny():
    cfg = make_config("bigan", hidden=32, latent_dim=4, image_shape=[1, 8, 8])
    method = build_method(cfg, (1, 8, 8))
    method.nets.train()
    return cfg, method


def test_step_flops_equals_the_matmuls_torch_runs():
    # Independent count: torch's FlopCounterMode sees every matmul autograd actually executes.
    cfg, method = tiny()
    opts = make_optimizers(method, cfg)
    params = {name: method.parameters_of(name) for name in method.optimizers}
    with FlopCounterMode(display=False) as counter:
        train_step(method, opts, params, torch.rand(16, 1, 8, 8), None, torch.Generator().manual_seed(0), step=0)
    assert step_flops(16, x_dim=64, latent=4, hidden=32)["total"] == counter.get_total_flops()


def test_textbook_losses_are_ours():
    real, fake = torch.randn(32), torch.randn(32)
    torch.testing.assert_close(textbook_losses(real, fake, flip=False), L.discriminator_loss(real, fake))
    torch.testing.assert_close(textbook_losses(real, fake, flip=True), L.generator_loss(real, fake, "inverse"))


def test_textbook_step_updates_copies_and_leaves_ours_alone():
    cfg, method = tiny()
    before = {k: v.clone() for k, v in method.nets.state_dict().items()}
    book = Textbook(method, cfg)
    book.step(torch.rand(16, 1, 8, 8), torch.Generator().manual_seed(0))
    assert all(torch.equal(before[k], v) for k, v in method.nets.state_dict().items())
    assert not torch.equal(book.D.fc1.weight, method.nets["D"].fc1.weight)
    assert not torch.equal(book.G.out.weight, method.nets["G"].out.weight)


def test_loop_adam_is_fused_on_cpu_and_matches_the_plain_update():
    cfg, method = tiny()
    opts = make_optimizers(method, cfg)
    assert all(o.defaults["fused"] for o in opts.values())
    params = method.parameters_of("D")
    plain = [p.detach().clone().requires_grad_() for p in params]
    ref_start = plain[0].detach().clone()
    ref = torch.optim.Adam(plain, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        for p, q in zip(params, plain):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        opts["D"].step()
        ref.step()
    for p, q in zip(params, plain):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-7)
    assert not torch.equal(params[0].detach(), ref_start)  # the steps moved the weights


def write_metrics(run: Path, records: list[dict]) -> None:
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"cut sho')


def test_time_to_quality_continues_the_clock_after_a_resume(tmp_path):
    run = tmp_path / "run"
    write_metrics(run, [
        {"step": 50, "time": 100.0, "loss_D": 0.6},
        {"kind": "eval", "step": 100, "epoch": 1, "time": 120.0, "1nn_test.penultimate": 90.0},
        {"step": 150, "time": 300.0},
        {"step": 160, "time": 30.0},  # resumed: the clock restarts at 0
        {"kind": "eval", "step": 200, "epoch": 2, "time": 60.0, "1nn_test.penultimate": 97.5},
    ])
    rows = time_to_quality.read_evals(run, "1nn_test.penultimate")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["minutes"] == pytest.approx(2.0)
    assert rows[1]["minutes"] == pytest.approx((300.0 + 60.0) / 60)
    assert time_to_quality.first_hit(rows, 97.39)["epoch"] == 2
    assert "| run | 2 | 6.0 |" in time_to_quality.table({"run": rows}, "1nn_test.penultimate", 97.39)
    assert "| 97.50 | yes |" in time_to_quality.table({"run": rows}, "1nn_test.penultimate", 97.39)
    png = time_to_quality.plot({"run": rows}, tmp_path / "ttq.png", feature="1nn_test.penultimate", target=97.39)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_to_quality_names_the_missing_feature_and_the_choices(tmp_path):
    run = tmp_path / "run"
    write_metrics(run, [{"kind": "eval", "step": 1, "epoch": 1, "time": 1.0, "1nn_test.z": 90.0}])
    with pytest.raises(KeyError, match=r"no '1nn_test.penultimate'.*1nn_test.z"):
        time_to_quality.read_evals(run, "1nn_test.penultimate")
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        time_to_quality.read_evals(tmp_path / "missing", "1nn_test.z")


def test_time_to_quality_draws_each_run_only_between_its_own_evaluations():
    runs = {"a": [{"epoch": 1, "minutes": 1.0, "acc": 90.0}, {"epoch": 2, "minutes": 3.0, "acc": 94.0}],
            "b": [{"epoch": 1, "minutes": 2.0, "acc": 80.0}, {"epoch": 2, "minutes": 5.0, "acc": 86.0}]}
    times, series = time_to_quality.aligned(runs)
    assert times == [1.0, 2.0, 3.0, 5.0]
    assert series["a"][:3] == [90.0, 92.0, 94.0] and math.isnan(series["a"][3])  # not held past minute 3
    assert math.isnan(series["b"][0]) and series["b"][1:] == [80.0, 82.0, 86.0]


def test_time_to_quality_leaves_the_evaluations_out_of_the_training_minutes(tmp_path):
    # One second a step; the first evaluation takes 15 s, the second 5 s.
    run = tmp_path / "run"
    write_metrics(run, [
        {"step": 10, "time": 10.0}, {"step": 20, "time": 20.0}, {"step": 30, "time": 30.0},
        {"kind": "eval", "step": 30, "epoch": 1, "time": 45.0, "1nn_test.penultimate": 90.0},
        {"step": 40, "time": 55.0}, {"step": 50, "time": 65.0},
        {"kind": "eval", "step": 50, "epoch": 2, "time": 70.0, "1nn_test.penultimate": 91.0},
    ])
    rows = time_to_quality.read_evals(run, "1nn_test.penultimate")
    assert [r["minutes"] for r in rows] == pytest.approx([45 / 60, 70 / 60])
    assert [r["train_minutes"] for r in rows] == pytest.approx([30 / 60, 50 / 60])
