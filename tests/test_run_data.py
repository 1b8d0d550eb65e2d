"""Commands that use a trained run's dataset (eval, sample, report, fid, invert, compare): --data names another
copy, and when the run's own dataset cannot be found the error says the name came from the run's config.
A tiny BiGAN trained on the embedded digits saved as an .npz, named by a relative path; image folders are
resized as in training (advrep.data.load_run_dataset)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from advrep.checkpoint import load_model
from advrep.cli import main
from advrep.data import DataError, load_dataset, load_run_dataset

SMALL = ["--set", "hidden=16", "--set", "latent_dim=3", "--set", "batch_size=64", "--set", "decay_epochs=0",
         "--set", "progress=false", "--set", "eval_every=0", "--set", "sample_every=0", "--set", "threads=1",
         "--set", "epochs=1"]


def save_digits(path: Path) -> Path:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    np.savez(path, x_train=train.x.numpy(), y_train=train.y.numpy(), x_test=test.x.numpy(), y_test=test.y.numpy())
    return path


@pytest.fixture
def moved_run(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(run trained on the relative path digits.npz, where that file is now): the run is used from a
    directory where its relative data path no longer points at anything."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    save_digits(workdir / "digits.npz")
    monkeypatch.chdir(workdir)
    run = tmp_path / "run"
    assert main(["train", "bigan", "--data", "digits.npz", "--run-dir", str(run), *SMALL]) == 0
    monkeypatch.chdir(tmp_path)
    return run, workdir / "digits.npz"


def test_eval_says_the_missing_dataset_came_from_the_run_and_takes_data(moved_run, capsys):
    run, data = moved_run
    assert main(["eval", str(run), "--no-probe", "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "digits.npz does not exist" in err
    assert f"the dataset run {run} was trained on, named in its config" in err and "--data" in err
    assert not (run / "eval.json").exists()
    assert main(["eval", str(run), "--no-probe", "--no-figures", "--data", str(data)]) == 0
    assert json.loads((run / "eval.json").read_text())["1nn_test.penultimate"] > 50


def test_data_with_images_of_another_shape_is_refused(moved_run, tmp_path, capsys):
    run, _ = moved_run
    wide = tmp_path / "wide.npz"
    np.savez(wide, x_train=np.zeros((20, 1, 8, 9), np.uint8), x_test=np.zeros((5, 1, 8, 9), np.uint8))
    assert main(["eval", str(run), "--no-probe", "--no-figures", "--data", str(wide)]) == 2
    err = capsys.readouterr().err
    assert "shape (1, 8, 9)" in err and "(1, 8, 8)" in err and "--data" in err


def test_a_bad_data_flag_is_reported_as_given(moved_run, tmp_path):
    run, _ = moved_run
    cfg = load_model(run).cfg
    with pytest.raises(DataError, match="nowhere.npz does not exist") as info:
        load_run_dataset(cfg, "test", data=str(tmp_path / "nowhere.npz"), run=run)
    assert "named in its config" not in str(info.value)


def test_sample_neighbours_and_invert_take_data(moved_run, capsys):
    run, data = moved_run
    assert main(["sample", str(run), "-n", "4", "--neighbours", "-k", "2"]) == 2
    assert "named in its config" in capsys.readouterr().err
    assert main(["sample", str(run), "-n", "4", "--neighbours", "-k", "2", "--data", str(data)]) == 0
    assert (run / "neighbours.png").is_file()
    assert main(["invert", str(run), "-n", "3", "--steps", "2"]) == 2
    assert "named in its config" in capsys.readouterr().err
    assert main(["invert", str(run), "-n", "3", "--steps", "2", "--data", str(data)]) == 0
    assert (run / "inversion" / "digits.npz-test" / "summary.json").is_file()  # inside the run, not by the data
    out = run / "compare.json"
    assert main(["compare", str(run), str(run / "checkpoints" / "latest"), "-n", "3", "--steps", "2",
                 "--out", str(out)]) == 2
    assert "named in its config" in capsys.readouterr().err and not out.exists()
    assert main(["compare", str(run), str(run / "checkpoints" / "latest"), "-n", "3", "--steps", "2",
                 "--out", str(out), "--data", str(data)]) == 0
    assert json.loads(out.read_text())["data"] == str(data)


def test_fid_takes_data(moved_run, tmp_path, capsys):
    from advrep.eval import save_classifier, train_classifier

    run, data = moved_run
    train = load_dataset("digits", "train")
    model, info = train_classifier(train.x[:256], train.y[:256], epochs=1, batch_size=64, width=4, feature_dim=8,
                                   seed=0)
    save_classifier(model, tmp_path / "cls", {"data": "digits", **info})
    assert main(["fid", str(run), "--classifier", str(tmp_path / "cls"), "-n", "50"]) == 2
    assert "named in its config" in capsys.readouterr().err
    assert main(["fid", str(run), "--classifier", str(tmp_path / "cls"), "-n", "50", "--data", str(data)]) == 0
    assert json.loads((run / "fid.json").read_text())["domain_fid"] >= 0


def test_image_folders_are_resized_as_in_training(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("faces", "faces_copy"):
        for split in ("train", "test"):
            folder = tmp_path / name / split / "a"
            folder.mkdir(parents=True)
            for i in range(3):  # 20x12 RGB pictures: resized to cover 8x8, then centre-cropped
                Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = SimpleNamespace(method="bigbigan", data=str(tmp_path / "faces"), data_dir=None, image_size=8,
                          image_shape=[3, 8, 8])
    assert load_run_dataset(cfg, "test").x.shape == (3, 3, 8, 8)
    assert load_run_dataset(cfg, "train", data=str(tmp_path / "faces_copy")).x.shape == (3, 3, 8, 8)
    arrays = tmp_path / "faces.npz"  # an array file is read as it is: no size= for it
    np.savez(arrays, x_train=rng.integers(0, 256, (4, 3, 8, 8), dtype=np.uint8))
    assert load_run_dataset(cfg, "train", data=str(arrays)).x.shape == (4, 3, 8, 8)


def test_run_dataset_without_download_reports_the_missing_files(tmp_path, monkeypatch):
    """download=False (the analysis scripts' setting) reaches the MNIST loader: nothing is fetched, and the
    error names the run's own data_dir, where the files were looked for, and the way to a download."""
    import advrep.data.mnist as mnist

    def no_network(*args, **kwargs):
        raise AssertionError("load_run_dataset(download=False) tried to download")

    monkeypatch.setattr(mnist, "_download", no_network)
    own = tmp_path / "the-runs-data"
    own.mkdir()
    cfg = SimpleNamespace(method="bigan", data="mnist", data_dir=str(own), image_size=0, image_shape=[1, 28, 28])
    with pytest.raises(DataError, match="allow downloading") as info:
        load_run_dataset(cfg, "test", download=False)
    assert str(own) in str(info.value) and "was trained on" in str(info.value)


def test_report_draws_from_data_and_survives_damaged_files(moved_run, capsys):
    run, data = moved_run
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "could not be loaded" in page and "named in its config" in page
    (run / "summary.json").write_text('{"cut short')
    assert main(["report", str(run), "--data", str(data)]) == 0
    page = (run / "report.html").read_text()
    assert "could not be loaded" not in page and "nearest training images" in page
    assert "Not shown: summary.json" in page
    (run / "config.json").write_text("[1, 2]")
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "config.json cannot be read (it holds a list" in err and "advrep info" in err
