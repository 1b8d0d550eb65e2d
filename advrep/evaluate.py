"""Evaluate a trained method: features -> 1NN, linear probe, reconstruction. Plain numbers out.

The metric functions live in ``advrep.eval`` and take any features; this module only knows how to
get features from a ``Method`` and which protocols the BiGAN paper reports:

* ``test``: 10k MNIST test images against the 60k training images (the paper's table);
* ``val``: 10k training images against the other 50k: by default the last 10k against the first 50k,
  with the run's ``val_split="bigan_code"`` the reference code's own seeded 10k. The reference code
  never trains on its 10k; advrep leaves them out of training only with ``hold_out_val`` (``fit_split``),
  and otherwise ``val`` queries images the model trained on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .data import Dataset
from .eval import bn_crelu, feature_stats, knn_accuracy, linear_probe, reconstruction_errors, train_val_split
from .eval.parzen import parzen_evaluation
from .methods import Method


@torch.no_grad()
def compute_features(encode: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor, *,
                     batch_size: int = 2000, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Run ``encode`` over x in batches; each named feature is concatenated to [N, F] on the CPU.

    ``encode`` maps images [B, C, H, W] to {name: [B, F]}: a method's ``features``, or any function of
    yours. Example: ``compute_features(model.features, test.x)["penultimate"]`` -> [N, hidden].
    """
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, x.shape[0], batch_size):
        out = encode(x[start:start + batch_size].to(device))
        for name, value in out.items():
            parts.setdefault(name, []).append(value.float().cpu())
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


