"""advrep's training steps for the BiGAN paper's MNIST table, checked against the update written out by hand.

The BiGAN, plain GAN (the D row), latent regressor (LR) and joint LR steps are written here a second
time, straight from a reading of the authors' reference code (jeffdonahue/bigan: train_gan.py, gan.py,
net.py, dist.py, lib/updates.py with train_mnist.sh's flags), in plain tensor algebra with none of
advrep's modules: weight matrices laid out [in, out], batch norm as the reference's BatchNorm layer
computes it in training (mean, biased variance, 1e-8 inside the square root, no affine), the losses as
sums of sigmoid cross-entropies with the reference's weights, and Adam as its updater writes it, the L2
decay added to the gradient. advrep's `train_step` and the hand-written step then start from the same
weights and see the same images and codes for several steps; their weights must agree to float64
round-off. The weight decay is raised far above the recipe's 2.5e-5 so that it competes with the
gradients: Adam ignores the scale of a loss, but not against the decay, so a loss weighted 1 where the
reference weights it 0.5 would show.
"""

import pytest
import torch

from advrep.data import Dataset
from advrep.evaluate import refresh_batch_norm
from advrep.methods import build_method, make_config
from advrep.train.loop import make_optimizers, train_step

IMAGE = (1, 8, 8)
STEPS = 6
DECAY = 0.05


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# --- the reference's computation, by hand ------------------------------------------------------------

def bn(h):
    """The reference's BatchNorm in training mode with --nogain --nobias."""
    h = h - h.mean(0)
    return h / torch.sqrt((h * h).mean(0) + 1e-8)


def lrelu(h):
    return torch.where(h > 0, h, 0.2 * h)


def generator(w, z):  # deconvnet_mnist_mlp: z enters the first layer and again at the second
    h = torch.relu(bn(z @ w["G1"]))
    h = torch.relu(bn(h @ w["G2"] + z @ w["Gz"]))
    return torch.sigmoid(h @ w["G3"])


def encoder_logits(w, x):  # mnist_mlp featurizer (no batch norm on its first layer), then the linear predictor
    h = lrelu(x @ w["E1"])
    h = lrelu(bn(h @ w["E2"]))
    return h @ w["E3"]


def joint_discriminator(w, x, z):  # mnist_mlp with z (a projection) added before the second batch norm
    h = lrelu(x @ w["D1"])
    h = lrelu(bn(h @ w["D2"] + z @ w["Dz"]))
    return torch.sigmoid(h @ w["D3"])[:, 0]


def discriminator(w, x):
    h = lrelu(x @ w["D1"])
    h = lrelu(bn(h @ w["D2"]))
    return torch.sigmoid(h @ w["D3"])[:, 0]


def bce(p, target):
    """T.nnet.binary_crossentropy on probabilities, per example."""
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p))


def reference_losses(kind, w, x, z, regress_weight=0.25):
    """{optimiser: (loss, parameter names)} of one batch. D's loss halves each side; with BiGAN's flags E's
    parameters move into G's updater and E/G minimise the mean of the two flipped-label losses; in the
    LR runs G minimises the flipped generated-side loss alone and E regresses z from G(z) with the
    uniform prior's per-dimension-normalised sigmoid cross-entropy against (z + 1) / 2."""
    if kind == "bigan":
        real = joint_discriminator(w, x, 2 * torch.sigmoid(encoder_logits(w, x)) - 1)
        fake = joint_discriminator(w, generator(w, z), z)
        d = 0.5 * bce(real, 1).mean() + 0.5 * bce(fake, 0).mean()
        eg = 0.5 * bce(real, 0).mean() + 0.5 * bce(fake, 1).mean()
        return {"D": (d, ["D1", "D2", "Dz", "D3"]), "EG": (eg, ["E1", "E2", "E3", "G1", "G2", "Gz", "G3"])}
    x_fake = generator(w, z)
    real, fake = discriminator(w, x), discriminator(w, x_fake)
    d = 0.5 * bce(real, 1).mean() + 0.5 * bce(fake, 0).mean()
    g = bce(fake, 1).mean()
    losses = {"D": (d, ["D1", "D2", "D3"]), "G": (g, ["G1", "G2", "Gz", "G3"])}
    if kind == "gan":
        return losses
    regress_input = x_fake if kind == "joint_latent_regressor" else x_fake.detach()
    probs = torch.sigmoid(encoder_logits(w, regress_input))
    regress = (bce(probs, (z + 1) / 2).sum(1) / z.shape[1]).mean()
    if kind == "latent_regressor":
        return {**losses, "E": (regress, ["E1", "E2", "E3"])}
    return {"D": losses["D"], "EG": (g + regress_weight * regress, ["E1", "E2", "E3", "G1", "G2", "Gz", "G3"])}


class ReferenceAdam:
    """lib/updates.py's Adam with a Regularizer(l2=decay): g + decay * p, then the bias-corrected step.
    Its b1 is written to shrink by l = 1 - 1e-8 a step (b1 * l**t), but Theano (and PyTensor) cast a
    Python float in a float32 graph to float32, where 1 - 1e-8 is exactly 1.0: b1 stays fixed there, as
    in advrep's Adam and here."""

    def __init__(self, lr, b1, b2, decay, e=1e-8):
        self.lr, self.b1, self.b2, self.decay, self.e = lr, b1, b2, decay, e
        self.t, self.m, self.v = 0, {}, {}

    def new_value(self, name, p, g):
        g = g + p * self.decay
        m = self.b1 * self.m.get(name, torch.zeros_like(p)) + (1 - self.b1) * g
        v = self.b2 * self.v.get(name, torch.zeros_like(p)) + (1 - self.b2) * g * g
        self.m[name], self.v[name] = m, v
        t = self.t + 1
        return p - self.lr * (m / (1 - self.b1 ** t)) / (torch.sqrt(v / (1 - self.b2 ** t)) + self.e)


