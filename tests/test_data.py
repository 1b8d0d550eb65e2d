"""Tests for advrep.data: IDX parsing, MNIST-family lookup/download, arrays, folders, digits.

No test touches the network: an autouse fixture replaces the downloader's URL opener with one
that fails the test, and download tests install their own fake opener serving local bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from advrep.data import (
    DATASETS,
    DataError,
    Dataset,
    load_array_file,
    load_dataset,
    load_folder,
    read_idx,
    resolve_data_dir,
    write_idx,
)
from advrep.data import download as dl
from advrep.data.mnist import FAMILIES, SPLIT_FILES

MNIST_FILES = [f"{b}.gz" for pair in SPLIT_FILES.values() for b in pair]


def _mnist_dir() -> Path:
    """Real MNIST: $ADVREP_TEST_MNIST_DIR, else $ADVREP_DATA_DIR(/mnist) (the Makefile sets it),
    else shared/data/mnist beside the repo checkout."""
    explicit = os.environ.get("ADVREP_TEST_MNIST_DIR")
    if explicit:
        return Path(explicit)
    candidates = []
    if os.environ.get("ADVREP_DATA_DIR"):
        env = Path(os.environ["ADVREP_DATA_DIR"])
        candidates += [env / "mnist", env]
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"]
    for c in candidates:
        if all((c / f).is_file() for f in MNIST_FILES):
            return c
    return candidates[-1]


MNIST_DIR = _mnist_dir()
needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / f).is_file() for f in MNIST_FILES),
    reason=f"real MNIST IDX .gz files not found in {MNIST_DIR} (set ADVREP_TEST_MNIST_DIR to run these)",
)


def _no_network(url: str, timeout: float):
    raise AssertionError(f"test tried to reach the network: {url}")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No network, no real cache dir, no inherited ADVREP_DATA_DIR."""
    monkeypatch.setattr(dl, "open_url", _no_network)
    monkeypatch.delenv("ADVREP_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _gz_idx(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(header + arr.astype(np.uint8).tobytes())
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# IDX parser
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)  # [2, 3, 4]
    path = write_idx(tmp_path / f"a-idx3{suffix}", arr)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 1  # the result is an ordinary writable array


def test_idx_gz_matches_hand_built_file(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "x.gz").write_bytes(_gz_idx(arr))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), arr)


def test_idx_truncated(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:1024])
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte is truncated: expected 7856 bytes, got 1024"
    ):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")  # header cut inside the dims
    with pytest.raises(DataError, match="truncated.*Delete it and download again"):
        read_idx(path)


def test_idx_truncated_inside_gzip(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    content = bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + bytes(50)  # declares 100, holds 50
    path.write_bytes(gzip.compress(content))
    with pytest.raises(DataError, match="expected 108 bytes, got 58 after decompression"):
        read_idx(path)


def test_idx_bad_magic_and_type(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DataError, match=r"bad\.idx has a bad magic number 0x504B0304"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(DataError, match="unsupported element type code 0x07"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x08, 0]))
    with pytest.raises(DataError, match="0 dimensions"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((2, 2), np.uint8))
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(DataError, match="too long"):
        read_idx(path)


