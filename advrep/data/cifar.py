"""CIFAR-10 from its *binary* archive, ``cifar-10-binary.tar.gz`` (never the pickled Python version:
reading data must not execute code).

Layout of the archive: ``cifar-10-batches-bin/data_batch_{1..5}.bin`` (train, 50,000 images) and
``test_batch.bin`` (10,000). Each file is 10,000 records of 3,073 bytes: one label byte (0-9), then
the 32x32 red plane, green plane and blue plane, row-major (1024 bytes each). So a record reshapes
straight to [3, 32, 32].

Where it is looked for, in order: ``<data_dir>/cifar10/cifar-10-binary.tar.gz``,
``<data_dir>/cifar-10-binary.tar.gz``, then the already-extracted folders
``<data_dir>/cifar10/cifar-10-batches-bin/`` and ``<data_dir>/cifar-10-batches-bin/``. An archive is
checked against the published MD5 before use; extracted ``.bin`` files are checked structurally.
Missing data is downloaded (with the MD5 check) into ``<data_dir>/cifar10/`` when allowed.
"""

from __future__ import annotations

import functools
import tarfile
from pathlib import Path

import numpy as np
import torch

from . import download as _dl
from .dataset import Dataset
from .errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE = "cifar-10-binary.tar.gz"
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # published on the CIFAR page
FOLDER = "cifar-10-batches-bin"
RECORD = 1 + 3 * 32 * 32  # label byte + three 32x32 planes
PER_FILE = 10000
SPLIT_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}


def _parse(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's bytes -> (images uint8 [N, 3, 32, 32], labels uint8 [N])."""
    if len(raw) != PER_FILE * RECORD:
        raise DataError(f"{source} has {len(raw)} bytes, expected {PER_FILE * RECORD} ({PER_FILE} records of "
                        f"{RECORD} bytes). It is truncated or not a CIFAR-10 binary batch: delete it and "
                        "download again.")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(PER_FILE, RECORD)
    labels = records[:, 0]
    if int(labels.max()) > 9:
        raise DataError(f"{source} holds label {int(labels.max())}, outside 0-9: it is not a CIFAR-10 batch "
                        "(CIFAR-100's binary files have two label bytes). Delete it and download again.")
    return records[:, 1:].reshape(PER_FILE, 3, 32, 32), labels


@functools.lru_cache(maxsize=2)
def _read_archive(path: str, mtime_ns: int, size: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    # Members are read as bytes through extractfile: nothing is written to disk, and a member's
    # name can never place a file outside the data folder.
    parts = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in SPLIT_FILES[split]:
                try:
                    member = tar.getmember(f"{FOLDER}/{name}")
                except KeyError:
                    raise DataError(f"{path} has no {FOLDER}/{name}; it is not the CIFAR-10 binary archive. "
                                    f"Delete it and download {URL} again.") from None
                f = tar.extractfile(member)
                if f is None:
                    raise DataError(f"{path}: {FOLDER}/{name} is not a regular file; the archive is damaged.")
                parts.append(_parse(f.read(), f"{path}:{FOLDER}/{name}"))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot read {path} as a gzipped tar archive ({exc}); it is truncated or corrupt: "
                        "delete it and download again.") from None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [_parse((folder / name).read_bytes(), str(folder / name)) for name in SPLIT_FILES[split]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _find(data_dir: Path, split: str) -> tuple[str, Path] | None:
    for archive in (data_dir / "cifar10" / ARCHIVE, data_dir / ARCHIVE):
        if archive.is_file():
            return "archive", archive
    for folder in (data_dir / "cifar10" / FOLDER, data_dir / FOLDER):
        if all((folder / name).is_file() for name in SPLIT_FILES[split]):
            return "folder", folder
    return None


def _verify(archive: Path) -> None:
    st = archive.stat()
    got = _digest(str(archive), st.st_mtime_ns, st.st_size)
    if got != ARCHIVE_MD5:
        raise DataError(f"checksum mismatch for {archive}: md5 is {got}, but CIFAR-10's {ARCHIVE} has "
                        f"{ARCHIVE_MD5}. The file is damaged or another archive (the pickled "
                        "cifar-10-python.tar.gz is not read here): delete it and download again.")


@functools.lru_cache(maxsize=4)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return _dl.file_digest(path, "md5")


def load_cifar10(split: str, data_dir: Path, download: bool = True) -> Dataset:
    """One split of CIFAR-10 as x [N, 3, 32, 32] in [0, 1], y [N] (0-9)."""
    if split not in SPLIT_FILES:
        raise DataError(f"unknown split {split!r} for cifar10: expected 'train' or 'test'.")
    found = _find(data_dir, split)
    if found is None:
        where = f"{data_dir / 'cifar10' / ARCHIVE}, {data_dir / ARCHIVE} or an extracted {FOLDER}/ folder"
        if not download:
            raise DataError(f"cifar10 not found: looked for {where}. Put the archive there, or allow "
                            "downloading.")
        try:
            _dl.download_file(URL, data_dir / "cifar10" / ARCHIVE, algorithm="md5", digest=ARCHIVE_MD5)
        except _dl.DownloadError as exc:
            raise _dl.DownloadError(
                f"cifar10 not found ({where}) and the download failed: {exc}. If this machine is offline, "
                f"fetch {URL} elsewhere (md5 {ARCHIVE_MD5}) and put it in {data_dir / 'cifar10'}/, or point "
                "--data-dir (data_dir=) or ADVREP_DATA_DIR at a folder that holds it.") from None
        found = ("archive", data_dir / "cifar10" / ARCHIVE)
    kind, path = found
    if kind == "archive":
        _verify(path)
        st = path.stat()
        images, labels = _read_archive(str(path), st.st_mtime_ns, st.st_size, split)
    else:
        images, labels = _read_folder(path, split)
    x = torch.from_numpy(np.divide(images, 255, dtype=np.float32))  # [N, 3, 32, 32]
    y = torch.from_numpy(labels.astype(np.int64))  # [N]
    return Dataset(x, y, "cifar10")
