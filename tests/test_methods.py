"""One harness for every registered method: a method is tested the day it is registered."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from advrep.methods import METHODS, build_method, make_config
from advrep.methods import losses as L
from advrep.train.loop import make_optimizers, train_step

IMAGE = (1, 8, 8)


def tiny(name, **kw):
    return make_config(name, hidden=32, latent_dim=4, batch_size=16, image_shape=list(IMAGE), **kw)


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *IMAGE, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_one_step_and_updates_every_network(name):
    torch.manual_seed(0)
    method = build_method(tiny(name), IMAGE)
    opts = make_optimizers(method, method.cfg)
    params = {k: method.parameters_of(k) for k in method.optimizers}
    before = {k: v.detach().clone() for k, v in method.nets.named_parameters()}
    x, y = batch()
    rng = torch.Generator().manual_seed(1)
    # Two steps: a discriminator's zero-initialised scoring layer gives E and G no gradient at step 0.
    for step in range(2):
        logs = train_step(method, opts, params, x, y, rng, step=step)
    assert all(math.isfinite(v) for v in logs.values())
    for phase in method.phases:
        for opt in phase:
            assert f"loss_{opt}" in logs
    changed = {k.split(".")[0] for k, v in method.nets.named_parameters() if not torch.equal(v, before[k])}
    trained = {net for nets in method.optimizers.values() for net in nets}
    assert changed == trained
    # A network no optimiser owns (an EMA copy of G) must say so by needing no gradients; a network
    # merely forgotten in `optimizers` would still require them and fail here.
    for name in set(method.nets.keys()) - trained:
        assert not any(p.requires_grad for p in method.nets[name].parameters()), name


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_features_and_shapes(name):
    method = build_method(tiny(name), IMAGE)
    method.nets.eval()
    x, _ = batch(5)
    feats = method.features(x)
    assert feats and all(f.shape[0] == 5 and f.ndim == 2 for f in feats.values())
    if method.has_encoder:
        z = method.encode(x)
        assert z.shape == (5, 4)
        if method.cfg.prior == "uniform":
            assert z.abs().max() <= 1
    if method.has_generator:
        g = method.generate(method.sample_prior(3))
        assert g.shape == (3, *IMAGE) and g.min() >= 0 and g.max() <= 1


@pytest.mark.parametrize("name", ["bigan", "ali", "gan", "latent_regressor", "joint_latent_regressor", "autoencoder"])
def test_bn_eps_reaches_every_batch_norm_of_the_paper_mlps(name):
    """bn_eps (the reference code's 1e-8; default PyTorch's 1e-5) sets every batch norm of the BiGAN paper's
    MLPs, and a network built with it computes with it: a unit of tiny batch variance is scaled to unit
    variance by 1e-8 but damped by 1e-5."""
    default = build_method(tiny(name), IMAGE)
    reference = build_method(tiny(name, bn_eps=1e-8), IMAGE)
    for method, eps in ((default, 1e-5), (reference, 1e-8)):
        norms = [m for m in method.nets.modules() if isinstance(m, torch.nn.BatchNorm1d)]
        assert norms and all(m.eps == eps for m in norms)
    bn = next(m for m in reference.nets.modules() if isinstance(m, torch.nn.BatchNorm1d)).train()
    h = 1e-3 * torch.randn(64, bn.num_features, generator=torch.Generator().manual_seed(0))  # variance 1e-6
    assert bn(h).std(0).mean() == pytest.approx(1.0, rel=0.02)
    damped = next(m for m in default.nets.modules() if isinstance(m, torch.nn.BatchNorm1d)).train()
    assert damped(h).std(0).mean() < 0.35  # sqrt(1e-6 / (1e-6 + 1e-5)) = 0.30


def test_losses_match_binary_cross_entropy():
    real, fake = torch.randn(8), torch.randn(8)
    ones, zeros = torch.ones(8), torch.zeros(8)
    bce = F.binary_cross_entropy_with_logits
    d = 0.5 * (bce(real, ones) + bce(fake, zeros))
    assert torch.allclose(L.discriminator_loss(real, fake), d)
    assert torch.allclose(L.generator_loss(real, fake, "minimax"), -d)
    assert torch.allclose(L.generator_loss(real, fake, "inverse"), 0.5 * (bce(real, zeros) + bce(fake, ones)))
    # The zero-initialised scoring layer makes every logit 0: both losses start at log 2.
    assert L.discriminator_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="objective"):
        L.generator_loss(real, fake, "hinge")


def test_simultaneous_update_equals_separate_textbook_gradients():
    """One forward pass, two backward passes restricted by `inputs=`: each network gets exactly the
    gradient of its own loss at the pre-update parameters."""
    torch.manual_seed(0)
    method = build_method(tiny("bigan"), IMAGE)
    for p in method.nets["D"].out.parameters():
        torch.nn.init.normal_(p, 0, 0.1)  # non-zero scores so every gradient is non-trivial
    x, y = batch()
    reference = copy.deepcopy(method)
    opts = make_optimizers(method, method.cfg)
    for opt in opts.values():  # plain SGD-like check: read the gradients, don't step
        opt.step = lambda *a, **k: None
    params = {k: method.parameters_of(k) for k in method.optimizers}
    train_step(method, opts, params, x, y, torch.Generator().manual_seed(3), step=0)

    losses, _ = reference.losses(0, x, y, torch.Generator().manual_seed(3))
    d_grads = torch.autograd.grad(losses["D"], reference.parameters_of("D"), retain_graph=True)
    eg_grads = torch.autograd.grad(losses["EG"], reference.parameters_of("EG"))
    for got, want in zip(method.parameters_of("D"), d_grads):
        assert torch.allclose(got.grad, want, atol=1e-6)
    for got, want in zip(method.parameters_of("EG"), eg_grads):
        assert torch.allclose(got.grad, want, atol=1e-6)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match="bigan"):
        make_config("bigann")
