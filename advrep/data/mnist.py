"""MNIST, Fashion-MNIST and KMNIST from their standard IDX files.

Where files are looked for, in order (the first folder holding both files of the split wins)::

    <data_dir>/<name>/              e.g. ~/.cache/advrep/mnist/
    <data_dir>/<TorchvisionName>/raw/   a torchvision download, e.g. <root>/FashionMNIST/raw/
    <data_dir>/                     so ``--data-dir /path/to/mnist-files`` works

Each file may be gzip-compressed (``train-images-idx3-ubyte.gz``) or not
(``train-images-idx3-ubyte``).  A ``.gz`` file is checked against the published checksum of
*that* dataset, so pointing ``fashion-mnist`` at MNIST files fails loudly instead of silently
training on the wrong data; uncompressed files have no published checksum and are only checked
structurally.  Missing files are downloaded into ``<data_dir>/<name>/`` when ``download=True``.

Checksums: MNIST is verified by SHA256 (the published archives, or the project's re-compressed
shared copy); Fashion-MNIST and KMNIST by the MD5s that their authors and torchvision publish.
Downloads must match the published archive exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import download as _dl
from .dataset import Dataset
from .errors import DataError
from .idx import read_idx

Digest = tuple[str, str]  # (hashlib algorithm, hex digest)


@dataclass(frozen=True, eq=False)
class MnistFamily:
    """Where one MNIST-format set lives: its name, download mirrors, file checksums and class count."""

    name: str
    torchvision_name: str
    mirrors: tuple[str, ...]  # base URLs ending in "/"
    # gz file name -> accepted digests; the first is what the mirrors serve (checked on download)
    checksums: dict[str, tuple[Digest, ...]]
    num_classes: int = 10


# split -> (images file, labels file), without the ".gz"
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _sums(algorithm: str, *digests: str) -> dict[str, Digest]:
    """Digest table in SPLIT_FILES order: train images, train labels, test images, test labels."""
    names = [base + ".gz" for pair in SPLIT_FILES.values() for base in pair]
    return {n: (algorithm, d) for n, d in zip(names, digests, strict=True)}


def _accept(*tables: dict[str, Digest]) -> dict[str, tuple[Digest, ...]]:
    return {name: tuple(t[name] for t in tables) for name in tables[0]}


# The original 1998 archives, as served by the mirror (and by yann.lecun.com before it).
_MNIST_PUBLISHED = _sums(
    "sha256",
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
)
# The project's shared offline copy (its SHA256SUMS) was re-compressed: the same IDX content
# in different gz bytes.  Accepted for files found on disk; downloads must match the above.
_MNIST_SHARED_COPY = _sums(
    "sha256",
    "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
)
# MD5 of the original archives (torchvision's list).  Not needed to accept MNIST (SHA256 does
# that) but lets a kmnist / fashion-mnist check, which is MD5, recognise MNIST files by name.
_MNIST_MD5 = _sums(
    "md5",
    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3",
    "ec29112dd5afa0611ce80d1b7f02629c",
)

FAMILIES: dict[str, MnistFamily] = {
    "mnist": MnistFamily(
        "mnist",
        "MNIST",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        _accept(_MNIST_PUBLISHED, _MNIST_SHARED_COPY, _MNIST_MD5),
    ),
    # Fashion-MNIST and KMNIST publish MD5s only (also what torchvision checks).
    "fashion-mnist": MnistFamily(
        "fashion-mnist",
        "FashionMNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        _accept(
            _sums(
                "md5",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            )
        ),
    ),
    "kmnist": MnistFamily(
        "kmnist",
        "KMNIST",
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        _accept(
            _sums(
                "md5",
                "bdb82020997e1d708af4cf47b453dcf7",
                "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "7320c461ea6c1c855c0b718fb2a4b134",
            )
        ),
    ),
}


def _candidate_dirs(fam: MnistFamily, data_dir: Path) -> list[Path]:
    return [data_dir / fam.name, data_dir / fam.torchvision_name / "raw", data_dir]


def _find_in(folder: Path, base: str) -> Path | None:
    for fname in (base + ".gz", base):
        if (folder / fname).is_file():
            return folder / fname
    return None


def find_files(fam: MnistFamily, split: str, data_dir: Path) -> tuple[Path, Path] | None:
    """(images, labels) paths from the first candidate folder that holds both, else None."""
    for folder in _candidate_dirs(fam, data_dir):
        found = [_find_in(folder, base) for base in SPLIT_FILES[split]]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
    return None


@functools.lru_cache(maxsize=32)
def _digest_cached(path: str, mtime_ns: int, size: int, algorithm: str) -> str:
    # mtime_ns and size are only part of the key: a replaced file is hashed afresh.
    return _dl.file_digest(path, algorithm)


@functools.lru_cache(maxsize=16)
def _read_idx_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    # Decoding 47 MB of MNIST takes a noticeable fraction of a second and tests load it often.
    arr = read_idx(path)
    arr.flags.writeable = False  # shared between callers: nobody may modify it in place
    return arr


def _digest(path: Path, algorithm: str) -> str:
    st = path.stat()
    return _digest_cached(str(path), st.st_mtime_ns, st.st_size, algorithm)


def _identify(path: Path) -> str:
    """' (it is mnist's t10k-images-idx3-ubyte.gz)' when the file is a known dataset file."""
    for fam in FAMILIES.values():
        for fname, accepted in fam.checksums.items():
            if any(_digest(path, algo) == digest for algo, digest in accepted):
                return f" (it is {fam.name}'s {fname})"
    return ""