def reference_step(kind, w, x, z, optimisers):
    """Every gradient at the pre-update weights, then every optimiser steps (train_gan.py's update_both)."""
    leaves = {k: v.detach().requires_grad_() for k, v in w.items()}
    new = dict(w)
    for name, (loss, names) in reference_losses(kind, leaves, x, z).items():
        grads = torch.autograd.grad(loss, [leaves[k] for k in names], retain_graph=True)
        for k, g in zip(names, grads):
            new[k] = optimisers[name].new_value(k, w[k], g)
        optimisers[name].t += 1
    return new


# --- advrep's weights in the reference's layout ------------------------------------------------------

LAYOUT = {"G1": "G.fc1", "G2": "G.fc2", "Gz": "G.skip", "G3": "G.out",
          "E1": "E.fc1", "E2": "E.fc2", "E3": "E.out", "D1": "D.fc1", "D2": "D.fc2", "D3": "D.out"}


def weights_of(method):
    nets = method.nets
    layout = dict(LAYOUT, **({"Dz": "D.z_proj"} if method.name == "bigan" else {}))
    out = {}
    for key, path in layout.items():
        net, layer = path.split(".")
        if net in nets:
            out[key] = getattr(nets[net], layer).weight.detach().T.clone()  # nn.Linear keeps [out, in]
    return out


@pytest.mark.parametrize("kind", ["bigan", "gan", "latent_regressor", "joint_latent_regressor"])
def test_training_steps_equal_the_reference_update_written_out_by_hand(kind, float64):
    torch.manual_seed(0)
    cfg = make_config(kind, hidden=32, latent_dim=4, batch_size=16, image_shape=list(IMAGE),
                      bn_eps=1e-8, weight_decay=DECAY)
    assert (cfg.lr, cfg.beta1, cfg.beta2) == (2e-4, 0.5, 0.999)
    method = build_method(cfg, IMAGE)
    # The reference starts D's scoring layer, and the regressors' encoder output, at zero. Check that,
    # then make every weight non-zero so that every gradient is non-trivial from step 0.
    assert not method.nets["D"].out.weight.any()
    if "latent_regressor" in kind:
        assert not method.nets["E"].out.weight.any()
    with torch.no_grad():
        for p in method.nets.parameters():
            if not p.any():
                p.normal_(0, 0.3)
    opts = make_optimizers(method, method.cfg)
    params = {k: method.parameters_of(k) for k in method.optimizers}
    hand = weights_of(method)
    reference_opts = {name: ReferenceAdam(cfg.lr, cfg.beta1, cfg.beta2, DECAY) for name in method.optimizers}

    data = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        x = torch.rand(16, *IMAGE, generator=data)
        rng = torch.Generator().manual_seed(100 + step)
        z = method.sample_prior(16, torch.Generator().manual_seed(100 + step))  # the codes train_step draws
        before = weights_of(method)
        train_step(method, opts, params, x, None, rng, step=step)
        hand = reference_step(kind, hand, x.flatten(1), z, reference_opts)
        got = weights_of(method)
        assert got.keys() == hand.keys()
        for key in got:
            moved = (hand[key] - before[key]).abs().max()
            assert moved > 1e-6, (key, step)  # every weight matrix trains at every step
            gap = (got[key] - hand[key]).abs().max()
            assert gap <= 1e-12, (key, step, gap)


def test_features_use_the_reference_deploy_statistics():
    """The scored features: before an evaluation the reference resets each batch norm's statistics, runs
    --deploy_iters training batches, and then normalises with the mean of their batch means and the
    mean of their unbiased batch variances (BatchNorm's var_bias_correction), 1e-8 inside the root."""
    torch.manual_seed(0)
    method = build_method(make_config("bigan", hidden=32, latent_dim=4, batch_size=16,
                                      image_shape=list(IMAGE), bn_eps=1e-8), IMAGE)
    data = Dataset(torch.rand(40, *IMAGE, generator=torch.Generator().manual_seed(1)))
    refresh_batch_norm(method, data, batches=7, batch_size=16, seed=3)
    method.nets.eval()
    x = torch.rand(10, *IMAGE, generator=torch.Generator().manual_seed(2))
    got = method.features(x)["penultimate"]

    w = weights_of(method)
    # The deploy batches refresh_batch_norm draws (with replacement; the reference reads its shuffled
    # training stream in order, which changes which images meet in a batch, not the formula).
    rng = torch.Generator().manual_seed(3)
    deploy = [data.x[torch.randint(0, len(data), (16,), generator=rng)].flatten(1) for _ in range(7)]
    pre = [lrelu(b @ w["E1"]) @ w["E2"] for b in deploy]
    mean = torch.stack([h.mean(0) for h in pre]).mean(0)
    var = torch.stack([h.var(0, unbiased=True) for h in pre]).mean(0)
    want = lrelu((lrelu(x.flatten(1) @ w["E1"]) @ w["E2"] - mean) / torch.sqrt(var + 1e-8))
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
