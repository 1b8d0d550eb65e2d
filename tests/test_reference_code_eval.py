"""benchmarks/reference_code_eval.py: the reference code's saved BiGAN or latent regressor, loaded into
advrep to be scored.

Scoring needs weights the reference code trained, which tests do not have; what the script reads is
checked here: the reference's saved layout, its log lines, and the refusal of a saved file that asks
the unpickler for anything but numpy arrays."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import reference_code_eval  # noqa: E402

from advrep.methods import build_method, make_config  # noqa: E402


def _method(seed: int, name: str = "bigan"):
    torch.manual_seed(seed)
    method = build_method(make_config(name, bn_eps=1e-8), (1, 28, 28))
    with torch.no_grad():
        for p in method.nets.parameters():
            if not p.any():  # D's scoring layer (BiGAN) or E's output (LR) starts at zero
                p.normal_(0, 0.02)
        for buffer, buf in method.nets.named_buffers():
            if buffer.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif buffer.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return method


def _as_reference(method, kind: str = "bigan") -> dict[str, np.ndarray]:
    """advrep's weights in the reference's saved layout: [in, out] weights, batch norms as 1000 batches' sums."""
    state = method.nets.state_dict()
    arrays = {}
    for names in reference_code_eval.LAYOUTS[kind].values():
        for name in names:
            bn, _, part = name.rpartition(".")
            if part == "count":
                arrays[name] = np.float32(1000)
            elif part in ("mean", "var"):
                arrays[name] = state[f"{bn}.running_{part}"].numpy() * 1000
            else:
                arrays[name] = state[f"{name}.weight"].T.numpy().copy()
    return arrays


@pytest.mark.parametrize("name, kind", [("bigan", "bigan"), ("latent_regressor", "latent_regressor"),
                                        ("joint_latent_regressor", "latent_regressor")])
def test_reference_layout_loads_into_advreps_method(name, kind):
    source, target = _method(0, name), _method(1, name)
    x = torch.rand(64, 1, 28, 28)
    source.nets.eval()
    target.nets.eval()
    want = source.features(x)
    assert not torch.allclose(target.features(x)["penultimate"], want["penultimate"])
    reference_code_eval.load_reference(target, _as_reference(source, kind))
    got = target.features(x)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5)
    z = torch.rand(16, 50) * 2 - 1
    torch.testing.assert_close(target.generate(z), source.generate(z), rtol=1e-5, atol=1e-5)


def test_a_weight_of_another_shape_is_named():
    arrays = _as_reference(_method(0))
    arrays["E.fc2"] = arrays["E.fc2"][:, :512]
    with pytest.raises(ValueError, match=r"E\.fc2: the reference saved \(512, 1024\)"):
        reference_code_eval.load_reference(_method(1), arrays)


LOG = """\
Epoch 79: 41.113973 seconds (LR = 2e-06)
Running 1000 deploy update iterations...done. (29.279658 seconds)
80) JD: 0.2531  E: 1.8628  G: 1.8628
NND/100: 5.30  NND/10: 4.62  NND: 4.14  NNC_e: 93.20%  NNC_e-: 96.65%  CLS_e-: 72.58%  EGr: 6.20
"""


def test_reference_log_gives_the_epochs_scores(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("8) JD: 0.3\nNNC_e: 1.00%  NNC_e-: 2.00%\n" + LOG)
    assert reference_code_eval.reference_log(log, 80) == {"penultimate": 96.65, "z_pre": 93.20}
    lr_log = tmp_path / "lr.txt"  # a latent regressor's run also scores its discriminator
    lr_log.write_text(" 0) D: 0.6932  E: 0.6932\nNNC_e: 10.16%  NNC_e-: 96.61%  NNC_d: 96.56%  CLS_e-: 91.19%\n")
    assert reference_code_eval.reference_log(lr_log, 0) == {"penultimate": 96.61, "z_pre": 10.16,
                                                            "discriminator": 96.56}
    assert reference_code_eval.reference_log(log, 8) == {"penultimate": 2.0, "z_pre": 1.0}
    with pytest.raises(SystemExit, match="no evaluation of epoch 40"):
        reference_code_eval.reference_log(log, 40)
    # the log is read before the weights and the minutes of scoring
    with pytest.raises(SystemExit, match="no evaluation of epoch 40"):
        reference_code_eval.main([str(tmp_path / "models" / "40"), "--log", str(log)])
    with pytest.raises(SystemExit, match="ends in its number"):
        reference_code_eval.main([str(tmp_path / "models" / "final"), "--log", str(log)])


def test_a_saved_file_that_asks_for_more_than_arrays_is_refused(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    prefix = tmp_path / "80"
    for group in reference_code_eval.LAYOUTS["bigan"]:
        (tmp_path / f"80_{group}_params.jl").write_bytes(pickle.dumps([Payload()]))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print, which is not a numpy array"):
        reference_code_eval.reference_arrays(str(prefix))
    assert "this ran" not in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["bigan", "latent_regressor"])
def test_reference_arrays_reads_the_reference_codes_files(tmp_path, kind):
    import joblib  # what the reference code saves with (scikit-learn brings it)

    arrays = _as_reference(_method(0, kind), kind)
    for group, names in reference_code_eval.LAYOUTS[kind].items():
        joblib.dump([arrays[n] for n in names], tmp_path / f"80_{group}_params.jl")
    assert reference_code_eval.saved_method(str(tmp_path / "80")) == kind
    got = reference_code_eval.reference_arrays(str(tmp_path / "80"), kind)
    assert got.keys() == arrays.keys()
    for name, value in arrays.items():
        np.testing.assert_array_equal(got[name], value)
    (tmp_path / "80_gen_params.jl").unlink()
    with pytest.raises(SystemExit, match="80_gen_params.jl does not exist"):
        reference_code_eval.reference_arrays(str(tmp_path / "80"), kind)
    with pytest.raises(SystemExit, match="do not exist; give the prefix of a saved epoch"):
        reference_code_eval.saved_method(str(tmp_path / "40"))
