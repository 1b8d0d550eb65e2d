"""Optional TensorBoard logging (Config.tensorboard): a clear error without the package, the records'
numbers as scalars with it. The last test reads real event files back and runs only where the
tensorboard package is installed (it is not a dependency of advrep)."""

import json
import sys
import types

import pytest

from advrep.config import ConfigError
from advrep.data import Dataset, load_dataset
from advrep.methods import make_config
from advrep.train import TrainingError, train


def tiny_cfg(**kw):
    return make_config("bigan", data="digits", hidden=16, latent_dim=4, epochs=1, decay_epochs=1, log_every=5,
                       eval_every=1, sample_every=0, progress=False, tensorboard=True, **kw)


def test_without_the_package_training_stops_before_the_first_step(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what `import` sees when it is absent
    with pytest.raises(ConfigError, match=r"tensorboard=true needs the tensorboard package.*pip install"):
        train(tiny_cfg(), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


class FakeWriter:
    made: list = []

    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        FakeWriter.made.append(self)

    def add_scalar(self, tag, value, global_step):
        self.scalars.append((tag, value, global_step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_every_record_becomes_scalars_at_its_step(tmp_path, monkeypatch):
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    FakeWriter.made.clear()
    run = tmp_path / "run"
    train(tiny_cfg(), run)
    (writer,) = FakeWriter.made
    assert writer.log_dir == str(run / "tensorboard") and writer.closed
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = []
    for r in records:
        prefix = r["kind"] if r.get("kind") in ("eval", "summary", "best", "health", "collapse") else "train"
        expected += [(f"{prefix}/{k}", float(v), r["step"]) for k, v in r.items()
                     if k not in ("step", "epoch", "kind") and isinstance(v, (int, float))
                     and not isinstance(v, bool)]  # flags such as stopped_by_max_minutes are not curves
    assert writer.scalars == expected
    tags = {t for t, _, _ in writer.scalars}
    assert {"train/loss_D", "train/loss_EG", "eval/1nn_test.z", "summary/wall_s", "health/G_spread",
            "health/recon_ratio"} <= tags


def test_a_run_that_fails_closes_its_writer(tmp_path, monkeypatch):
    # A NaN loss at the first step: the writer must not outlive the failed run (a reseed loop would
    # otherwise leave one writer behind per attempt).
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    FakeWriter.made.clear()
    train_set = load_dataset("digits", "train")
    nan_set = Dataset(x=train_set.x * float("nan"), y=train_set.y, name="all-nan")
    with pytest.raises(TrainingError, match="is nan at step 0"):
        train(tiny_cfg(), tmp_path / "run", train_set=nan_set, test_set=load_dataset("digits", "test"))
    (writer,) = FakeWriter.made
    assert writer.closed


def test_real_event_files_hold_the_losses(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed (optional)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(tiny_cfg(), run)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train/loss_D")
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = [(r["step"], r["loss_D"]) for r in logged if "loss_D" in r and "kind" not in r]
    assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in losses] == expected
