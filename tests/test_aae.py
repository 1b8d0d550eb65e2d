"""Adversarial autoencoders: priors, labelled subsets, the per-cost optimisers, the evaluation numbers
(clustering error, Parzen log-likelihood) and short real trainings on the embedded digits."""

import math
import statistics

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from advrep.cli import main
from advrep.data import load_dataset
from advrep.eval.clustering import classification_error, cluster_labels, clustering_error, mean_std
from advrep.eval.parzen import (
    parzen_evaluation,
    parzen_log_densities,
    parzen_log_likelihood,
    parzen_select_sigma,
)
from advrep.evaluate import evaluate
from advrep.latent_plots import PALETTE, scatter_image
from advrep.methods import build_method, make_config
from advrep.methods.aae import balanced_subset
from advrep.methods.aae_semi import head_separation_cost
from advrep.nets.priors import categorical, gaussian_mixture, get_prior, swiss_roll, swiss_roll_piece
from advrep.train import train
from advrep.train.loop import make_optimizers, optimizer_lrs

IMAGE = (1, 8, 8)


def tiny(name, **kw):
    return make_config(name, hidden=32, latent_dim=4, batch_size=16, image_shape=list(IMAGE), **kw)


# --- priors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mixture10", "swiss_roll"])
def test_2d_priors_shapes_and_registry(name):
    g = torch.Generator().manual_seed(0)
    z = get_prior(name)(500, 4, generator=g)
    assert z.shape == (500, 4) and torch.isfinite(z).all()
    with pytest.raises(ValueError, match="latent_dim must be even"):
        get_prior(name)(5, 3)


def test_mixture_places_each_label_in_its_own_component():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(10).repeat_interleave(300)  # [3000]
    z = gaussian_mixture(3000, 2, generator=g, labels=labels)
    # Component k's mean points at angle 2 pi k / 10; the nearest of the ten directions names the label.
    angles = torch.atan2(z[:, 1], z[:, 0]) % (2 * math.pi)
    nearest = torch.round(angles / (2 * math.pi / 10)).long() % 10
    assert (nearest == labels).float().mean() > 0.99
    centre = z.reshape(10, 300, 2).mean(1)  # [10, 2]
    expected = 4.0 * torch.stack([torch.cos(torch.arange(10) * 2 * math.pi / 10),
                                  torch.sin(torch.arange(10) * 2 * math.pi / 10)], 1)
    assert torch.allclose(centre, expected, atol=0.15)
    # Pairs of coordinates in a 4-D code share the component.
    z4 = gaussian_mixture(100, 4, generator=g, labels=torch.full((100,), 3))
    a = torch.atan2(z4[:, 3], z4[:, 2]) % (2 * math.pi)
    assert (torch.round(a / (2 * math.pi / 10)).long() % 10 == 3).float().mean() > 0.95


def test_swiss_roll_pieces_follow_the_labels_and_cover_the_roll():
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 10, (2000,), generator=g)
    z = swiss_roll(2000, 2, generator=g, labels=labels)
    assert torch.equal(swiss_roll_piece(z), labels)
    free = swiss_roll(5000, 2, generator=g)
    counts = torch.bincount(swiss_roll_piece(free), minlength=10)
    assert counts.min() > 400 and counts.max() < 600  # ten pieces of equal probability


def test_conditional_sampling_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels must be 4 integers in \[0, 10\)"):
        gaussian_mixture(4, 2, labels=torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="labels must be 3"):
        swiss_roll(3, 2, labels=torch.tensor([0, 1]))


def test_categorical_prior_is_one_hot_and_uniform():
    y = categorical(5000, 16, generator=torch.Generator().manual_seed(0))
    assert y.shape == (5000, 16) and torch.equal(y.sum(1), torch.ones(5000))
    assert set(y.unique().tolist()) == {0, 1}
    freq = y.mean(0)
    assert (freq - 1 / 16).abs().max() < 0.02


# --- labelled subsets ------------------------------------------------------------------------------

