"""The BiGAN paper's baselines: GAN (D features), latent regressor, joint latent regressor, autoencoder."""

import json
import math

import pytest
import torch

from advrep.checkpoint import load_model
from advrep.cli import main
from advrep.data import load_dataset
from advrep.evaluate import evaluate
from advrep.methods import build_method, make_config
from advrep.methods import losses as L
from advrep.train import train

IMAGE = (1, 8, 8)


def tiny(name, **kw):
    return make_config(name, hidden=32, latent_dim=4, batch_size=16, image_shape=list(IMAGE), **kw)


def images(n=16, seed=0):
    return torch.rand(n, *IMAGE, generator=torch.Generator().manual_seed(seed))


def test_uniform_regression_loss_is_cross_entropy_against_rescaled_z():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, generator=g) * 3  # encoder logits
    z = torch.rand(6, 5, generator=g) * 2 - 1  # prior samples in [-1, 1]
    t = (z + 1) / 2
    p = 1 / (1 + torch.exp(-a.double()))
    want = -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()  # per dim, then over the batch
    assert L.latent_regression_loss(a, z, "uniform").item() == pytest.approx(want.item(), rel=1e-5)
    # Minimised where sigmoid(a) = (z + 1) / 2, i.e. where the squashed output 2 sigmoid(a) - 1 equals z.
    exact = torch.logit(t.double()).float()
    assert L.latent_regression_loss(exact, z, "uniform") < L.latent_regression_loss(exact + 0.1, z, "uniform")
    want_gaussian = 0.5 * ((a - z) ** 2).mean()
    assert L.latent_regression_loss(a, z, "gaussian").item() == pytest.approx(want_gaussian.item())
    with pytest.raises(ValueError, match="uniform"):
        L.latent_regression_loss(a, z, "laplace")


def test_latent_regressor_sends_no_gradient_into_g_and_joint_lr_does():
    torch.manual_seed(0)
    lr = build_method(tiny("latent_regressor"), IMAGE)
    jlr = build_method(tiny("joint_latent_regressor"), IMAGE)
    jlr.nets.load_state_dict(lr.nets.state_dict())  # same networks, same weights
    for m in (lr, jlr):  # non-zero scores and codes so every gradient path is live
        torch.nn.init.normal_(m.nets["D"].out.weight, 0, 0.1, generator=torch.Generator().manual_seed(1))
        torch.nn.init.normal_(m.nets["E"].out.weight, 0, 0.1, generator=torch.Generator().manual_seed(2))
    x = images()
    lr_losses, _ = lr.losses(0, x, None, torch.Generator().manual_seed(3))
    jlr_losses, _ = jlr.losses(0, x, None, torch.Generator().manual_seed(3))
    # The regression loss recomputed by hand from the same z (the first draw from the same generator).
    z = jlr.sample_prior(16, torch.Generator().manual_seed(3))
    E = jlr.nets["E"]
    regress = L.latent_regression_loss(E.out(E.features(jlr.nets["G"](z))), z, "uniform")
    G_lr, G_jlr = lr.parameters_of("G"), list(jlr.nets["G"].parameters())
    into_g = torch.autograd.grad(lr_losses["E"], G_lr, retain_graph=True, allow_unused=True)
    assert all(g is None for g in into_g)
    # Joint LR: G's gradient is the GAN gradient plus 0.25 x the regression gradient through G(z) ...
    g_gan = torch.autograd.grad(lr_losses["G"], G_lr, retain_graph=True)
    g_joint = torch.autograd.grad(jlr_losses["EG"], G_jlr, retain_graph=True)
    g_reg = torch.autograd.grad(regress, G_jlr)
    for a, b, c in zip(g_joint, g_gan, g_reg, strict=True):
        assert torch.allclose(a, b + 0.25 * c, atol=1e-6)
    assert any(c.abs().max() > 0 for c in g_reg)
    # ... and E, updated with G in the reference code, gets 0.25 x the LR encoder's gradient.
    e_lr = torch.autograd.grad(lr_losses["E"], lr.parameters_of("E"))
    e_jlr = torch.autograd.grad(jlr_losses["EG"], list(jlr.nets["E"].parameters()))
    for a, b in zip(e_jlr, e_lr, strict=True):
        assert torch.allclose(a, 0.25 * b, atol=1e-7)
    # D sees the same game in both.
    assert torch.allclose(lr_losses["D"], jlr_losses["D"])


def test_regressor_encoder_starts_at_the_prior_centre():
    # The reference code zero-initialises the regressor's output layer: E(x) = 2 sigmoid(0) - 1 = 0.
    method = build_method(tiny("latent_regressor"), IMAGE)
    method.nets.eval()
    assert torch.equal(method.encode(images(5)), torch.zeros(5, 4))


