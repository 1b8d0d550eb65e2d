"""Image data for the convolutional methods: CIFAR-10's binary archive, 32-pixel MNIST, image folders."""

import hashlib
import io
import tarfile
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from advrep.data import DataError, cifar, download, load_dataset, write_idx
from advrep.data.padded import pad_images

N = 4  # records per synthetic batch file (the real files hold 10,000)


def cifar_records(seed):
    """(bytes of one batch file, images uint8 [N, 3, 32, 32], labels [N])."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(N, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=N, dtype=np.uint8)
    raw = b"".join(bytes([labels[i]]) + images[i].tobytes() for i in range(N))  # label, R, G, B planes
    return raw, images, labels


def write_archive(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def synthetic_cifar(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "PER_FILE", N)
    files, expected = {}, {}
    for seed, name in enumerate(cifar.SPLIT_FILES["train"] + cifar.SPLIT_FILES["test"]):
        files[name], *expected[name] = cifar_records(seed)
    (tmp_path / "cifar10").mkdir()
    md5 = write_archive(tmp_path / "cifar10" / cifar.ARCHIVE, files)
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", md5)
    return tmp_path, files, expected


def test_cifar10_reads_the_binary_archive_record_layout(synthetic_cifar):
    data_dir, _, expected = synthetic_cifar
    train = load_dataset("cifar10", "train", data_dir=data_dir)
    test = load_dataset("cifar10", "test", data_dir=data_dir)
    assert train.x.shape == (5 * N, 3, 32, 32) and test.x.shape == (N, 3, 32, 32) and train.name == "cifar10"
    images, labels = expected["data_batch_2.bin"]
    # batch 2 follows batch 1; byte 1 + c*1024 + i*32 + j of a record is pixel (c, i, j)
    np.testing.assert_array_equal(train.x[N:2 * N].numpy(), images / np.float32(255))
    np.testing.assert_array_equal(train.y[N:2 * N].numpy(), labels)
    np.testing.assert_array_equal(test.y.numpy(), expected["test_batch.bin"][1])


def test_cifar10_checks_the_archive_checksum_and_record_sizes(synthetic_cifar, monkeypatch):
    data_dir, files, _ = synthetic_cifar
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", "0" * 32)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("cifar10", "test", data_dir=data_dir)
    files = {**files, "test_batch.bin": files["test_batch.bin"][:-5]}  # truncated member
    md5 = write_archive(data_dir / "cifar10" / cifar.ARCHIVE, files)
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", md5)
    with pytest.raises(DataError, match="truncated"):
        load_dataset("cifar10", "test", data_dir=data_dir)


def test_cifar10_reads_an_extracted_folder(synthetic_cifar, tmp_path_factory):
    _, files, expected = synthetic_cifar
    other = tmp_path_factory.mktemp("extracted")
    (other / cifar.FOLDER).mkdir()
    for name, data in files.items():
        (other / cifar.FOLDER / name).write_bytes(data)
    test = load_dataset("cifar10", "test", data_dir=other)
    as_bytes = (test.x.numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(as_bytes, expected["test_batch.bin"][0])


def test_cifar10_offline_gives_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "open_url", offline)
    with pytest.raises(download.DownloadError) as err:
        load_dataset("cifar10", "train", data_dir=tmp_path)
    message = str(err.value)
    assert cifar.URL in message and cifar.ARCHIVE_MD5 in message and "offline" in message
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    with pytest.raises(DataError, match="not found"):
        load_dataset("cifar10", "train", data_dir=tmp_path, download=False)


def test_mnist_format_sets_padded_to_32_keep_every_pixel(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6, dtype=np.uint8)
    (tmp_path / "mnist").mkdir()
    for base in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # uncompressed: no checksum
        write_idx(tmp_path / "mnist" / base, images if "images" in base else labels)
    plain = load_dataset("mnist", "test", data_dir=tmp_path)
    padded = load_dataset("mnist-32", "test", data_dir=tmp_path)
    assert padded.x.shape == (6, 1, 32, 32) and padded.name == "mnist-32"
    assert torch.equal(padded.x[:, :, 2:30, 2:30], plain.x) and torch.equal(padded.y, plain.y)
    border = padded.x.clone()
    border[:, :, 2:30, 2:30] = 0
    assert border.abs().sum() == 0
    with pytest.raises(DataError, match="larger"):
        pad_images(torch.zeros(1, 1, 40, 40), 32)


def test_training_on_a_folder_resizes_and_crops_to_image_size(tmp_path):
    from advrep.methods import make_config
    from advrep.train import train

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 6)):
        for label in ("a", "b"):
            folder = tmp_path / "faces" / split / label
            folder.mkdir(parents=True)
            for i in range(n // 2):  # 20x12 RGB pictures: resized to cover 8x8, then centre-cropped
                Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = make_config("bigbigan", data=str(tmp_path / "faces"), image_size=8, hidden=16, latent_dim=4,
                      width=4, batch_size=8, epochs=1, decay_epochs=0, eval_every=0, sample_every=0,
                      progress=False)
    train(cfg, tmp_path / "run")
    from advrep.checkpoint import load_model

    assert load_model(tmp_path / "run").image_shape == (3, 8, 8)
    with pytest.raises(DataError, match="size"):
        train(cfg.updated({"data": "digits"}), tmp_path / "run2")
