"""Data-parallel training under torchrun: two real CPU processes (gloo on loopback), one thread each.

The whole file launches torchrun twice (module fixtures): tests/dist_worker.py trains through the real
loop and writes every rank's networks, and `torchrun -m advrep train` writes a run that one process
then resumes. Everything else runs in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import advrep.distributed as dist
import advrep.train.loop as loop
from advrep.checkpoint import latest_checkpoint, load_model, load_state, read_weights
from advrep.config import ConfigError
from advrep.data import load_dataset
from advrep.eval import train_val_split
from advrep.evaluate import evaluate
from advrep.methods import build_method, make_config
from advrep.train.loop import epoch_order, make_optimizers, train, train_step
from advrep.train.precision import Precision

REPO = Path(__file__).resolve().parents[1]
# Global batch 64 over 2 ranks: 22 steps per epoch on the 1437 training digits.
TINY = dict(data="digits", hidden=32, latent_dim=4, batch_size=64, epochs=2, decay_epochs=0, eval_every=0,
            sample_every=0, log_every=1, progress=False, threads=1)
STEPS = 2 * (1437 // 64)


def torchrun(*args: str, tmp: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's sockets on loopback only
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d",
           "--rdzv-endpoint=127.0.0.1:0", *args]
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def marked_digits(path: Path, noisy_digits) -> Path:
    """conftest's 10,240 noisy digits as an .npz (x_train, y_train, x_test, y_test) whose first pixel is 0.5
    on the 10k images of the bigan_code validation split and 0 on every other image."""
    train, test = noisy_digits
    x = train.x.clone()
    x[:, 0, 0, 0] = 0.0
    x[train_val_split(len(x), 10000, order="bigan_code")[1], 0, 0, 0] = 0.5
    np.savez(path, x_train=x.numpy(), y_train=train.y.numpy(), x_test=test.x.numpy(), y_test=test.y.numpy())
    return path


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, noisy_digits) -> Path:
    out = tmp_path_factory.mktemp("two_ranks")
    held_out = {**TINY, "data": str(marked_digits(out / "marked.npz", noisy_digits)), "hold_out_val": True,
                "val_split": "bigan_code", "epochs": 1, "decay_epochs": 1, "eval_every": 1, "bn_batches": 5}
    runs = {"bigan": {"method": "bigan", **TINY}, "ae": {"method": "autoencoder", **TINY},
            "budget": {"method": "bigan", **TINY, "max_minutes": 1e-6}, "heldout": {"method": "bigan", **held_out},
            "lost": {"method": "bigan", **TINY, "epochs": 5, "stop_on_collapse": True, "lost_game": True}}
    torchrun(str(REPO / "tests" / "dist_worker.py"), str(out), json.dumps(runs), tmp=out)
    return out


def ranks(run: Path) -> tuple[dict, dict]:
    return load_file(str(run / "rank0.safetensors")), load_file(str(run / "rank1.safetensors"))


def relative(a: dict, b: dict, keys) -> float:
    return max(float((a[k] - b[k]).norm() / b[k].norm()) for k in keys)


def test_a_lost_game_stops_every_rank_after_the_same_epoch_with_the_same_mode(two_ranks):
    # rank 0 alone measures the reconstruction ratio; the stop is a collective decision
    failed = [json.loads((two_ranks / "lost" / f"failed-rank{r}.json").read_text()) for r in (0, 1)]
    assert failed == [{"mode": "unlinked", "epoch": 3}] * 2
    assert load_state(latest_checkpoint(two_ranks / "lost"))["epoch"] == 2


def test_every_rank_holds_identical_networks(two_ranks):
    for name in ("bigan", "ae"):
        r0, r1 = ranks(two_ranks / name)
        for key in r0:  # parameters bit for bit, and the batch-norm statistics rank 0 broadcast at the end
            assert torch.equal(r0[key], r1[key]), (name, key)
        _, saved = read_weights(latest_checkpoint(two_ranks / name) / "weights.safetensors")
        assert all(torch.equal(saved[k], r0[k]) for k in r0)
        assert json.loads((two_ranks / name / "summary.json").read_text())["step"] == STEPS


def test_max_minutes_stops_every_rank_after_the_same_epoch(two_ranks):
    run = two_ranks / "budget"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["stopped_by_max_minutes"] and summary["step"] == STEPS // 2
    r0, r1 = ranks(run)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # both ranks left the loop at the same step
    assert load_state(latest_checkpoint(run))["epoch"] == 1


def test_two_processes_take_the_data_parallel_step_exactly(two_ranks, digits):
    """An independent computation of data parallelism in one process: rank r's half of each global batch,
    its own latent generator (seed * 7919 + r), per-half batch statistics, the two halves' gradients
    averaged, then Adam. The 2-process BiGAN must match it to float round-off (it is bit-identical here)."""
    train_set = digits[0]
    cfg = make_config("bigan", **TINY).updated({"image_shape": [1, 8, 8]})
    torch.manual_seed(0)  # rank 0's initialisation, which the loop broadcasts
    method = build_method(cfg, (1, 8, 8))
    optimizers = make_optimizers(method, cfg)
    z_rngs = [torch.Generator().manual_seed(0 * 7919 + r) for r in range(2)]
    for epoch in range(2):
        order = epoch_order(len(train_set), 0, epoch)
        for b in range(len(train_set) // 64):
            grads = {n: [torch.zeros_like(p) for p in method.parameters_of(n)] for n in method.optimizers}
            for r in range(2):
                idx = order[b * 64 + 32 * r:b * 64 + 32 * (r + 1)]
                losses, _ = method.losses(0, train_set.x[idx], train_set.y[idx], z_rngs[r])
                for n in method.optimizers:
                    got = torch.autograd.grad(losses[n], method.parameters_of(n), retain_graph=True)
                    for acc, g in zip(grads[n], got, strict=True):
                        acc += g
            for n, opt in optimizers.items():
                for p, g in zip(method.parameters_of(n), grads[n], strict=True):
                    p.grad = g / 2
                opt.step()
    r0, _ = ranks(two_ranks / "bigan")
    for name, p in method.nets.named_parameters():
        torch.testing.assert_close(r0[name], p.detach(), rtol=0, atol=1e-6)


def test_two_processes_match_one_process_with_the_same_global_batch(two_ranks, digits, tmp_path):
    """The autoencoder draws no latents, so with the same global batch the only difference is batch norm:
    on the CPU each rank normalises with its own 32 images' statistics instead of all 64's. Stated
    tolerance: every step's loss within 1% of the 1-process loss, and the networks after 44 steps apart
    by less than a quarter of how far training moved them."""
    built = []
    real_build = loop.build_method
    loop.build_method = lambda *a, **k: built.append(real_build(*a, **k)) or built[-1]
    try:
        train(make_config("autoencoder", **TINY), tmp_path, train_set=digits[0], test_set=digits[1])
    finally:
        loop.build_method = real_build
    one = {k: v.detach() for k, v in built[0].nets.state_dict().items()}
    torch.manual_seed(0)
    init = build_method(built[0].cfg, (1, 8, 8)).nets.state_dict()
    two, _ = ranks(two_ranks / "ae")
    weights = [k for k in one if k.endswith("weight")]
    moved = relative(one, init, weights)  # ~0.6 here
    assert relative(two, one, weights) < 0.25 * moved  # ~0.04 here

    def losses(run: Path) -> list[float]:
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [r["loss_AE"] for r in lines if "loss_AE" in r]

    a, b = losses(tmp_path), losses(two_ranks / "ae")
    assert len(a) == len(b) == STEPS
    assert a[0] - a[-1] > 0.5  # it learns: the 1% band is narrow next to the change
    assert max(abs(x - y) / x for x, y in zip(a, b, strict=True)) < 0.01  # ~0.002 here


def test_a_held_out_run_never_trains_or_normalises_on_the_held_out_images(two_ranks):
    """hold_out_val under torchrun: no rank's training step or batch-norm refresh sees an image of the
    validation split (marked 0.5), and rank 0 scores the held-out images as one process does."""
    run = two_ranks / "heldout"
    for r in range(2):
        fed = json.loads((run / f"fed-rank{r}.json").read_text())
        # 240 trained-on images, global batch 64: 3 steps an epoch, 32 images a rank, 2 epochs
        assert fed["train_images"] == 2 * 3 * 32 and fed["train_max"] == 0.0
        assert fed["bn_sizes"] == [240, 240] and fed["bn_max"] == 0.0  # the evaluations after epochs 1 and 2
        assert fed["bn_batches"] == [5, 5]  # the run's bn_batches, on every rank
    summary = json.loads((run / "summary.json").read_text())
    data = load_dataset(two_ranks / "marked.npz", "train"), load_dataset(two_ranks / "marked.npz", "test")
    again = evaluate(load_model(run), *data, probe=False)
    for key in ("1nn_val.penultimate", "1nn_test.penultimate", "1nn_val.z"):
        assert again[key] == pytest.approx(summary[key], abs=0.011), key  # a near tie may flip one query


def test_collectives_average_gather_and_agree(two_ranks):
    for r in range(2):
        got = json.loads((two_ranks / f"collectives-rank{r}.json").read_text())
        assert got["both"] == [1.5] * 3
        assert got["only_rank1"] == [1.0] * 3  # a missing gradient counts as zero, as in DDP
        assert got["unused"] is None  # no rank had one: the optimiser skips it, as in one process
        assert got["rows"] == [0.0, 1.0, 2.0, 3.0, 4.0]  # uneven shards, rank order
        assert got["mean"] == [0.5]
        assert got["any_rank1"] is True and got["any_none"] is False


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli")
    sets = [f"--set={k}={v}" for k, v in {**TINY, "epochs": 1, "log_every": 5}.items() if k != "data"]
    torchrun("-m", "advrep", "train", "bigan", "--data", "digits", "--run-dir", str(out / "run"), *sets,
             tmp=out)
    return out / "run"


def test_torchrun_cli_checkpoint_resumes_in_one_process(cli_run, digits):
    ckpt = latest_checkpoint(cli_run)
    state = load_state(ckpt)
    assert state["step"] == STEPS // 2 and state["rank_rng"]["world_size"] == 2
    assert not torch.equal(state["rank_rng"]["z"][0], state["rank_rng"]["z"][1])  # per-rank latents
    _, before = read_weights(ckpt / "weights.safetensors")
    # The same global batch (64) in one process: 22 more steps finish the second epoch.
    summary = train(make_config("bigan", **{**TINY, "log_every": 5}), cli_run, resume=True,
                    train_set=digits[0], test_set=digits[1])
    assert summary["step"] == STEPS
    end = load_state(latest_checkpoint(cli_run))
    assert all(s["step"] == STEPS for opt in end["optimizers"].values() for s in opt["state"].values())
    assert "rank_rng" not in end  # one process saves only its own streams
    _, after = read_weights(latest_checkpoint(cli_run) / "weights.safetensors")
    assert not torch.equal(before["E.fc1.weight"], after["E.fc1.weight"])
    steps = [json.loads(line)["step"] for line in (cli_run / "metrics.jsonl").read_text().splitlines()
             if '"loss_D"' in line]
    assert steps == list(range(5, STEPS + 1, 5))  # one log, continued across the change of world size


# --- in this process ---------------------------------------------------------------------------------
def test_global_batch_must_split_over_the_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert dist.local_batch_size(63) == 21
    with pytest.raises(ValueError, match=r"batch_size=64 .* 3 processes.*multiple of 3"):
        dist.local_batch_size(64)
    parts = []
    for r in range(3):
        monkeypatch.setenv("RANK", str(r))
        parts.extend(range(10)[dist.shard(10)])
    assert parts == list(range(10))


def test_each_optimiser_synchronises_exactly_its_own_networks(monkeypatch):
    """A network that is only a critic in a step (D while E and G step) is never communicated for it."""
    calls = []
    monkeypatch.setattr(dist, "average_gradients", lambda params: calls.append({id(p) for p in params}))
    method = build_method(make_config("bigan", hidden=32, latent_dim=4, image_shape=[1, 8, 8]), (1, 8, 8))
    params = {n: method.parameters_of(n) for n in method.optimizers}
    x = torch.rand(16, 1, 8, 8)
    train_step(method, make_optimizers(method, method.cfg), params, x, None, torch.Generator(), step=0)
    assert calls == [{id(p) for p in params["D"]}, {id(p) for p in params["EG"]}]


def test_bf16_autocasts_the_forward_and_keeps_fp32_gradients_close():
    torch.manual_seed(0)
    method = build_method(make_config("bigan", hidden=64, latent_dim=4, image_shape=[1, 8, 8]), (1, 8, 8))
    torch.nn.init.normal_(method.nets["D"].out.weight, 0, 0.1)  # non-zero scores: every gradient non-trivial
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = []
    method.nets["G"].fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))

    def gradients(precision: Precision) -> list[torch.Tensor]:
        with precision.autocast():
            losses, _ = method.losses(0, x, None, torch.Generator().manual_seed(2))
        return [g.float() for n in ("D", "EG") for g in torch.autograd.grad(
            losses[n].float(), method.parameters_of(n), retain_graph=True)]

    full, half = gradients(Precision("fp32", "cpu")), gradients(Precision("bf16", "cpu"))
    assert seen == [torch.float32, torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in method.nets.parameters())
    # bf16 keeps 8 bits of mantissa; through batch norm's centring the gradients of the x-side layers
    # move by up to ~20% in norm (cosine ~0.98 here) and G's by ~5%: close in direction, not in bits.
    for g32, g16 in zip(full, half, strict=True):
        assert torch.nn.functional.cosine_similarity(g16.flatten(), g32.flatten(), dim=0) > 0.97
        assert float((g16 - g32).norm() / g32.norm()) < 0.3


def test_fp16_needs_cuda_and_precision_names_are_checked():
    with pytest.raises(ConfigError, match="fp16 needs a gradient scaler.*CUDA.*bf16"):
        Precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="precision"):
        make_config("bigan", precision="fp8")
