"""Damaged files and bad output paths: a clear error or a fall-back to what is intact, never a traceback,
never a loss of what was saved. Tiny BiGANs on the embedded digits, trained in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from advrep.checkpoint import FORMAT, CheckpointError, complete_checkpoints, read_weights
from advrep.cli import main
from advrep.config import Config
from advrep.train import train

SMALL = ["--set", "hidden=16", "--set", "latent_dim=3", "--set", "batch_size=64", "--set", "decay_epochs=0",
         "--set", "progress=false", "--set", "eval_every=0", "--set", "sample_every=0", "--set", "threads=1"]


def train_cli(run: Path, *extra: str) -> int:
    return main(["train", "bigan", "--data", "digits", "--run-dir", str(run), *SMALL, *extra])


@pytest.fixture
def two_checkpoints(tmp_path) -> Path:
    """A finished 2-epoch run: checkpoints after epochs 1 and 2."""
    run = tmp_path / "run"
    assert train_cli(run, "--set", "epochs=2") == 0
    assert len(complete_checkpoints(run)) == 2
    return run


def test_resume_passes_over_a_corrupt_newest_checkpoint(two_checkpoints, capsys):
    run = two_checkpoints
    newest, older = complete_checkpoints(run)
    (newest / "state.pt").write_bytes(b"cut short")
    capsys.readouterr()
    assert train_cli(run, "--resume", "--set", "epochs=3") == 0
    out = capsys.readouterr().out
    assert f"passed over checkpoint {newest.name}" in out and f"resuming from {older.name}" in out
    steps = json.loads((run / "summary.json").read_text())["step"]
    assert complete_checkpoints(run)[0].name == f"step-{steps:08d}"  # epochs 2 and 3 trained again
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


def test_resume_with_no_readable_checkpoint_names_each(two_checkpoints, capsys):
    run = two_checkpoints
    for ckpt in complete_checkpoints(run):
        (ckpt / "weights.safetensors").write_bytes(b"\x00" * 10)
    assert train_cli(run, "--resume", "--set", "epochs=3") == 2
    err = capsys.readouterr().err
    assert "no checkpoint of" in err and err.count("not a readable safetensors file") == 2
    assert "another --run-dir" in err


def test_resume_refuses_a_state_that_is_not_a_training_state(two_checkpoints, capsys):
    run = two_checkpoints
    for ckpt in complete_checkpoints(run):
        torch.save({"step": 1}, ckpt / "state.pt")
    assert train_cli(run, "--resume", "--set", "epochs=3") == 2
    err = capsys.readouterr().err
    assert "lacks epoch, batch, rng, optimizers" in err


def test_resume_refuses_an_optimiser_state_of_another_shape(two_checkpoints, capsys):
    run = two_checkpoints
    newest = complete_checkpoints(run)[0]
    state = torch.load(newest / "state.pt", weights_only=True)
    state["optimizers"]["D"], state["optimizers"]["EG"] = state["optimizers"]["EG"], state["optimizers"]["D"]
    torch.save(state, newest / "state.pt")
    assert train_cli(run, "--resume", "--set", "epochs=3") == 2
    err = capsys.readouterr().err
    assert f"checkpoint {newest}: the state of optimiser" in err and "does not fit this model" in err


def test_resume_takes_the_settings_from_a_checkpoint_when_config_json_is_cut_short(two_checkpoints, capsys):
    run = two_checkpoints
    (run / "config.json").write_text('{"method": "bigan", "hid')
    capsys.readouterr()
    # No settings named: they must come from the checkpoint (hidden=16, 2 epochs: already finished).
    assert main(["train", "bigan", "--run-dir", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "config.json cannot be read" in out and "already finished" in out
    assert json.loads((run / "config.json").read_text())["hidden"] == 16  # rewritten whole


def test_a_finished_run_with_a_cut_short_summary_returns_the_logged_one(two_checkpoints, capsys):
    run = two_checkpoints
    before = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text('{"step": ')
    assert main(["train", "bigan", "--run-dir", str(run), "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "summary.json: cannot be read" in out and "method      bigan" in out
    cfg = Config.from_dict(json.loads((run / "config.json").read_text()))
    got = train(cfg, run, resume=True)
    assert got["step"] == before["step"] and got["kind"] == "summary"


def test_eval_checks_out_before_the_work_and_creates_its_folder(two_checkpoints, capsys, tmp_path):
    run = two_checkpoints
    assert main(["eval", str(run), "--out", str(tmp_path), "--no-probe", "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path} is a directory" in err and "name a file" in err
    out = tmp_path / "new" / "folder" / "eval.json"
    assert main(["eval", str(run), "--out", str(out), "--no-probe", "--no-figures"]) == 0
    assert "1nn_test.penultimate" in json.loads(out.read_text())


def test_sample_errors_name_the_option(two_checkpoints, capsys):
    run = two_checkpoints
    assert main(["sample", str(run), "-n", "0"]) == 2
    assert "-n is 0" in capsys.readouterr().err
    assert main(["sample", str(run), "-n", "4", "--interpolate", "--steps", "1"]) == 2
    assert "steps must be >= 2" in capsys.readouterr().err


def test_invert_and_compare_check_out_before_inverting(two_checkpoints, capsys, tmp_path):
    run = two_checkpoints
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    assert main(["invert", str(run), "-n", "4", "--steps", "2", "--out", str(a_file)]) == 2
    assert f"--out {a_file} is a file" in capsys.readouterr().err
    assert main(["compare", str(run), str(run / "checkpoints" / "latest"), "-n", "4", "--steps", "2",
                 "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"


def test_a_failed_inversion_write_keeps_the_earlier_files(two_checkpoints, monkeypatch, tmp_path):
    import advrep.inversion.models as models

    out = tmp_path / "inv"
    assert main(["invert", str(two_checkpoints), "-n", "4", "--steps", "2", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "summary.json" in before and "z.npy" in before

    def broken_plot(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(models, "line_plot", broken_plot)
    with pytest.raises(OSError, match="disk full"):
        main(["invert", str(two_checkpoints), "-n", "4", "--steps", "3", "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing half-replaced, no temp left


def test_weights_with_an_unreadable_config_name_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"format": FORMAT, "config": '{"method": '})
    with pytest.raises(CheckpointError, match=f"weights file {path} holds an unreadable config"):
        read_weights(path)
    save_file({"x": torch.zeros(1)}, str(path), metadata={"format": FORMAT, "config": "[1, 2]"})
    with pytest.raises(CheckpointError, match="not a mapping"):
        read_weights(path)