def test_labelled_subset_is_balanced_seeded_and_sorted():
    y = torch.arange(10).repeat(50)[torch.randperm(500, generator=torch.Generator().manual_seed(0))]
    idx = balanced_subset(y, 100, seed=3)
    assert len(idx) == 100 and len(idx.unique()) == 100 and torch.equal(idx, idx.sort().values)
    assert torch.bincount(y[idx], minlength=10).tolist() == [10] * 10
    assert torch.equal(idx, balanced_subset(y, 100, seed=3))
    assert not torch.equal(idx, balanced_subset(y, 100, seed=4))
    assert torch.equal(balanced_subset(y, 0, seed=0), torch.arange(500))
    with pytest.raises(ValueError, match="multiple of 10"):
        balanced_subset(y, 105, seed=0)
    with pytest.raises(ValueError, match="needs 10 examples of class 0, but the data has 5"):
        balanced_subset(torch.tensor([0] * 5 + [1] * 95), 20, seed=0)


def test_semi_supervised_phase_only_sees_the_labelled_subset():
    data = load_dataset("digits", "train")
    method = build_method(tiny("aae_semi", aae_labels=20, seed=5), data.image_shape)
    method.prepare(data)
    assert torch.bincount(data.y[method.labelled_idx], minlength=10).tolist() == [2] * 10
    rng = torch.Generator().manual_seed(0)
    x_l, y_l = method.labelled_batch(data.x[:64], data.y[:64], rng)
    allowed = {tuple(r.flatten().tolist()) for r in data.x[method.labelled_idx]}
    assert all(tuple(r.flatten().tolist()) in allowed for r in x_l)
    again = build_method(tiny("aae_semi", aae_labels=20, seed=5), data.image_shape)
    again.prepare(data)
    assert torch.equal(again.labelled_idx, method.labelled_idx)  # resume re-derives the same subset


# --- optimisers ------------------------------------------------------------------------------------

def test_each_cost_gets_the_papers_momentum_sgd_and_schedule():
    method = build_method(tiny("aae_semi"), IMAGE)
    opts = make_optimizers(method, method.cfg)
    assert {k: type(o).__name__ for k, o in opts.items()} == dict.fromkeys(("AE", "D", "Gen", "Sup"), "SGD")
    assert opts["AE"].defaults["momentum"] == 0.9 and opts["D"].defaults["momentum"] == 0.1
    at = {e: optimizer_lrs(method, method.cfg, method.lr_schedule(e)) for e in (0, 49, 50, 999, 1000)}
    assert at[0] == pytest.approx({"AE": 0.01, "D": 0.1, "Gen": 0.1, "Sup": 0.1})
    assert at[49] == at[0] and at[50]["AE"] == pytest.approx(0.001) and at[999]["D"] == pytest.approx(0.01)
    assert at[1000]["Sup"] == pytest.approx(0.001)
    adam = build_method(tiny("aae_semi", aae_optimizer="adam", lr=3e-4), IMAGE)
    assert all(type(o).__name__ == "Adam" for o in make_optimizers(adam, adam.cfg).values())
    assert adam.lr_schedule(5000) is None


def test_discriminator_cost_does_not_reach_the_encoder_but_the_generator_cost_does():
    """Regularisation is two sequential steps (section 2): D learns on fixed codes, then E fools D."""
    torch.manual_seed(0)
    method = build_method(tiny("aae_cluster"), IMAGE)
    for net in ("Dy", "Dz"):
        torch.nn.init.normal_(method.nets[net].out.weight, 0, 0.5)  # non-trivial scores
    x, rng = torch.rand(16, *IMAGE), torch.Generator().manual_seed(0)
    d_loss = method.losses(1, x, None, rng)[0]["D"]
    enc = method.parameters_of("Gen")
    assert all(g is None for g in torch.autograd.grad(d_loss, enc, allow_unused=True))
    assert any(g.abs().sum() > 0 for g in torch.autograd.grad(d_loss, method.parameters_of("D")))
    gen_loss = method.losses(2, x, None, rng)[0]["Gen"]
    gen_grads = torch.autograd.grad(gen_loss, enc, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in gen_grads)


