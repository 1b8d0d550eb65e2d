"""Generator inversion: recovery of a known z, encoder starts, prior handling, per-sample bookkeeping,
leaving G untouched, and the invert / compare commands. Small random generators; seconds on 2 cores."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from advrep.inversion import invert, invert_method
from advrep.inversion.lineplot import line_plot
from advrep.methods import METHODS

P, D = 24, 3  # pixels, latent size


@pytest.fixture(autouse=True)
def _one_thread():
    # These problems are tiny: with two threads on a busy 2-core machine, OpenMP hand-offs cost 10x more
    # than the arithmetic. Restored afterwards so other test files keep their setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SigmoidLinear(nn.Module):
    """G(z) = sigmoid(W z + b): injective (W has full column rank) with a closed-form inverse."""

    def __init__(self, seed=0, p=P, d=D):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(p, d, generator=g))
        self.b = nn.Parameter(0.3 * torch.randn(p, generator=g))

    def forward(self, z):  # [B, d] -> [B, p]
        return torch.sigmoid(z @ self.W.T + self.b)

    def exact_inverse(self, x):  # least squares on the logits: [B, p] -> [B, d]
        logits = torch.logit(x.clamp(1e-6, 1 - 1e-6)) - self.b
        W = self.W.detach().expand(x.shape[0], -1, -1)  # [B, p, d]
        return torch.linalg.lstsq(W, logits.detach()[..., None]).solution[..., 0]


def _targets(G, n=12, seed=1, scale=0.7):
    z = (torch.rand(n, D, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * scale
    with torch.no_grad():
        return z, G(z)


def test_known_z_is_recovered_from_G_of_z():
    G = SigmoidLinear()
    z_true, x = _targets(G)
    r = invert(G, x, steps=600, lr=0.05, optimizer="adam", prior="uniform", init="mean", latent_dim=D)
    assert r.z.shape == (12, D) and r.x_hat.shape == x.shape and r.losses.shape == (12,)
    assert torch.allclose(r.z, z_true, atol=2e-3), (r.z - z_true).abs().max()
    assert float(r.mse.max()) < 1e-6
    assert r.trace.shape == (601,) and r.trace[-1] < 1e-3 * r.trace[0]


def test_result_numbers_match_an_independent_computation():
    G = SigmoidLinear()
    _, x = _targets(G)
    feat_w = torch.randn(P, 5, generator=torch.Generator().manual_seed(3))
    r = invert(G, x + 0.05, steps=30, lr=0.01, prior="gaussian", latent_dim=D, features=lambda v: v @ feat_w,
               feature_weight=0.5, prior_weight=0.01, restarts=2, batch_size=5)
    with torch.no_grad():
        x_hat = G(r.z)
        mse = ((x_hat - (x + 0.05)) ** 2).mean(1)
        feat = ((x_hat @ feat_w - (x + 0.05) @ feat_w) ** 2).mean(1)
    assert torch.allclose(r.x_hat, x_hat, atol=1e-6)
    assert torch.allclose(r.mse, mse, atol=1e-6) and torch.allclose(r.losses, mse + 0.5 * feat, rtol=1e-5)
    assert math.isclose(float(r.trace[-1]), float(r.losses.mean()), rel_tol=1e-5)
    s = r.summary()
    assert math.isclose(s["mse_mean"], float(mse.double().mean()), rel_tol=1e-6)
    assert math.isclose(s["mse_std"], float(mse.double().std()), rel_tol=1e-5)


def test_encoder_start_beats_random_start_at_equal_steps():
    G = SigmoidLinear(p=64, d=8)
    z_true = torch.rand(40, 8, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8
    x = G(z_true).detach()
    noise = 0.05 * torch.randn(40, 8, generator=torch.Generator().manual_seed(4))
    E = lambda v: G.exact_inverse(v) + noise  # an imperfect encoder  # noqa: E731
    for optimizer in ("rmsprop", "adam"):
        kw = dict(steps=25, lr=0.01, optimizer=optimizer, prior="uniform", latent_dim=8)
        enc = invert(G, x, init="encoder", encoder=E, **kw)
        rand = invert(G, x, init="prior", **kw)
        assert enc.trace[0] < 0.1 * rand.trace[0]
        assert float(enc.losses.mean()) < 0.5 * float(rand.losses.mean()), optimizer
        assert (enc.losses < rand.losses).float().mean() > 0.9


def test_encoder_consistency_term_pulls_z_towards_E_of_G_of_z():
    G = SigmoidLinear()
    z_true, x = _targets(G)
    anchor = torch.full((D,), 0.5)
    E = lambda v: anchor.expand(v.shape[0], D)  # a constant encoder: the term is |z - anchor|^2  # noqa: E731
    kw = dict(steps=300, lr=0.05, optimizer="adam", prior="uniform", init="mean", latent_dim=D)
    free = invert(G, x, **kw)
    pulled = invert(G, x, encoder=E, encoder_weight=10.0, **kw)
    assert (pulled.z - anchor).norm(dim=1).mean() < 0.5 * (free.z - anchor).norm(dim=1).mean()


@pytest.mark.parametrize("support", ["clip", "tanh"])
def test_uniform_prior_keeps_z_in_its_support(support):
    G = SigmoidLinear()
    with torch.no_grad():
        x = G(torch.full((6, D), 2.5))  # the best z lies outside [-1, 1]^d
    r = invert(G, x, steps=200, lr=0.05, optimizer="adam", prior="uniform", support=support, latent_dim=D)
    assert float(r.z.abs().max()) <= 1.0
    if support == "clip":  # projected gradient ends on the boundary nearest the optimum
        assert float(r.z.max()) == 1.0
    unconstrained = invert(G, x, steps=200, lr=0.05, optimizer="adam", prior="uniform", support="none",
                           latent_dim=D)
    assert float(unconstrained.z.abs().max()) > 1.5


def test_gaussian_log_prior_weight_shrinks_z():
    G = SigmoidLinear()
    with torch.no_grad():
        x = G(torch.full((6, D), 1.5))
    norms = [float(invert(G, x, steps=300, lr=0.05, optimizer="adam", prior="gaussian", prior_weight=w,
                          init="mean", latent_dim=D).z.norm(dim=1).mean()) for w in (0.0, 0.05, 1.0)]
    assert norms[0] > norms[1] > norms[2]


def test_batch_moment_regulariser_matches_the_priors_moments():
    G = SigmoidLinear()
    with torch.no_grad():
        x = G(torch.rand(64, D, generator=torch.Generator().manual_seed(5)) + 1.0)  # z ~ U[1, 2]: mean 1.5
    r = invert(G, x, steps=300, lr=0.05, optimizer="adam", prior="gaussian", moment_weight=100.0,
               latent_dim=D, batch_size=64)
    assert r.z.mean(0).abs().max() < 0.1 and (r.z.std(0, unbiased=False) - 1).abs().max() < 0.1


def test_a_sample_follows_the_same_path_whatever_the_batch_size():
    G = SigmoidLinear()
    _, x = _targets(G, n=10)
    a = invert(G, x, steps=40, lr=0.01, prior="gaussian", latent_dim=D, batch_size=10, restarts=2)
    b = invert(G, x, steps=40, lr=0.01, prior="gaussian", latent_dim=D, batch_size=3, restarts=2)
    assert torch.allclose(a.z, b.z, atol=1e-5) and torch.allclose(a.trace, b.trace, rtol=1e-4)


def test_restarts_keep_the_best_start_per_sample():
    G = SigmoidLinear()
    _, x = _targets(G, n=20, scale=1.0)
    one = invert(G, x, steps=15, lr=0.01, prior="uniform", latent_dim=D)
    four = invert(G, x, steps=15, lr=0.01, prior="uniform", latent_dim=D, restarts=4)
    assert (four.losses <= one.losses + 1e-7).all() and (four.losses < one.losses).any()
    assert set(four.restart.tolist()) <= {0, 1, 2, 3} and len(set(four.restart.tolist())) > 1
    assert torch.equal(four.losses[four.restart == 0], one.losses[four.restart == 0])


def test_tolerance_stops_early_and_records_steps_to_tolerance():
    G = SigmoidLinear()
    _, x = _targets(G)
    r = invert(G, x, steps=2000, lr=0.05, optimizer="adam", prior="uniform", init="mean", latent_dim=D,
               tol=1e-4, check_every=10)
    assert r.steps_run < 2000 and (r.losses <= 1e-4).all()
    assert r.steps_to_tol.shape == (12,) and (r.steps_to_tol >= 0).all()
    assert (r.steps_to_tol <= r.steps_run).all()
    assert r.trace.shape == (2001,) and r.trace[r.steps_run:].unique().numel() == 1


def test_G_is_left_as_found():
    G = nn.Sequential(nn.Linear(D, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, P), nn.Sigmoid()).train()
    G[3].weight.requires_grad_(False)  # a user's own frozen layer stays frozen
    before = {k: v.clone() for k, v in G.state_dict().items()}
    x = torch.rand(8, P)
    invert(G, x, steps=5, prior="gaussian", latent_dim=D)
    assert G.training and all(m.training for m in G.modules())
    assert [p.requires_grad for p in G.parameters()] == [True, True, True, True, False, True]
    assert all(p.grad is None for p in G.parameters())
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # eval mode: BN stats untouched


def test_plain_callable_generators_and_any_output_shape():
    G = SigmoidLinear()
    _, x = _targets(G)
    images = x.reshape(12, 1, 4, 6)
    r = invert(lambda z: G(z).reshape(-1, 1, 4, 6), images, steps=5, prior="gaussian", latent_dim=D,
               loss="bce")
    assert r.x_hat.shape == (12, 1, 4, 6) and all(p.grad is None for p in G.parameters())


def test_bad_settings_fail_with_the_fix():
    G = SigmoidLinear()
    x = torch.rand(4, P)
    with pytest.raises(ValueError, match="unknown loss 'l3'; choose one of mse, l1, bce"):
        invert(G, x, loss="l3", latent_dim=D)
    with pytest.raises(ValueError, match="needs latent_dim"):
        invert(G, x, prior="uniform")
    with pytest.raises(ValueError, match="encoder=E"):
        invert(G, x, init="encoder", latent_dim=D)
    with pytest.raises(ValueError, match="does not match x"):
        invert(G, torch.rand(4, P + 1), steps=1, latent_dim=D)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        invert(G, x, steps=-1, latent_dim=D)
    with pytest.raises(ValueError, match="unknown schedule"):
        invert(G, x, schedule="warm", latent_dim=D)


def test_learning_rate_schedules_scale_the_steps():
    G = SigmoidLinear()
    with torch.no_grad():
        x = G(torch.full((4, D), 3.0))  # far away: Adam moves every coordinate by ~lr per step
    moved = {}
    for schedule in ("constant", "linear", "cosine"):
        r = invert(G, x, steps=40, lr=0.01, optimizer="adam", schedule=schedule, prior="gaussian",
                   init="mean", latent_dim=D)
        moved[schedule] = float(r.z.abs().mean())
    assert 0.3 < moved["constant"] <= 0.4  # ~ 40 steps * 0.01
    for schedule in ("linear", "cosine"):  # both average half the learning rate over the run
        assert 0.4 < moved[schedule] / moved["constant"] < 0.6


def _tiny_run(tmp_path, name="bigan"):
    from advrep.checkpoint import save_checkpoint
    from advrep.methods import build_method, make_config

    cfg = make_config(name, data="digits", hidden=32, latent_dim=4, image_shape=[1, 8, 8])
    torch.manual_seed(0)
    method = build_method(cfg, (1, 8, 8))
    run = tmp_path / name
    save_checkpoint(run, method.nets, cfg, {"step": 0})
    return run, method


def test_invert_method_uses_the_runs_prior_and_encoder(tmp_path):
    _, method = _tiny_run(tmp_path)
    x = torch.rand(6, 1, 8, 8)
    r = invert_method(method, x, init="encoder", steps=3)
    with torch.no_grad():
        method.nets.eval()
        e = method.encode(x)
        first = ((method.generate(e) - x) ** 2).flatten(1).mean(1).mean()
    assert r.z.shape == (6, 4) and float(r.z.abs().max()) <= 1.0  # BiGAN's uniform prior, clipped
    assert math.isclose(float(r.trace[0]), float(first), rel_tol=1e-5)


@pytest.mark.parametrize("name", sorted(n for n, m in METHODS.items() if m.has_generator))
def test_every_generator_can_be_inverted(name):
    from advrep.methods import build_method, make_config

    cfg = make_config(name, data="digits", hidden=32, latent_dim=4, image_shape=[1, 8, 8])
    method = build_method(cfg, (1, 8, 8))
    x = torch.rand(5, 1, 8, 8)
    r = invert_method(method, x, steps=2, restarts=2)
    with torch.no_grad():
        method.nets.eval()
        mse = ((method.generate(r.z) - x) ** 2).flatten(1).mean(1)
    assert r.x_hat.shape == x.shape and torch.allclose(r.mse, mse, atol=1e-6)


def test_invert_and_compare_commands(tmp_path, capsys):
    from advrep.cli import main

    run_a, _ = _tiny_run(tmp_path, "bigan")
    run_b, _ = _tiny_run(tmp_path, "ali")
    out = tmp_path / "inv"
    assert main(["invert", str(run_a), "-n", "20", "--steps", "4", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = (out / "errors.csv").read_text().strip().splitlines()
    assert summary["n"] == 20 and len(rows) == 21 and rows[0].startswith("index,label,mse")
    mse = np.array([float(r.split(",")[2]) for r in rows[1:]])
    assert math.isclose(summary["mse_mean"], mse.mean(), rel_tol=1e-5)
    assert np.load(out / "z.npy", allow_pickle=False).shape == (20, 4)
    assert (out / "pairs.png").stat().st_size > 0 and (out / "loss.png").stat().st_size > 0
    report = tmp_path / "cmp.json"
    assert main(["compare", str(run_a), str(run_b), "-n", "10", "--steps", "3", "--out", str(report)]) == 0
    ranking = json.loads(report.read_text())["ranking"]
    assert [r["rank"] for r in ranking] == [1, 2] and ranking[0]["mse_mean"] <= ranking[1]["mse_mean"]
    assert {r["method"] for r in ranking} == {"bigan", "ali"} and "MSE mean +- std" in capsys.readouterr().out
    assert main(["invert", str(run_a), "-n", "4", "--steps", "1", "--restarts", "0", "--out", str(out)]) == 2
    assert "restarts must be an integer >= 1" in capsys.readouterr().err


def test_line_plot_writes_a_png_and_rejects_empty_series(tmp_path):
    from PIL import Image

    series = {"a": [3.0, 2.0, 1.5], "b": torch.tensor([2.0, 1.0, 0.5])}
    path = line_plot(series, tmp_path / "p.png", log_y=True)
    assert Image.open(path).size == (720, 440)
    with pytest.raises(ValueError, match="at least one value"):
        line_plot({"a": []}, tmp_path / "q.png")
