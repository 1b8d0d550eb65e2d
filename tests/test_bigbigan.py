"""BigBiGAN and the image networks: shapes, scores, losses, encoder, EMA, resolutions, training."""

import json
import math

import pytest
import torch

from advrep.checkpoint import load_model
from advrep.cli import main
from advrep.evaluate import evaluate, refresh_batch_norm
from advrep.methods import build_method, make_config
from advrep.methods import losses as L
from advrep.nets import (
    DCGANFeatures,
    DCGANGenerator,
    ImageEncoder,
    JointDiscriminator,
    MLPEncoder,
    MLPGenerator,
    ResNetFeatures,
    ResNetGenerator,
    bigan_networks,
    init_normal_,
)
from advrep.train import train
from advrep.train.loop import TrainingError, make_optimizers, optimizer_lrs, train_step


def tiny(method="bigbigan", **kw):
    settings = {"hidden": 32, "latent_dim": 4, "width": 8, "batch_size": 16, **kw}
    return make_config(method, **settings)


# --- networks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32, 64])
def test_conv_networks_make_and_read_images_of_every_size(size, channels):
    shape = (channels, size, size)
    z = torch.randn(2, 6)
    x = torch.rand(2, *shape)
    for gen in (DCGANGenerator(6, shape, width=8), ResNetGenerator(6, shape, width=4)):
        out = gen(z)
        assert out.shape == (2, *shape) and 0 <= out.min() and out.max() <= 1
    dc = DCGANFeatures(shape, width=8, out_features=20)
    res = ResNetFeatures(shape, width=4, spectral_norm=True)
    assert dc(x).shape == (2, 20) and res(x).shape == (2, res.out_features)
    assert torch.allclose(dc(x.flatten(1)), dc(x))  # flat input is the same images


def test_conv_networks_refuse_sizes_they_cannot_build_and_inputs_of_the_wrong_shape():
    with pytest.raises(ValueError, match="6x6"):
        DCGANGenerator(4, (1, 6, 6))
    with pytest.raises(ValueError, match="got input of shape"):
        DCGANFeatures((1, 28, 28), width=8)(torch.rand(2, 1, 32, 32))


def test_dcgan_channel_ladder_follows_the_dcgan_recipe():
    # 64x64: a 4x4 base, then 512-256-128-64 channels (width 64), as in Radford et al.
    g = DCGANGenerator(100, (3, 64, 64), width=64)
    assert g.base == (512, 4, 4)
    convs = [m for m in g.up if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [256, 128, 64, 3]
    assert DCGANGenerator(10, (1, 28, 28), width=8).base == (16, 7, 7)


def test_mlp_path_of_bigan_is_the_old_construction_bit_for_bit():
    cfg = make_config("bigan", hidden=32, latent_dim=4)
    torch.manual_seed(0)
    got = bigan_networks(cfg, (1, 8, 8)).state_dict()
    torch.manual_seed(0)
    want = init_normal_(torch.nn.ModuleDict({
        "G": MLPGenerator(4, 64, 32), "E": MLPEncoder(64, 4, 32, bounded=True, stochastic=False),
        "D": JointDiscriminator(64, 4, 32)}), 0.02).state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in got)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_bigan_and_ali_train_with_image_networks(arch):
    for method in ("bigan", "ali"):
        m = build_method(tiny(method, arch=arch), (1, 16, 16))
        assert isinstance(m.nets["E"], ImageEncoder)
        opts = make_optimizers(m, m.cfg)
        params = {k: m.parameters_of(k) for k in m.optimizers}
        x, rng = torch.rand(8, 1, 16, 16), torch.Generator().manual_seed(0)
        logs = train_step(m, opts, params, x, None, rng, step=0)
        assert all(math.isfinite(v) for v in logs.values())
        m.nets.eval()
        assert m.reconstruct(torch.rand(3, 1, 16, 16)).shape == (3, 1, 16, 16)


# --- losses and scores --------------------------------------------------------------------------------

def test_bigbigan_losses_hinge_each_score_and_sum_them():
    real = tuple(torch.tensor(v) for v in ([2.0, 0.5], [0.0, -1.0], [1.5, 3.0]))
    fake = tuple(torch.tensor(v) for v in ([-2.0, 0.0], [0.5, -0.5], [-1.0, 1.0]))
    d, eg = L.bigbigan_losses(real, fake, unary=True)
    # by hand: mean(relu(1 - real)) + mean(relu(1 + fake)) for each score
    want_d = (0.25 + 0.5) + (1.5 + 1.0) + (0.0 + 1.0)
    want_eg = (1.25 - -1.0) + (-0.5 - 0.0) + (2.25 - 0.0)
    assert d.item() == pytest.approx(want_d) and eg.item() == pytest.approx(want_eg)
    d_joint, eg_joint = L.bigbigan_losses(real, fake, unary=False)
    assert d_joint.item() == pytest.approx(1.0) and eg_joint.item() == pytest.approx(2.25)
    # a discriminator beyond every margin has nothing left to learn
    far = L.hinge_discriminator_loss(torch.tensor([1.0, 5.0]), torch.tensor([-1.0, -3.0]))
    assert far.item() == 0.0