def test_idx_corrupt_gzip_is_a_clear_data_error(tmp_path):
    rng = np.random.default_rng(0)
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28), np.uint8))
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte\.gz is a corrupt or truncated gzip"
    ) as info:
        read_idx(path)
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no raw zlib traceback
    path.write_bytes(bytes(data[: len(data) // 3]))  # gzip stream cut short
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")


_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)
# database=None: keep the property tests from writing an example database into the repo.
_fast = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@_fast
@given(arr=hnp.arrays(np.uint8, _shapes), compress=st.booleans())
def test_idx_property_round_trip(tmp_path_factory, arr, compress):
    path = tmp_path_factory.getbasetemp() / ("prop-rt.gz" if compress else "prop-rt")
    write_idx(path, arr)
    out = read_idx(path)
    assert out.shape == arr.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


@_fast
@given(arr=hnp.arrays(np.uint8, _shapes), compress=st.booleans(), frac=st.floats(0.0, 1.0, exclude_max=True))
def test_idx_property_any_truncation_raises_data_error(tmp_path_factory, arr, compress, frac):
    path = tmp_path_factory.getbasetemp() / ("prop-cut.gz" if compress else "prop-cut")
    write_idx(path, arr)
    data = path.read_bytes()
    path.write_bytes(data[: int(frac * len(data))])  # strictly shorter than the real file
    with pytest.raises(DataError):
        read_idx(path)


@_fast
@given(prefix=st.sampled_from([b"", b"\x00\x00", b"\x00\x00\x08", b"\x1f\x8b"]), body=st.binary(max_size=80))
def test_idx_property_garbage_never_crashes(tmp_path_factory, prefix, body):
    path = tmp_path_factory.getbasetemp() / "prop-garbage"
    path.write_bytes(prefix + body)
    try:
        out = read_idx(path)
    except DataError:
        return
    assert isinstance(out, np.ndarray)


# --------------------------------------------------------------------------------------------
# Real MNIST
# --------------------------------------------------------------------------------------------


@needs_mnist
def test_real_mnist_shapes_labels_and_values():
    train = load_dataset("mnist", "train", data_dir=MNIST_DIR, download=False)
    test = load_dataset("mnist", "test", data_dir=MNIST_DIR, download=False)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert train.image_shape == (1, 28, 28) and train.dim == 784 and len(train) == 60000
    assert train.flat().shape == (60000, 784)
    for ds in (train, test):
        assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
        assert set(ds.y.unique().tolist()) == set(range(10)) and ds.num_classes == 10
    assert train.y[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first MNIST labels
    assert train.name == "mnist"


@needs_mnist
def test_real_mnist_env_var_and_flag(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVREP_DATA_DIR", str(MNIST_DIR.parent))  # files in <dir>/mnist/
    assert len(load_dataset("mnist", "test", download=False)) == 10000
    monkeypatch.setenv("ADVREP_DATA_DIR", str(MNIST_DIR))  # files directly in <dir>
    assert len(load_dataset("mnist", "test", download=False)) == 10000
    monkeypatch.setenv("ADVREP_DATA_DIR", str(tmp_path / "empty"))  # the flag beats the env var
    assert len(load_dataset("mnist", "test", data_dir=str(MNIST_DIR), download=False)) == 10000
    with pytest.raises(DataError, match="not found"):
        load_dataset("mnist", "test", download=False)


@needs_mnist
@pytest.mark.parametrize("name", ["fashion-mnist", "kmnist"])
def test_real_mnist_files_refused_as_another_set(name):
    with pytest.raises(DataError, match=r"checksum mismatch.*it is mnist's t10k-images-idx3-ubyte\.gz"):
        load_dataset(name, "test", data_dir=MNIST_DIR)


@needs_mnist
def test_real_mnist_torchvision_layout_and_cache(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (raw / f).symlink_to(MNIST_DIR / f)
    a = load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    b = load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    assert torch.equal(a.x, b.x)
    a.x.zero_()  # datasets must not share memory through the per-process cache
    assert float(b.x.max()) == 1.0


# --------------------------------------------------------------------------------------------
# MNIST-family lookup and download (synthetic files, fake network)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fake_mnist(monkeypatch):
    """Tiny synthetic MNIST .gz files; the checksum table is patched to accept exactly them."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28), np.uint8),
        "train-labels-idx1-ubyte.gz": np.array([0, 1, 2, 3, 9, 5], np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([7, 8, 9], np.uint8),
    }
    blobs = {name: _gz_idx(a) for name, a in arrays.items()}
    for name, blob in blobs.items():
        digest = hashlib.sha256(blob).hexdigest()
        monkeypatch.setitem(FAMILIES["mnist"].checksums, name, (("sha256", digest),))
    return arrays, blobs


def _serving(blobs: dict[str, bytes], calls: list[str]):
    def opener(url: str, timeout: float):
        calls.append(url)
        assert timeout <= 30
        return io.BytesIO(blobs[url.rsplit("/", 1)[1]])

    return opener


def test_download_through_fake_opener(monkeypatch, tmp_path, fake_mnist):
    arrays, blobs = fake_mnist
    calls: list[str] = []
    monkeypatch.setattr(dl, "open_url", _serving(blobs, calls))
    ds = load_dataset("mnist", "train", data_dir=tmp_path)
    assert [u.rsplit("/", 1)[1] for u in calls] == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert all(u.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/") for u in calls)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    )
    assert ds.x.shape == (6, 1, 28, 28)
    np.testing.assert_allclose(ds.x[:, 0].numpy() * 255, arrays["train-images-idx3-ubyte.gz"], atol=1e-3)
    assert ds.y.tolist() == [0, 1, 2, 3, 9, 5]
    monkeypatch.setattr(dl, "open_url", _no_network)  # now on disk: no second download
    assert len(load_dataset("mnist", "train", data_dir=tmp_path)) == 6


def test_download_with_bad_checksum_is_refused_and_leaves_nothing(monkeypatch, tmp_path, fake_mnist):
    _, blobs = fake_mnist
    tampered = {k: v[:-1] + bytes([v[-1] ^ 1]) for k, v in blobs.items()}
    monkeypatch.setattr(dl, "open_url", _serving(tampered, []))
    with pytest.raises(
        DataError, match=r"checksum is [0-9a-f]{64}, expected [0-9a-f]{64}; the file was not saved"
    ):
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert list((tmp_path / "mnist").iterdir()) == []  # no file, no .part left behind


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
        TimeoutError("timed out"),
        urllib.error.HTTPError("u", 503, "Service Unavailable", None, None),
    ],
)
def test_offline_download_error_names_files_and_directory(monkeypatch, tmp_path, error):
    def opener(url: str, timeout: float):
        raise error

    monkeypatch.setattr(dl, "open_url", opener)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert f"{tmp_path / 'fashion-mnist'}/" in msg
    assert "ADVREP_DATA_DIR" in msg and "--data-dir" in msg
    assert "fashion-mnist.s3-website" in msg
    assert list((tmp_path / "fashion-mnist").iterdir()) == []


def test_unwritable_download_dir_is_a_data_error(monkeypatch, tmp_path, fake_mnist):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")  # mkdir below a regular file fails, even for root
    with pytest.raises(DataError, match="cannot download into .*--data-dir"):
        load_dataset("mnist", "test", data_dir=blocker)


def test_missing_without_download(tmp_path):
    with pytest.raises(DataError, match=r"kmnist \(train split\) not found.*download=True"):
        load_dataset("kmnist", "train", data_dir=tmp_path, download=False)


def test_default_data_dir_is_used_for_downloads(monkeypatch, tmp_path, fake_mnist):
    _, blobs = fake_mnist
    monkeypatch.setattr(dl, "open_url", _serving(blobs, []))
    load_dataset("mnist", "test")
    assert (tmp_path / "xdg-cache" / "advrep" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def _write_raw_family(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)


def test_uncompressed_files_load_without_checksum(tmp_path):
    _write_raw_family(tmp_path / "kmnist", np.full((4, 28, 28), 255, np.uint8), np.arange(4, dtype=np.uint8))
    ds = load_dataset("kmnist", "train", data_dir=tmp_path, download=False)
    assert ds.x.shape == (4, 1, 28, 28) and float(ds.x.min()) == 1.0 and ds.y.tolist() == [0, 1, 2, 3]


def test_image_label_count_mismatch_names_both_files(tmp_path):
    _write_raw_family(tmp_path, np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", data_dir=tmp_path, download=False)
    msg = str(info.value)
    assert "train-images-idx3-ubyte has 5 images" in msg and "train-labels-idx1-ubyte has 4 labels" in msg


def test_labels_outside_0_9_rejected(tmp_path):
    _write_raw_family(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([3, 12], np.uint8))
    with pytest.raises(DataError, match=r"label 12, outside \[0, 9\]"):
        load_dataset("mnist", "train", data_dir=tmp_path, download=False)


def test_wrong_image_shape_rejected(tmp_path):
    _write_raw_family(tmp_path, np.zeros((2, 32, 32), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"expected uint8 \[N, 28, 28\], got uint8 \[2, 32, 32\]"):
        load_dataset("mnist", "train", data_dir=tmp_path, download=False)


# --------------------------------------------------------------------------------------------
# load_dataset / resolve_data_dir
# --------------------------------------------------------------------------------------------


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "advrep"
    monkeypatch.setenv("ADVREP_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.delenv("ADVREP_DATA_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == Path.home() / ".cache" / "advrep"


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_dataset("cifar-99")
    for name in DATASETS:
        assert name in str(info.value)
    assert "npz:PATH" in str(info.value)


def test_bad_split_and_misplaced_size(tmp_path):
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_dataset("digits", "valid")
    with pytest.raises(DataError, match="size= only applies to image folders"):
        load_dataset("digits", size=8)


def test_builtin_names_are_normalised(tmp_path):
    with pytest.raises(DataError, match=r"fashion-mnist \(test split\) not found"):
        load_dataset("Fashion_MNIST", "test", data_dir=tmp_path, download=False)


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def test_digits_split():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.x.shape == (1437, 1, 8, 8) and test.x.shape == (360, 1, 8, 8)
    assert train.dim == 64 and train.num_classes == 10 and test.num_classes == 10
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    counts_train, counts_test = torch.bincount(train.y), torch.bincount(test.y)
    fractions = counts_test.float() / (counts_train + counts_test).float()
    assert torch.all((fractions - 0.2).abs() < 0.02)  # stratified
    again = load_dataset("digits", "test")
    assert torch.equal(again.x, test.x) and torch.equal(again.y, test.y)  # fixed seed


# --------------------------------------------------------------------------------------------
# Dataset container
# --------------------------------------------------------------------------------------------


def test_dataset_views_and_subsets():
    x = torch.rand(10, 1, 4, 4)  # [10, 1, 4, 4]
    ds = Dataset(x, torch.arange(10) % 3, "toy")
    flat = ds.flat()  # [10, 16]
    assert flat.shape == (10, 16) and flat.data_ptr() == ds.x.data_ptr()
    flat[0, 0] = 5.0
    assert float(ds.x[0, 0, 0, 0]) == 5.0  # a view, not a copy
    assert len(ds.subset(slice(2, 5))) == 3
    sub = ds.subset(torch.tensor([9, 0]))
    assert sub.y.tolist() == [0, 0] and torch.equal(sub.x[1], ds.x[0])
    assert len(ds.subset(ds.y == 1)) == 3
    assert ds.subset(slice(None, None, 2)).flat().shape == (5, 16)  # strided subset still flattens
    assert ds.num_classes == 3 and Dataset(x).num_classes is None
    assert repr(ds) == "Dataset(name='toy', n=10, image_shape=(1, 4, 4), 3 classes)"
    with pytest.raises(TypeError):
        ds.subset(3)


def test_dataset_validation():
    with pytest.raises(DataError):
        Dataset(torch.rand(3, 4, 4))
    with pytest.raises(TypeError):
        Dataset(torch.zeros(3, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(DataError):
        Dataset(torch.rand(3, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    ds = Dataset(torch.rand(3, 1, 4, 4, dtype=torch.float64), torch.zeros(3, dtype=torch.int32))
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64


# --------------------------------------------------------------------------------------------
# .npy / .npz arrays
# --------------------------------------------------------------------------------------------


def test_npy_layouts(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (4, 5, 6, 3), np.uint8)
    np.save(tmp_path / "nhwc.npy", nhwc)
    ds = load_dataset(str(tmp_path / "nhwc.npy"))
    assert ds.x.shape == (4, 3, 5, 6) and ds.y is None and ds.name == "nhwc"
    np.testing.assert_allclose(ds.x[:, 2, 1, 4].numpy(), nhwc[:, 1, 4, 2] / 255, rtol=1e-6)

    cases = {
        "nhw": (np.zeros((2, 5, 6), np.uint8), (2, 1, 5, 6)),
        "nchw": (np.full((2, 3, 5, 6), 0.5, np.float64), (2, 3, 5, 6)),
        "flat_square": (np.zeros((2, 784), np.float32), (2, 1, 28, 28)),
        "flat_other": (np.zeros((2, 10), np.float32), (2, 1, 1, 10)),
        "binary": (np.ones((2, 4, 4), bool), (2, 1, 4, 4)),
    }
    for name, (arr, shape) in cases.items():
        np.save(tmp_path / f"{name}.npy", arr)
        got = load_dataset(f"npy:{tmp_path / name}.npy")
        assert got.x.shape == shape and got.x.dtype == torch.float32, name
        assert float(got.x.max()) == float(arr.max()), name


def test_npz_keys_and_splits(tmp_path):
    x = np.zeros((5, 8, 8), np.uint8)
    np.savez(tmp_path / "plain.npz", x=x, y=np.arange(5))
    ds = load_dataset(tmp_path / "plain.npz")
    assert ds.y.tolist() == [0, 1, 2, 3, 4] and ds.num_classes == 5
    with pytest.raises(DataError, match="no test split"):
        load_dataset(tmp_path / "plain.npz", "test")

    np.savez(tmp_path / "split.npz", x_train=x, y_train=np.zeros(5, np.int64), x_test=x[:2], y_test=[1, 1])
    assert len(load_dataset(f"npz:{tmp_path / 'split.npz'}", "train")) == 5
    assert load_dataset(f"npz:{tmp_path / 'split.npz'}", "test").y.tolist() == [1, 1]

    np.savez(tmp_path / "single.npz", x)  # stored as arr_0
    assert len(load_dataset(tmp_path / "single.npz")) == 5

    np.savez(tmp_path / "odd.npz", images=x, labels=np.zeros(5))
    with pytest.raises(DataError, match=r"has no 'x' array \(keys: \['images', 'labels'\]\)"):
        load_dataset(tmp_path / "odd.npz")
    with pytest.raises(DataError, match="not a .npy array"):
        load_dataset(f"npy:{tmp_path / 'plain.npz'}")


_good = np.zeros((3, 4, 4), np.float32)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.full((3, 4, 4), np.nan, np.float32), None, "NaN or inf"),
        (np.array([[[0.0, np.inf]]] * 3, np.float64), None, "NaN or inf"),
        (np.full((3, 4, 4), 200.0, np.float32), None, r"outside \[0, 1\]; scale to \[0, 1\].*divide by 255"),
        (np.full((3, 4, 4), -0.5, np.float32), None, r"scale to \[0, 1\]"),
        (np.zeros((3, 4, 4), np.int64), None, r"unsupported image dtype int64.*astype\(np.uint8\)"),
        (np.zeros((3, 4, 4), np.complex64), None, "unsupported image dtype complex64"),
        (np.zeros((3, 4, 4), np.uint16), None, "unsupported image dtype uint16"),
        (np.array(["a", "b", "c"]), None, "unsupported image dtype"),
        (np.zeros(12, np.uint8), None, "1 dimension"),
        (np.zeros((3, 1, 4, 4, 1), np.uint8), None, "5 dimension"),
        (np.zeros((3, 5, 4, 7), np.uint8), None, "neither 1 or 3 channels"),
        (np.zeros((0, 4, 4), np.uint8), None, "empty"),
        (_good, np.zeros(2, np.int64), "3 images but 2 labels"),
        (_good, np.array([0, -1, 2]), "negative label -1"),
        (_good, np.eye(3), r"one-hot labels\? use y.argmax\(1\)"),
        (_good, np.array([0.5, 1, 2]), "whole numbers"),
        (_good, np.array(["a", "b", "c"]), "unsupported label dtype"),
    ],
)
def test_bad_arrays_rejected(tmp_path, x, y, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **({"x": x} if y is None else {"x": x, "y": y}))
    with pytest.raises(DataError, match=match):
        load_array_file(path)


def test_pickled_arrays_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickles are refused"):
        load_dataset(path)
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="pickles are refused"):
        load_dataset(tmp_path / "obj.npz")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_dataset(tmp_path / "notes.txt")


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------


def _img(path: Path, size_wh: tuple[int, int], mode: str = "L", value: int | tuple = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size_wh, value).save(path)
    return path


def test_folder_class_subfolders(tmp_path):
    root = tmp_path / "shapes"
    _img(root / "cat" / "a.png", (6, 6))
    _img(root / "cat" / "b.jpg", (6, 6))
    _img(root / "dog" / "deeper" / "c.png", (6, 6))
    _img(root / "ant" / "d.png", (6, 6), value=255)
    ds = load_dataset(root)
    assert ds.x.shape == (4, 1, 6, 6) and ds.name == "shapes"
    assert ds.y.tolist() == [0, 1, 1, 2]  # ant=0, cat=1, dog=2 (sorted names)
    assert float(ds.x[0].min()) == 1.0
    assert len(load_dataset(f"folder:{root}")) == 4


def test_folder_mixed_sizes_and_modes(tmp_path):
    root = tmp_path / "mixed"
    for i in range(3):
        _img(root / f"g{i}.png", (8, 8), "L", 100)
    _img(root / "wide.png", (16, 12), "RGB", (255, 0, 0))
    _img(root / "alpha.png", (8, 8), "RGBA", (0, 255, 0, 10))
    ds = load_folder(root)
    assert ds.x.shape == (5, 3, 8, 8) and ds.y is None  # RGB because one image is colour
    assert torch.allclose(ds.x[4, :, 3, 3], torch.tensor([1.0, 0.0, 0.0]))  # resized + cropped red
    assert torch.allclose(ds.x[1], torch.full((3, 8, 8), 100 / 255))  # gray replicated
    sized = load_folder(root, size=(4, 6))
    assert sized.x.shape == (5, 3, 4, 6)


def test_folder_gray_stored_as_rgb_becomes_one_channel(tmp_path):
    _img(tmp_path / "a.png", (5, 5), "RGB", (7, 7, 7))
    _img(tmp_path / "b.png", (5, 5), "L", 7)
    assert load_folder(tmp_path).x.shape == (2, 1, 5, 5)


def test_folder_16bit_png_is_rescaled(tmp_path):
    Image.fromarray(np.full((4, 4), 128 * 257, np.uint16)).save(tmp_path / "deep.png")
    ds = load_folder(tmp_path)
    assert torch.allclose(ds.x, torch.full((1, 1, 4, 4), 128 / 255))


def test_folder_skips_non_images_with_warning(tmp_path):
    _img(tmp_path / "a.png", (4, 4))
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / "labels.csv").write_text("a,1")
    (tmp_path / ".DS_Store").write_bytes(b"\0")  # hidden: ignored silently
    with pytest.warns(UserWarning, match="skipped 2 non-image file"):
        ds = load_folder(tmp_path)
    assert len(ds) == 1


def test_folder_corrupt_images_raise(tmp_path):
    rng = np.random.default_rng(0)
    pixels = (np.add.outer(np.arange(64), np.arange(64)) + rng.integers(0, 4, (64, 64))).astype(np.uint8)
    good = tmp_path / "good.png"
    Image.fromarray(pixels).save(good)
    _img(tmp_path / "other.png", (64, 64))
    data = bytearray(good.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0x5A for b in data[mid : mid + 16])
    good.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"cannot read image file .*good\.png"):
        load_folder(tmp_path)
    good.write_bytes(Image.new("L", (64, 64)).tobytes()[:100])  # not a PNG at all
    with pytest.raises(DataError, match=r"good\.png.*corrupt or not an image"):
        load_folder(tmp_path)


def test_folder_truncated_png_raises(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"cut\.png"):
        load_folder(tmp_path)


def test_folder_empty_and_splits(tmp_path):
    with pytest.raises(DataError, match="no images found"):
        load_folder(tmp_path)
    (tmp_path / "notes.md").write_text("x")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no images found"):
        load_folder(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "missing")

    split_root = tmp_path / "split"
    _img(split_root / "train" / "a" / "1.png", (4, 4))
    _img(split_root / "train" / "b" / "2.png", (4, 4))
    _img(split_root / "test" / "a" / "3.png", (4, 4))
    assert load_dataset(split_root, "train").y.tolist() == [0, 1]
    assert len(load_dataset(split_root, "test")) == 1

    flat_root = tmp_path / "flat"
    _img(flat_root / "1.png", (4, 4))
    with pytest.raises(DataError, match="has no test split"):
        load_dataset(flat_root, "test")
