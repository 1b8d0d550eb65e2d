"""Nothing lost, nothing run: real kills of real training processes, crash-safe checkpoints, locks,
guards. Every training here is a subprocess on the embedded digits, one thread, tiny networks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advrep.checkpoint import CheckpointError, RunLock, latest_checkpoint, load_model
from advrep.config import Config, ConfigError
from advrep.methods import make_config
from advrep.train import TrainingError, train

# Long enough (31 epochs of 22 steps, a few seconds) that each kill lands while the run is still going.
EPOCHS, DECAY, STEPS_PER_EPOCH = 30, 1, 22
SETTINGS = ["hidden=32", "latent_dim=4", "batch_size=64", f"epochs={EPOCHS}", f"decay_epochs={DECAY}", "threads=1",
            "progress=false", "eval_every=0", "sample_every=0", "checkpoint_every=1", "log_every=5"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def train_cmd(run: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "advrep", "train", "bigan", "--data", "digits", "--run-dir", str(run)]
    for s in SETTINGS:
        args += ["--set", s]
    return args + list(extra)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_model(run).nets.state_dict()


def wait_for_checkpoint(run: Path, proc: subprocess.Popen, at_least: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        ck = latest_checkpoint(run)
        if ck is not None and int(ck.name.split("-")[1]) >= at_least:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step >= {at_least} in {timeout}s")


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict[str, torch.Tensor]:
    run = tmp_path_factory.mktemp("straight")
    subprocess.run(train_cmd(run), check=True, env=ENV, capture_output=True)
    return weights(run)


@pytest.mark.parametrize("kill_after_steps", [22, 66])  # 22 steps per epoch: after epochs 1 and 3
def test_kill_9_then_resume_is_bit_identical(tmp_path, straight, kill_after_steps):
    proc = subprocess.Popen(train_cmd(tmp_path), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_checkpoint(tmp_path, proc, kill_after_steps)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    subprocess.run(train_cmd(tmp_path, "--resume"), check=True, env=ENV, capture_output=True)
    got = weights(tmp_path)
    assert all(torch.equal(got[k], straight[k]) for k in straight)


def test_sigterm_saves_mid_epoch_and_resume_is_bit_identical(tmp_path, straight):
    proc = subprocess.Popen(train_cmd(tmp_path), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_checkpoint(tmp_path, proc, 22)
    proc.send_signal(signal.SIGTERM)  # somewhere after epoch 1: mid-epoch, or during its checkpoint
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"continue with --resume" in err
    subprocess.run(train_cmd(tmp_path, "--resume"), check=True, env=ENV, capture_output=True)
    got = weights(tmp_path)
    assert all(torch.equal(got[k], straight[k]) for k in straight)


def test_kill_while_a_checkpoint_is_written_leaves_the_previous_one(tmp_path):
    """A real SIGKILL in the middle of writing the second checkpoint (after its weights file)."""
    script = textwrap.dedent("""
        import os, signal, sys
        import advrep.checkpoint as ck
        real = ck.torch.save
        count = {"n": 0}
        def dying_save(obj, path):
            count["n"] += 1
            if count["n"] == 2:
                with open(path, "wb") as f:
                    f.write(b"half a state file")
                os.kill(os.getpid(), signal.SIGKILL)
            real(obj, path)
        ck.torch.save = dying_save
        from advrep.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    args = train_cmd(tmp_path)[3:]
    proc = subprocess.run([sys.executable, "-c", script, *args], env=ENV, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    ck = latest_checkpoint(tmp_path)
    assert ck.name == "step-00000022"  # the first checkpoint, intact
    load_model(tmp_path)
    subprocess.run(train_cmd(tmp_path, "--resume"), check=True, env=ENV, capture_output=True)
    assert not list((tmp_path / "checkpoints").glob(".step-*"))  # the torn temp dir was cleaned up
    assert latest_checkpoint(tmp_path).name == f"step-{(EPOCHS + DECAY) * STEPS_PER_EPOCH:08d}"


def test_a_run_directory_in_use_is_refused(tmp_path):
    cfg = make_config("bigan", data="digits", hidden=16, latent_dim=3, batch_size=64, epochs=1, decay_epochs=0,
                      progress=False)
    with RunLock(tmp_path):
        with pytest.raises(CheckpointError, match="in use by pid"):
            train(cfg, tmp_path)
    assert latest_checkpoint(tmp_path) is None


def test_run_directory_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainingError, match="cannot be created"):
        train(make_config("bigan", data="digits"), tmp_path / "file" / "run")


def test_gradient_norm_bound_stops_with_step_and_network(tmp_path):
    cfg = make_config("bigan", data="digits", hidden=16, latent_dim=3, batch_size=64, epochs=1, decay_epochs=0,
                      progress=False, max_grad_norm=1e-9)
    with pytest.raises(TrainingError, match=r"gradient norm of 'D' \(networks D\) is .* at step 0"):
        train(cfg, tmp_path)


def test_resume_with_another_method_lists_the_difference(tmp_path):
    cfg = make_config("bigan", data="digits", hidden=16, latent_dim=3, batch_size=64, epochs=1, decay_epochs=0,
                      progress=False, eval_every=0)
    train(cfg, tmp_path)
    with pytest.raises(TrainingError, match="method: run has 'bigan', asked 'ali'"):
        train(make_config("ali", data="digits", hidden=16, latent_dim=3, batch_size=64, progress=False),
              tmp_path, resume=True)


# --- property tests ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-10**9, max_value=10**9), st.floats(allow_nan=False, allow_infinity=False,
                                                                   min_value=1e-12, max_value=1e12))
def test_overrides_round_trip_numbers(n, x):
    cfg = Config().updated({"seed": str(n), "lr": repr(x), "weight_decay": str(x)})
    assert cfg.seed == n and cfg.lr == x and cfg.weight_decay == float(str(x))


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=20))
def test_unknown_keys_always_fail_with_the_key_named(key):
    if key in Config.field_names():
        return
    with pytest.raises(ConfigError) as err:
        Config().updated({key: "1"})
    assert repr(key) in str(err.value)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["epochs", "hidden", "batch_size", "seed"]), st.text(max_size=8))
def test_int_settings_reject_non_integers(key, text):
    try:
        int(text)
        return
    except ValueError:
        pass
    with pytest.raises(ConfigError, match=key):
        Config().updated({key: text})


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from(["L", "RGB", "RGBA", "P", "1"]),
                          st.integers(0, 255)), min_size=1, max_size=6))
def test_image_folder_reader_any_sizes_and_modes(tmp_path_factory, images):
    """Whatever mix of sizes and modes a folder holds, the reader returns one shape, values in [0, 1],
    one row per image, and never crashes."""
    from PIL import Image

    from advrep.data.folder import load_folder

    folder = tmp_path_factory.mktemp("imgs")
    for i, (w, h, mode, value) in enumerate(images):
        Image.new(mode, (w, h), value if mode in ("L", "P", "1") else (value,) * len(mode)).save(folder / f"{i}.png")
    ds = load_folder(folder)
    assert len(ds) == len(images)
    assert ds.x.ndim == 4 and ds.x.shape[1] in (1, 3)
    assert float(ds.x.min()) >= 0.0 and float(ds.x.max()) <= 1.0
    assert ds.y is None