def test_unary_scores_train_the_unary_heads_and_only_when_asked():
    x = torch.rand(16, 1, 8, 8)
    for unary in (True, False):
        torch.manual_seed(0)
        m = build_method(tiny(unary_scores=unary), (1, 8, 8))
        losses, logs = m.losses(0, x, None, torch.Generator().manual_seed(0))
        D = m.nets["D"]
        heads = [D.score_x, D.score_z, D.score_xz]
        grads = torch.autograd.grad(losses["D"], [h.parametrizations.weight.original for h in heads],
                                    allow_unused=True)
        assert (grads[0] is not None and grads[1] is not None) == unary
        assert grads[2] is not None and grads[2].abs().sum() > 0
        assert {"s_x_real", "s_z_fake", "s_xz_real"} <= set(logs)


def test_encoder_gets_gradient_only_from_encoder_pairs_and_generator_only_from_generator_pairs():
    torch.manual_seed(0)
    m = build_method(tiny(), (1, 8, 8))
    x = torch.rand(16, 1, 8, 8)
    losses, _ = m.losses(0, x, None, torch.Generator().manual_seed(0))
    assert losses["E"] is losses["G"]  # one loss; the loop's backward(inputs=) splits it
    e_grads = torch.autograd.grad(losses["E"], m.parameters_of("E"), retain_graph=True)
    g_grads = torch.autograd.grad(losses["G"], m.parameters_of("G"))
    assert all(g is not None for g in e_grads + g_grads)
    assert sum(g.abs().sum() for g in e_grads) > 0 and sum(g.abs().sum() for g in g_grads) > 0


def test_stochastic_encoder_samples_around_its_mean_and_deterministic_one_does_not():
    x = torch.rand(64, 1, 8, 8)
    m = build_method(tiny(), (1, 8, 8))
    m.nets.eval()
    E = m.nets["E"]
    mean, std = E.pre_head(E.features(x.flatten(1)))
    assert std is not None and (std > 0).all()
    draws = torch.stack([E(x.flatten(1)) for _ in range(200)])  # [200, 64, 4]
    assert torch.allclose(draws.mean(0), m.encode(x), atol=4 * std.max().item() / math.sqrt(200))
    assert torch.allclose(draws.std(0), std, rtol=0.25)
    det = build_method(tiny(stochastic_encoder=False), (1, 8, 8))
    det.nets.eval()
    assert torch.equal(det.nets["E"](x.flatten(1)), det.encode(x))


# --- learning rates, EMA, resolutions ------------------------------------------------------------------

def test_encoder_learning_rate_multiplier_reaches_the_optimiser_and_survives_the_schedule():
    m = build_method(tiny(encoder_lr_mult=5.0, lr=1e-3), (1, 8, 8))
    opts = make_optimizers(m, m.cfg)
    assert opts["E"].param_groups[0]["lr"] == pytest.approx(5e-3)
    assert opts["G"].param_groups[0]["lr"] == opts["D"].param_groups[0]["lr"] == pytest.approx(1e-3)
    lrs = optimizer_lrs(m, m.cfg, 0.1)
    assert lrs == pytest.approx({"D": 1e-4, "E": 5e-4, "G": 1e-4})
    m.lr_multipliers = lambda: {"encoder": 2.0}
    with pytest.raises(TrainingError, match="encoder"):
        make_optimizers(m, m.cfg)