def test_regressors_also_give_their_discriminators_features():
    # Their GAN is the D baseline's: its penultimate layer is scored beside the encoder's, as the
    # reference code's LR runs log NNC_d beside NNC_e-.
    for name in ("latent_regressor", "joint_latent_regressor"):
        method = build_method(tiny(name), IMAGE)
        method.nets.eval()
        x = images(5)
        with torch.no_grad():
            feats = method.features(x)
            assert set(feats) == {"z", "z_pre", "penultimate", "discriminator"}
            assert torch.equal(feats["discriminator"], method.nets["D"].features(x.reshape(5, -1)))
            assert feats["discriminator"].shape == (5, 32)


def test_batch_norm_statistics_come_from_real_images_for_encoder_and_discriminator():
    torch.manual_seed(0)
    for name in ("latent_regressor", "gan"):
        method = build_method(tiny(name), IMAGE)
        norms = [m for m in method.nets.modules() if isinstance(m, torch.nn.BatchNorm1d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # one batch: the running mean is that batch's mean
        method.nets.train()
        x = images(32, seed=4)
        flat = x.reshape(32, -1)
        with torch.no_grad():
            method.batch_norm_forward(x, None, torch.Generator().manual_seed(0))
            nets = {"D": method.nets["D"]} | ({"E": method.nets["E"]} if name != "gan" else {})
            for net in nets.values():
                pre = net.fc2(torch.nn.functional.leaky_relu(net.fc1(flat), 0.2))  # [32, hidden]
                assert torch.allclose(net.bn2.running_mean, pre.mean(0), atol=1e-5)
                assert torch.allclose(net.bn2.running_var, pre.var(0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_autoencoder_minimises_the_chosen_reconstruction_error(kind):
    method = build_method(tiny("autoencoder", recon_loss=kind), IMAGE)
    x = images()
    losses, _ = method.losses(0, x, None, None)
    with torch.no_grad():
        x_hat = method.reconstruct(x).reshape(16, -1)  # train mode: the same batch statistics
    diff = x.reshape(16, -1) - x_hat
    want = diff.pow(2).sum(1).mean() if kind == "l2" else diff.abs().sum(1).mean()
    assert losses["AE"].item() == pytest.approx(want.item(), rel=1e-5)


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="joint_latent_regressor"):
        build_method(tiny("latent_regressor", regress_weight=0.25), IMAGE)
    with pytest.raises(ValueError, match="regress_weight"):
        build_method(tiny("joint_latent_regressor", regress_weight=0.0), IMAGE)
    with pytest.raises(ValueError, match="stochastic_encoder=false"):
        build_method(tiny("autoencoder", stochastic_encoder=True), IMAGE)
    assert make_config("joint_latent_regressor").regress_weight == 0.25
    assert make_config("autoencoder", file="configs/autoencoder_l1_mnist.toml").recon_loss == "l1"


def _train_tiny(name, run_dir, **kw):
    cfg = make_config(name, data="digits", hidden=32, latent_dim=4, batch_size=64, epochs=1, decay_epochs=1,
                      eval_every=0, progress=False, **kw)
    train(cfg, run_dir)
    return load_model(run_dir)


def test_gan_without_encoder_trains_checkpoints_and_evaluates(tmp_path):
    torch.manual_seed(0)
    method = _train_tiny("gan", tmp_path / "gan")
    assert not method.has_encoder and (tmp_path / "gan" / "samples").is_dir()
    assert not (tmp_path / "gan" / "recon").exists()
    with pytest.raises(NotImplementedError, match="no encoder"):
        method.encode(images(2))
    train_set, test_set = load_dataset("digits", "train"), load_dataset("digits", "test")
    results = evaluate(method, train_set, test_set, probe=False, protocols=("test",))
    assert set(results) == {"1nn_test.discriminator"}
    assert 10 < results["1nn_test.discriminator"] <= 100  # 10 classes: better than chance even untrained


def test_autoencoder_reconstructs_and_reports_a_recon_ratio(tmp_path):
    torch.manual_seed(0)
    method = _train_tiny("autoencoder", tmp_path / "ae", recon_loss="l1")
    assert method.cfg.recon_loss == "l1" and (tmp_path / "ae" / "recon").is_dir()
    train_set, test_set = load_dataset("digits", "train"), load_dataset("digits", "test")
    results = evaluate(method, train_set, test_set, probe=False, protocols=("test",))
    assert {"1nn_test.z", "1nn_test.penultimate", "recon_ratio"} <= set(results)
    assert 0 < results["recon_ratio"] < 1 and math.isfinite(results["recon_error"])


def test_joint_latent_regressor_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "jlr"
    settings = ["hidden=32", "latent_dim=4", "batch_size=64", "epochs=1", "decay_epochs=1", "progress=false"]
    rc = main(["train", "joint_latent_regressor", "--data", "digits", "--run-dir", str(run),
               *[a for s in settings for a in ("--set", s)]])
    assert rc == 0
    assert main(["eval", str(run), "--no-probe", "--no-figures"]) == 0
    results = json.loads((run / "eval.json").read_text())
    assert "1nn_test.penultimate" in results and results["recon_ratio"] > 0
    assert 10 < results["1nn_test.discriminator"] <= 100  # the reference code's NNC_d, beside NNC_e-
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "joint_latent_regressor" in out and "regress_weight" in out and "0.25" in out