@torch.no_grad()
def refresh_batch_norm(method: Method, data: Dataset, *, batches: int = 100, batch_size: int = 128,
                       seed: int = 0) -> None:
    """Recompute batch-norm population statistics as a plain average over training batches.

    PyTorch keeps an exponential moving average of the last few batches; the reference code instead
    averages over many "deploy" batches before each evaluation, which is steadier. We run the method's
    ``batch_norm_forward`` (by default its first training phase, forward only) with cumulative averaging,
    on ``batches`` batches of ``batch_size`` images drawn at random from ``data`` (a run's ``bn_batches``).
    """
    # Only networks an optimiser trains: a copy no optimiser updates (BigBiGAN's EMA of G) is not run
    # by the training forward pass, so it keeps the statistics it has.
    trained = {net for nets in method.optimizers.values() for net in nets}
    norms = [m for name, net in method.nets.items() if name in trained for m in net.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = next(method.nets.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    saved = [m.momentum for m in norms]
    # Training-mode forwards also move other state, e.g. spectral norm's power-iteration vectors;
    # put every buffer but the statistics being refreshed back, so evaluating never changes training.
    refreshed = {id(b) for m in norms for b in m.buffers()}
    others = [(b, b.clone()) for b in method.nets.buffers() if id(b) not in refreshed]
    was_training = method.nets.training
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(seed)
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average = plain mean over the batches seen
        method.nets.train()
        n = len(data)
        z_rng = torch.Generator(device=device).manual_seed(seed)
        for _ in range(batches):  # drawn with replacement, so more batches than an epoch holds is fine
            idx = torch.randint(0, n, (min(batch_size, n),), generator=rng)
            y = data.y[idx].to(device) if data.y is not None else None
            method.batch_norm_forward(data.x[idx].to(device), y, z_rng)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    for b, old in others:
        b.copy_(old)
    method.nets.train(was_training)


def fit_split(train: Dataset, hold_out_val: bool, val_split: str = "last") -> Dataset:
    """The images a run trains on: all of ``train``, or with ``hold_out_val`` all but the 10000 images
    of the validation split ``val_split`` (``train_val_split``), which the ``val`` protocol then
    queries as unseen images.

    Raises ValueError when ``hold_out_val`` leaves no reference images (10000 training images or fewer).
    """
    if not hold_out_val:
        return train
    if len(train) <= 10000:
        raise ValueError(f"hold_out_val holds out 10000 training images, but {train.name!r} has "
                         f"only {len(train)}; set hold_out_val=false or use a larger dataset.")
    return train.subset(train_val_split(len(train), 10000, order=val_split)[0])


def evaluate(method: Method, train: Dataset, test: Dataset, *, probe: bool = True, protocols=("test", "val"),
             refresh_bn: bool = True, knn_metric: str = "euclidean", parzen: bool = False,
             features: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None,
             bn_data: Dataset | None = None, bn_seed: int = 0) -> dict[str, float]:
    """All feature and reconstruction metrics of a trained method, as a flat dict of floats.

    Keys: ``1nn_<protocol>.<feature>``, ``probe_<protocol>.<feature>`` and, for methods with an encoder,
    ``probe_bncrelu_<protocol>.<feature>`` (BigBiGAN's BN+CReLU head) in percent; ``recon_error``,
    ``random_pair_error``, ``recon_ratio``, ``recon_mse`` (test set) where the method can reconstruct;
    then the method's own numbers (``Method.extra_metrics``, e.g. ``semi_error``, ``cluster_error``) and,
    with ``parzen=True``, the Parzen-window log-likelihood of the test set under its samples.
    ``features``: (train, test) features already computed (e.g. gathered from every rank of a
    distributed run), each {name: [N, F]} in the datasets' order. ``bn_data``: the images batch norm's
    statistics are recomputed on; by default the images the run trained on (``train``, less the
    validation split for a run with ``hold_out_val``), so held-out images stay unseen. ``bn_seed``: the
    seed of the batches drawn for those statistics (0 in every evaluation a run makes itself).

    Example::

        results = evaluate(load_model("runs/digits"), load_dataset("digits", "train"),
                           load_dataset("digits", "test"), probe=False)
        results["1nn_test.z"]           # 1NN accuracy (%) of the test codes against the training codes
    """
    if train.y is None or test.y is None:
        raise ValueError(f"evaluation needs labels, but dataset {train.name!r} has none.")
    device = next(method.nets.parameters()).device
    if refresh_bn:
        refresh_batch_norm(method, bn_data if bn_data is not None
                           else fit_split(train, method.cfg.hold_out_val, method.cfg.val_split),
                           batches=method.cfg.bn_batches, seed=bn_seed)
    method.nets.eval()
    if features is None:
        features = (compute_features(method.features, train.x, device=device),
                    compute_features(method.features, test.x, device=device))
    train_f, test_f = features
    # a GPU's float64 brute force takes a fraction of a second where the CPU search takes many
    knn_device = device if device.type == "cuda" and knn_metric == "euclidean" else None
    results: dict[str, float] = {}
    for protocol in protocols:
        if protocol == "test":
            pairs = {name: (train_f[name], test_f[name]) for name in train_f}
            ref_y, query_y = train.y, test.y
        elif protocol == "val":
            if len(train) <= 10000:
                continue  # too small for the 50k/10k protocol (e.g. the embedded digits)
            ref, val = train_val_split(len(train), 10000, order=method.cfg.val_split)
            pairs = {name: (f[ref], f[val]) for name, f in train_f.items()}
            ref_y, query_y = train.y[ref], train.y[val]
        else:
            raise ValueError(f"unknown protocol {protocol!r}; choose 'test' or 'val'.")
        for name, (r, q) in pairs.items():
            results[f"1nn_{protocol}.{name}"] = knn_accuracy(r, ref_y, q, query_y, k=1, metric=knn_metric,
                                                             device=knn_device)
            if probe:
                results[f"probe_{protocol}.{name}"] = linear_probe(r, ref_y, q, query_y)
                if method.has_encoder:
                    # BigBiGAN's linear evaluation (section 3.1): parameter-free batch norm with the
                    # reference set's statistics, then CReLU [ReLU(h), ReLU(-h)], then the linear head.
                    mean, std = feature_stats(r)
                    results[f"probe_bncrelu_{protocol}.{name}"] = linear_probe(
                        bn_crelu(r, mean, std), ref_y, bn_crelu(q, mean, std), query_y, standardize=False)
    if method.has_encoder and method.has_generator:
        with torch.no_grad():
            x_hat = torch.cat([method.reconstruct(test.x[i:i + 2000].to(device)).cpu()
                               for i in range(0, len(test), 2000)])
        results.update(reconstruction_errors(test.x, x_hat))
    with torch.no_grad():
        results.update(method.extra_metrics(train, test))
    if parzen and method.has_generator:
        results.update(parzen_metrics(method, train, test))
    return results


@torch.no_grad()
def parzen_metrics(method: Method, train: Dataset, test: Dataset, *, n_samples: int = 10000,
                   n_val: int = 10000, seed: int = 0) -> dict[str, float]:
    """Parzen-window log-likelihood (Goodfellow et al. 2014) of the test images under ``n_samples`` samples
    G(z): the window width is chosen on ``n_val`` training images (at most half the set; the run's
    ``val_split``, by default the last ones), as the GAN and AAE papers do. Keys from
    ``advrep.eval.parzen.parzen_evaluation``; nets in eval mode."""
    device = next(method.nets.parameters()).device
    method.nets.eval()
    rng = torch.Generator(device=device).manual_seed(seed)
    samples = torch.cat([method.generate(method.sample_prior(min(1000, n_samples - i), rng)).cpu()
                         for i in range(0, n_samples, 1000)])
    _, val = train_val_split(len(train), min(n_val, len(train) // 2), order=method.cfg.val_split)
    return parzen_evaluation(samples, train.x[val], test.x)


def format_table(results: dict[str, float]) -> str:
    """A small aligned text table of an evaluation's numbers."""
    width = max((len(k) for k in results), default=10)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    for key in sorted(results):
        value = results[key]
        lines.append(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return "\n".join(lines)
