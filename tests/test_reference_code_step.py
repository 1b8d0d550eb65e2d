"""benchmarks/reference_code_step.py: the record its advrep side writes for the reference code to replay.

The reference side needs PyTensor and a port of the authors' code, which tests do not have; what it
reads is checked here, and its refusal of a folder that holds no reference code."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import reference_code_step  # noqa: E402


@pytest.mark.parametrize("kind", ["gan", "latent_regressor"])
def test_advrep_side_records_what_the_reference_replays(kind, mnist_dir, tmp_path):
    out = tmp_path / "steps.npz"
    dtype = torch.get_default_dtype()
    assert reference_code_step.main(["advrep", str(out), "--kind", kind, "--steps", "2",
                                     "--data-dir", str(mnist_dir)]) == 0
    assert torch.get_default_dtype() == dtype  # restored after the float64 steps
    record = np.load(out)  # no pickles: plain arrays only
    assert str(record["kind"]) == kind and int(record["steps"]) == 2 and float(record["decay"]) == 0.05
    roles = reference_code_step.reference_names(kind)
    assert ("E1" in roles) == (kind != "gan") and "Dz" not in roles
    for step in range(2):
        x = record[f"x{step}"]
        assert x.dtype == np.uint8 and x.shape == (128, 1, 28, 28) and x.max() > 200
        z = record[f"z{step}"]
        assert z.shape == (128, 50) and z.dtype == np.float64 and -1 <= z.min() and z.max() <= 1
        for key in roles:  # every weight the reference holds was recorded, [in, out], and trained
            before, after = record[f"w{step}_{key}"], record[f"w{step + 1}_{key}"]
            assert before.dtype == np.float64 and before.shape[0] in (50, 784, 1024)
            assert np.abs(after - before).max() > 1e-5, (key, step)
    assert not (record["x0"] == record["x1"]).all()  # consecutive batches, not one batch twice


def test_reference_side_names_a_folder_without_the_reference_code(tmp_path):
    record = tmp_path / "steps.npz"
    np.savez(record, kind="bigan", steps=1, decay=0.05)
    with pytest.raises(SystemExit, match="has no train_gan.py"):
        reference_code_step.main(["reference", str(record), "--reference-dir", str(tmp_path)])