def test_label_aware_aae_needs_a_prior_made_of_components():
    with pytest.raises(ValueError, match="prior=mixture10 or prior=swiss_roll"):
        build_method(tiny("aae_labelled", prior="gaussian"), IMAGE)
    method = build_method(tiny("aae_labelled", prior="swiss_roll"), IMAGE)
    assert method.nets["D"].trunk.layers[0].in_features == 4 + 10 + 1  # z, label one-hot, 'unlabelled'


def test_cluster_heads_hinge():
    heads = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])  # distances 5, 1, sqrt(18)
    assert head_separation_cost(heads, 6.0).item() == pytest.approx((6 - 5) + (6 - 1) + (6 - math.sqrt(18)))
    assert head_separation_cost(heads, 0.5).item() == 0.0


# --- evaluation numbers ------------------------------------------------------------------------------

def test_clustering_error_by_majority_label():
    train_assign = [0, 0, 0, 1, 1, 2, 2, 2]
    train_y = [3, 3, 5, 7, 7, 1, 2, 2]
    assert cluster_labels(train_assign, train_y, clusters=4).tolist() == [3, 7, 2, 2]  # empty cluster 3 -> 2
    # test: cluster 0 -> 3, 1 -> 7, 2 -> 2, 3 -> 2 (the overall majority; ties go to the smaller label)
    err = clustering_error(train_assign, train_y, [0, 1, 2, 3, 0], [3, 7, 1, 2, 5], clusters=4)
    assert err == pytest.approx(100 * 2 / 5)
    assert classification_error(torch.tensor([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 50.0
    with pytest.raises(ValueError, match="outside"):
        cluster_labels([0, 5], [1, 1], clusters=3)


def test_mean_std_matches_statistics():
    vals = [1.9, 2.1, 1.7, 2.4]
    assert mean_std(vals) == pytest.approx((statistics.mean(vals), statistics.stdev(vals)))
    assert mean_std([3.0]) == (3.0, 0.0)


def test_parzen_log_likelihood_against_an_independent_computation():
    rng = np.random.default_rng(0)
    samples, x = rng.random((300, 12)), rng.random((40, 12))
    for sigma in (0.1, 0.3, 1.0):
        sq = ((x[:, None, :] - samples[None, :, :]) ** 2).sum(-1)  # [40, 300]
        expected = logsumexp(-sq / (2 * sigma**2), axis=1) - np.log(300) - 6 * np.log(2 * np.pi * sigma**2)
        got = parzen_log_densities(torch.tensor(samples), torch.tensor(x), [sigma], batch_size=7)[0].numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
        res = parzen_log_likelihood(samples, x, sigma)
        assert res["mean"] == pytest.approx(expected.mean(), rel=1e-4)
        assert res["std_err"] == pytest.approx(expected.std(ddof=1) / np.sqrt(40), rel=1e-3)
    # One sample, one point: exactly the Gaussian density.
    one = parzen_log_likelihood(np.zeros((1, 3)), np.array([[1.0, 0.0, 0.0]]), 0.5)["mean"]
    assert one == pytest.approx(-0.5 / 0.25 - 1.5 * np.log(2 * np.pi * 0.25))


def test_parzen_sigma_is_chosen_on_validation():
    rng = np.random.default_rng(1)
    samples, val, test = rng.normal(size=(400, 5)), rng.normal(size=(200, 5)), rng.normal(size=(200, 5))
    grid = [0.05, 0.2, 0.5, 1.0, 3.0]
    best, scores = parzen_select_sigma(samples, val, grid)
    assert best == max(scores, key=scores.get) and best in (0.5, 1.0)
    out = parzen_evaluation(samples, val, test, sigmas=grid)
    assert out["parzen_sigma"] == best and out["parzen_ll"] == pytest.approx(
        parzen_log_likelihood(samples, test, best)["mean"])
    with pytest.raises(ValueError, match="dimensions"):
        parzen_log_densities(samples, rng.normal(size=(3, 4)), [1.0])


def test_scatter_draws_each_label_in_its_colour():
    img = scatter_image(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([0, 1]), size=200, margin=20,
                        clip_percentile=0.0, dot=2)
    assert img.shape == (200, 290, 3)
    # With 5% padding the data [0, 1] maps to pixels 20 + (0.05 / 1.1) * 160 ~ 27 ... 173.
    lo, hi = round(20 + 160 * 0.05 / 1.1), round(20 + 160 * 1.05 / 1.1)
    assert tuple(img[hi, lo]) == PALETTE[0]  # (0, 0) is bottom-left
    assert tuple(img[lo, hi]) == PALETTE[1]  # (1, 1) is top-right
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        scatter_image(np.zeros((3, 3)), None)


# --- short real trainings ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


@pytest.fixture
def one_thread():
    """Small matrices on a shared two-core machine: one thread is several times faster than two
    threads fighting other processes for the cores."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def test_semi_supervised_aae_learns_digits_from_100_labels(tmp_path, digits, one_thread):
    train_set, test_set = digits
    cfg = make_config("aae_semi", data="digits", hidden=64, epochs=12, batch_size=50, aae_labels=100,
                      eval_every=0, sample_every=0, checkpoint_every=0, progress=False)
    summary = train(cfg, tmp_path / "semi", train_set=train_set, test_set=test_set)
    assert summary["semi_error"] < 30.0  # chance is 90%; ~12% in 1 s on two cores
    # a classifier this good spreads the test images over all ten categories, confidently
    assert summary["clusters_used"] == 10 and 0.5 < summary["y_confidence"] <= 1.0


def test_cli_trains_and_evaluates_the_2d_dimensionality_reduction(tmp_path, capsys, one_thread):
    run = tmp_path / "dimred"
    assert main(["train", "aae_dimred", "--data", "digits", "--run-dir", str(run), "--set", "hidden=32",
                 "--set", "epochs=1", "--set", "progress=false", "--set", "aae_clusters=8"]) == 0
    assert main(["eval", str(run), "--no-probe", "--parzen"]) == 0
    out = capsys.readouterr().out
    assert "cluster_error" in out and "parzen_ll" in out and "clusters_used" in out
    for png in ("samples.png", "latent_scatter.png", "cluster_grid.png"):
        assert (run / "figures" / png).is_file()


def test_supervised_style_grid_and_label_inferring_reconstruction(tmp_path, digits):
    train_set, test_set = digits
    method = build_method(make_config("aae_supervised", hidden=32, latent_dim=4), train_set.image_shape)
    method.nets.eval()
    x = test_set.x[:6]
    with torch.no_grad():
        x_hat = method.reconstruct(x)
        z = method.encode(x)
        renders = torch.stack([method.render(z, torch.full((6,), k)) for k in range(10)])  # [10, 6, ...]
    best = (renders - x).flatten(2).pow(2).sum(2).min(0).values  # [6]
    assert torch.allclose((x_hat - x).flatten(1).pow(2).sum(1), best)
    path = method.figures(test_set, tmp_path)[0]
    assert path.name == "style_grid.png" and path.is_file()
    results = evaluate(method, train_set, test_set, probe=False, protocols=("test",), refresh_bn=False)
    assert 0 <= results["recon_ratio"]


def test_semi_supervised_resume_continues_bit_identically(tmp_path, digits, one_thread):
    """The labelled subset is re-derived from the seed and labelled batches come from the saved rng, so
    a run stopped after epoch 1 and resumed ends with the same weights as one run straight through."""
    from advrep.checkpoint import latest_checkpoint, read_weights

    train_set, test_set = digits
    small = dict(data="digits", hidden=16, batch_size=100, aae_labels=50, eval_every=0, sample_every=0,
                 progress=False, seed=3)
    data = dict(train_set=train_set, test_set=test_set)
    train(make_config("aae_semi", epochs=2, **small), tmp_path / "straight", **data)
    train(make_config("aae_semi", epochs=1, **small), tmp_path / "resumed", **data)
    train(make_config("aae_semi", epochs=2, **small), tmp_path / "resumed", resume=True, **data)
    a = read_weights(latest_checkpoint(tmp_path / "straight") / "weights.safetensors")[1]
    b = read_weights(latest_checkpoint(tmp_path / "resumed") / "weights.safetensors")[1]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
