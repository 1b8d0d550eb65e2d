"""End to end through the command line: train, eval, sample, info."""

import json
import subprocess
import sys

from advrep.cli import main


def test_train_eval_sample_info(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "bigan", "--data", "digits", "--run-dir", str(run), "--set", "hidden=32",
               "--set", "latent_dim=4", "--set", "batch_size=64", "--set", "epochs=1", "--set", "decay_epochs=1",
               "--set", "progress=false"])
    assert rc == 0
    assert "1nn_test.penultimate" in capsys.readouterr().out
    assert main(["eval", str(run)]) == 0
    results = json.loads((run / "eval.json").read_text())
    assert 0 <= results["probe_test.penultimate"] <= 100 and results["recon_ratio"] > 0
    assert main(["sample", str(run), "-n", "9"]) == 0 and (run / "samples.png").is_file()
    assert main(["info", str(run)]) == 0
    assert "method      bigan" in capsys.readouterr().out


def test_mistyped_setting_fails_and_lists_valid_ones(tmp_path, capsys):
    rc = main(["train", "bigan", "--data", "digits", "--run-dir", str(tmp_path), "--set", "latnt_dim=3"])
    err = capsys.readouterr().err
    assert rc == 2 and "latnt_dim" in err and "Did you mean latent_dim" in err and "Valid settings" in err


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "advrep", "methods"], capture_output=True, text=True, check=True)
    assert "bigan" in out.stdout and "ali" in out.stdout


def test_resume_takes_the_runs_own_settings_and_keeps_a_finished_summary(tmp_path, capsys):
    run = tmp_path / "run"
    small = ["--set", "hidden=32", "--set", "latent_dim=4", "--set", "batch_size=64", "--set", "epochs=1",
             "--set", "decay_epochs=0", "--set", "progress=false", "--set", "eval_every=0"]
    assert main(["train", "bigan", "--data", "digits", "--run-dir", str(run), *small]) == 0
    before = json.loads((run / "summary.json").read_text())
    # No settings repeated: the saved ones (1 epoch, hidden 32) apply, so the run is already finished.
    assert main(["train", "bigan", "--run-dir", str(run), "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text()) == before
    # Naming more epochs continues the same run.
    assert main(["train", "bigan", "--run-dir", str(run), "--resume", "--set", "epochs=2"]) == 0
    assert json.loads((run / "summary.json").read_text())["step"] == 2 * before["step"]
    assert main(["train", "ali", "--run-dir", str(run), "--resume"]) == 2
    assert "is a 'bigan' run, not 'ali'" in capsys.readouterr().err
