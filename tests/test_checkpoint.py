import os
import pickle

import pytest
import torch

from advrep.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_model,
    load_state,
    read_weights,
    save_checkpoint,
)
from advrep.methods import build_method, make_config

IMAGE = (1, 8, 8)


def make(name="bigan", **kw):
    cfg = make_config(name, hidden=16, latent_dim=3, image_shape=list(IMAGE), **kw)
    torch.manual_seed(0)
    return build_method(cfg, IMAGE)


def test_round_trip_rebuilds_from_the_weights_file_alone(tmp_path):
    method = make()
    ck = save_checkpoint(tmp_path, method.nets, method.cfg, {"step": 5, "note": torch.arange(3)})
    loaded = load_model(ck / "weights.safetensors")
    assert loaded.cfg == method.cfg
    for (k, a), (_, b) in zip(method.nets.state_dict().items(), loaded.nets.state_dict().items()):
        assert torch.equal(a, b), k
    assert torch.equal(load_state(ck)["note"], torch.arange(3))
    # a run directory resolves to its latest checkpoint
    assert load_model(tmp_path).cfg == method.cfg


def test_latest_moves_last_and_old_checkpoints_are_pruned(tmp_path):
    method = make()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, method.nets, method.cfg, {"step": step}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert names == ["step-00000002", "step-00000003"]
    assert latest_checkpoint(tmp_path).name == "step-00000003"
    # a half-written checkpoint (temp dir) and a broken pointer never hide the last good one
    (tmp_path / "checkpoints" / ".step-00000004.tmp-1").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step-00000009\n")
    assert latest_checkpoint(tmp_path).name == "step-00000003"


def test_the_latest_pointer_file_loads_the_checkpoint_it_names(tmp_path, monkeypatch):
    method = make()
    first = save_checkpoint(tmp_path, method.nets, method.cfg, {"step": 1})
    with torch.no_grad():
        next(method.nets.parameters()).add_(1.0)
    save_checkpoint(tmp_path, method.nets, method.cfg, {"step": 2})
    pointer = tmp_path / "checkpoints" / "latest"  # a path users type; it is a text file

    def same(loaded):
        return all(torch.equal(a, b) for a, b in zip(method.nets.state_dict().values(),
                                                     loaded.nets.state_dict().values()))

    assert same(load_model(pointer))
    monkeypatch.chdir(pointer.parent)
    assert same(load_model("latest"))  # relative, from inside checkpoints/
    pointer.write_text(first.name + "\n")  # the file itself is read, not the run's newest
    assert not same(load_model(pointer))
    for ckpt in (tmp_path / "checkpoints").glob("step-*"):
        (ckpt / "weights.safetensors").unlink()
    with pytest.raises(CheckpointError, match="holds no complete checkpoint"):
        load_model(pointer)


def test_truncated_weights_file_is_a_clear_error(tmp_path):
    method = make()
    ck = save_checkpoint(tmp_path, method.nets, method.cfg, {"step": 1})
    path = ck / "weights.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_weights(path)


def test_checkpoint_of_another_shape_lists_the_differences(tmp_path):
    small = make()
    ck = save_checkpoint(tmp_path, small.nets, small.cfg, {"step": 1})
    big = build_method(make_config("bigan", hidden=24, latent_dim=3, image_shape=list(IMAGE)), IMAGE)
    from advrep.checkpoint import load_state_dict_checked

    _, tensors = read_weights(ck / "weights.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_state_dict_checked(big.nets, tensors, source="test checkpoint")
    assert "shape D.fc2.weight: checkpoint (16, 16) vs model (24, 24)" in str(err.value)
    assert "more tensors of another shape" in str(err.value)


def test_weights_from_elsewhere_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not written by advrep"):
        read_weights(tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_model(tmp_path / "empty_run")


class _WritesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_state_with_a_pickle_payload_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned.txt"
    ck = tmp_path / "ck"
    ck.mkdir()
    with open(ck / "state.pt", "wb") as f:
        pickle.dump({"step": 1, "evil": _WritesAFile(str(target))}, f)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_state(ck)
    assert not target.exists()
    # and via torch's own zip format too
    torch.save({"evil": _WritesAFile(str(target))}, ck / "state.pt")
    assert not target.exists() or target.unlink() is None
    with pytest.raises(CheckpointError):
        load_state(ck)
    assert not os.path.exists(target)


def test_saving_the_same_step_twice_replaces_it_and_leaves_no_debris(tmp_path):
    method = make()
    save_checkpoint(tmp_path, method.nets, method.cfg, {"step": 5, "v": torch.tensor(1)}, keep=1)
    save_checkpoint(tmp_path, method.nets, method.cfg, {"step": 5, "v": torch.tensor(2)}, keep=1)
    ck = latest_checkpoint(tmp_path)
    assert ck.name == "step-00000005" and int(load_state(ck)["v"]) == 2
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name != "latest"] == ["step-00000005"]