def _verify(fam: MnistFamily, path: Path) -> None:
    accepted = fam.checksums.get(path.name)
    if accepted is None:
        return  # uncompressed file: no published checksum; read_idx still validates structure
    if any(_digest(path, algo) == digest for algo, digest in accepted):
        return
    algo, digest = accepted[0]
    raise DataError(
        f"checksum mismatch for {path}: {algo} is {_digest(path, algo)}, but {fam.name}'s {path.name} "
        f"has {digest}{_identify(path)}. Either the folder holds another dataset's files (point "
        f"--data-dir / ADVREP_DATA_DIR at the {fam.name} files) or the file is damaged: delete it and "
        f"download again."
    )


def _load_array(fam: MnistFamily, path: Path) -> np.ndarray:
    _verify(fam, path)
    st = path.stat()
    return _read_idx_cached(str(path), st.st_mtime_ns, st.st_size)


def _download(fam: MnistFamily, split: str, data_dir: Path) -> None:
    target = data_dir / fam.name
    missing = [base + ".gz" for base in SPLIT_FILES[split] if _find_in(target, base) is None]
    for fname in missing:
        algo, digest = fam.checksums[fname][0]
        errors: list[str] = []
        for mirror in fam.mirrors:
            try:
                _dl.download_file(mirror + fname, target / fname, algorithm=algo, digest=digest)
                break
            except _dl.DownloadError as e:
                errors.append(str(e))
        else:
            still_missing = [f for f in missing if not (target / f).is_file()]
            urls = "\n".join(f"    {fam.mirrors[0]}{f}" for f in still_missing)
            raise DataError(
                f"{fam.name} ({split} split) is not on disk and could not be downloaded "
                f"({'; '.join(errors)}).\nIf this machine is offline, fetch these files elsewhere:\n{urls}\n"
                f"and put them in {target}/ . Or point --data-dir (data_dir=) or the ADVREP_DATA_DIR "
                f"environment variable at a folder that already holds them (directly or in a "
                f"{fam.name}/ sub-folder)."
            )


def _missing_message(fam: MnistFamily, split: str, data_dir: Path) -> str:
    names = " and ".join(f"{b}.gz (or {b})" for b in SPLIT_FILES[split])
    where = ", ".join(str(d) for d in _candidate_dirs(fam, data_dir))
    return (
        f"{fam.name} ({split} split) not found: looked for {names} in {where}. Put the files in "
        f"{data_dir / fam.name}/, point --data-dir (data_dir=) or ADVREP_DATA_DIR at a folder that holds "
        f"them, or allow downloading (download=True)."
    )


def load_mnist_family(name: str, split: str, data_dir: Path, download: bool = True) -> Dataset:
    """Load one split of mnist / fashion-mnist / kmnist as x [N, 1, 28, 28], y [N]."""
    fam = FAMILIES[name]
    found = find_files(fam, split, data_dir)
    if found is None:
        if not download:
            raise DataError(_missing_message(fam, split, data_dir))
        _download(fam, split, data_dir)
        found = find_files(fam, split, data_dir)
        if found is None:  # only if the folder changed under us while downloading
            raise DataError(_missing_message(fam, split, data_dir))
    img_path, lbl_path = found
    images = _load_array(fam, img_path)  # [N, 28, 28] uint8
    labels = _load_array(fam, lbl_path)  # [N] uint8

    fix = "Delete it and download again."
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{img_path} is not a {fam.name} image file: expected uint8 [N, 28, 28], got "
            f"{images.dtype} {list(images.shape)}. {fix}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{lbl_path} is not a {fam.name} label file: expected uint8 [N], got "
            f"{labels.dtype} {list(labels.shape)}. {fix}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{fam.name} {split} files disagree: {img_path} has {images.shape[0]} images but {lbl_path} "
            f"has {labels.shape[0]} labels. One of them is from another set or damaged: {fix.lower()}"
        )
    if labels.size and int(labels.max()) >= fam.num_classes:
        raise DataError(
            f"{lbl_path} holds label {int(labels.max())}, outside [0, {fam.num_classes - 1}] for "
            f"{fam.name}. The file is corrupt or not a {fam.name} label file. {fix}"
        )
    # np.divide allocates the float copy, so the cached uint8 array is never touched.
    x = torch.from_numpy(np.divide(images, 255, dtype=np.float32)).unsqueeze(1)  # [N, 1, 28, 28]
    y = torch.from_numpy(labels.astype(np.int64))  # [N]
    return Dataset(x, y, fam.name)