def test_ema_generator_averages_g_and_is_what_generate_uses():
    m = build_method(tiny(ema_decay=0.9), (1, 8, 8))
    G, G_ema = m.nets["G"], m.nets["G_ema"]
    assert not any(p.requires_grad for p in G_ema.parameters())
    assert "G_ema" not in {n for nets in m.optimizers.values() for n in nets}
    old = [p.clone() for p in G_ema.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    m.after_step(1000)  # past the warm-up: the decay is 0.9
    for p_ema, p0, p in zip(G_ema.parameters(), old, G.parameters(), strict=True):
        assert torch.allclose(p_ema, 0.9 * p0 + 0.1 * p, atol=1e-6)
    m.after_step(1)  # warm-up: decay (1 + 1) / (10 + 1) < 0.9
    m.nets.eval()
    z = m.sample_prior(5)
    assert torch.equal(m.generate(z), G_ema(z))
    assert not torch.allclose(m.generate(z), G(z))
    assert "G_ema" not in build_method(tiny(ema_decay=0.0), (1, 8, 8)).nets
    with pytest.raises(ValueError, match="ema_decay"):
        build_method(tiny(ema_decay=1.0), (1, 8, 8))


def test_encoder_sees_higher_resolution_than_generator_and_discriminator():
    m = build_method(tiny(encoder_scale=2), (1, 16, 16))
    assert m.gen_shape == (1, 8, 8)
    assert m.nets["E"].trunk.image_shape == (1, 16, 16)
    assert m.nets["D"].F.image_shape == (1, 8, 8) and m.nets["G"].image_shape == (1, 8, 8)
    x = torch.rand(4, 1, 16, 16)
    pooled = m.to_generator_resolution(x)
    assert torch.allclose(pooled[:, :, 0, 0], x[:, :, :2, :2].mean(dim=(2, 3)))
    opts = make_optimizers(m, m.cfg)
    params = {k: m.parameters_of(k) for k in m.optimizers}
    train_step(m, opts, params, x.repeat(4, 1, 1, 1), None, torch.Generator().manual_seed(0), step=0)
    m.nets.eval()
    assert m.generate(m.sample_prior(3)).shape == (3, 1, 16, 16)  # upsampled to the data's size
    assert m.reconstruct(x).shape == x.shape
    with pytest.raises(ValueError, match="encoder_scale=3"):
        build_method(tiny(encoder_scale=3), (1, 16, 16))


# --- end to end ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("bigbigan") / "run"
    cfg = tiny(data="digits", epochs=1, decay_epochs=1, batch_size=64, encoder_lr_mult=4.0, lr=1e-3,
               eval_every=0, sample_every=0, progress=False, log_every=5)
    summary = train(cfg, run)
    return run, summary


def test_training_run_checkpoints_the_ema_and_keeps_the_lr_multiplier_in_the_schedule(digits_run):
    run, summary = digits_run
    assert math.isfinite(summary["1nn_test.penultimate"])
    ckpt = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    state = torch.load(ckpt / "state.pt", weights_only=True)
    lrs = {name: s["param_groups"][0]["lr"] for name, s in state["optimizers"].items()}
    # the second epoch decays to final_lr_scale (0.01): the encoder's multiplier of 4 still applies
    assert lrs == pytest.approx({"D": 1e-5, "E": 4e-5, "G": 1e-5})
    model = load_model(run)
    assert "G_ema" in model.nets
    z = model.sample_prior(4, torch.Generator().manual_seed(0))
    before = model.generate(z)
    ema_stats = [b.clone() for b in model.nets["G_ema"].buffers()]
    power_iteration = {k: v.clone() for k, v in model.nets.named_buffers() if k.endswith(("._u", "._v"))}
    from advrep.data import load_dataset
    refresh_batch_norm(model, load_dataset("digits", "train"), batches=3)
    # refreshing the trained networks' statistics leaves the average's alone, and its training-mode
    # forwards leave spectral norm's vectors as they were (evaluating must not change training)
    assert all(torch.equal(a, b) for a, b in zip(ema_stats, model.nets["G_ema"].buffers(), strict=True))
    after = dict(model.nets.named_buffers())
    assert power_iteration and all(torch.equal(v, after[k]) for k, v in power_iteration.items())
    model.nets.eval()
    assert torch.equal(model.generate(z), before)


def test_evaluation_reports_the_bn_crelu_probe_beside_the_plain_one(digits_run):
    from advrep.data import load_dataset

    run, _ = digits_run
    model = load_model(run)
    train_set, test_set = load_dataset("digits", "train"), load_dataset("digits", "test")
    results = evaluate(model, train_set, test_set, protocols=("test",))
    for feature in ("z", "penultimate"):
        for key in (f"probe_test.{feature}", f"probe_bncrelu_test.{feature}"):
            assert 0.0 <= results[key] <= 100.0
    assert results["probe_bncrelu_test.penultimate"] > 15.0  # well above chance (10%)


def test_cli_trains_a_classifier_and_scores_a_run_with_domain_fid(digits_run, tmp_path, capsys):
    run, _ = digits_run
    clf = tmp_path / "clf"
    assert main(["train-classifier", "--data", "digits", "--out", str(clf), "--epochs", "1"]) == 0
    digest = json.loads((clf / "classifier.json").read_text())["sha256"]
    out = tmp_path / "fid.json"
    assert main(["fid", str(run), "--classifier", str(clf), "-n", "300", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["classifier_sha256"] == digest and results["n_generated"] == 300
    assert results["domain_fid"] > 0 and math.isfinite(results["domain_kid"])
    assert digest in capsys.readouterr().out
    assert main(["fid", str(run), "--classifier", str(tmp_path / "nothing")]) == 2
