"""One entry point, :func:`load_dataset`, for built-in sets, array files and image folders.

Name resolution, in order:

1. an explicit prefix ``npz:PATH``, ``npy:PATH`` or ``folder:PATH``;
2. a built-in name from :data:`DATASETS` (case-insensitive, ``_`` accepted for ``-``),
   so a local folder called ``mnist`` needs ``folder:mnist``;
3. an existing path: a folder -> image folder, ``*.npy`` / ``*.npz`` -> array file.

Splits are "train" and "test".  Built-in sets have both.  For array files and folders "train"
means everything unless the file/folder provides a test split (``x_test`` keys in an npz, a
``test/`` sub-folder beside ``train/``); asking for a test split that is not there is an error.
See :mod:`advrep.data.arrays` and :mod:`advrep.data.folder` for the exact rules.
"""

from __future__ import annotations

import os
from pathlib import Path

from .arrays import load_array_file
from .cifar import load_cifar10
from .dataset import Dataset
from .digits import load_digits_dataset
from .errors import DataError
from .folder import load_folder
from .mnist import FAMILIES, load_mnist_family
from .padded import PADDED, load_padded

# Built-in sets read from data_dir (or downloaded) besides the MNIST family: name -> loader.
IMAGE_SETS = {"cifar10": load_cifar10,
              **{name: (lambda split, d, dl, name=name: load_padded(name, split, d, dl)) for name in PADDED}}
DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "kmnist", "digits", *IMAGE_SETS)
SPLITS: tuple[str, ...] = ("train", "test")
ENV_VAR = "ADVREP_DATA_DIR"
_PREFIXES = ("npz", "npy", "folder")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where built-in datasets live: ``data_dir``, else $ADVREP_DATA_DIR, else the user cache.

    The cache is ``$XDG_CACHE_HOME/advrep`` (only an absolute XDG_CACHE_HOME counts, per the
    XDG spec) or ``~/.cache/advrep``.  The folder is not created here; downloads create it.
    """
    if data_dir is not None and os.fspath(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "advrep"


def _unknown(name: str) -> DataError:
    return DataError(
        f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}, a path to a .npy/.npz file or "
        f"an image folder, or an explicit npz:PATH / npy:PATH / folder:PATH."
    )


def _parse_name(name: str | os.PathLike) -> tuple[str, str | Path]:
    """(kind, target): kind is "builtin" (target = canonical name), "npz", "npy" or "folder"."""
    text = os.fspath(name)
    if not isinstance(text, str):
        raise TypeError(f"dataset name must be a str or path, got {type(name).__name__}")
    prefix, sep, rest = text.partition(":")
    if sep and prefix.lower() in _PREFIXES:
        if not rest:
            raise DataError(f"{text!r}: missing path after '{prefix}:'.")
        return prefix.lower(), Path(rest).expanduser()
    key = text.strip().lower().replace("_", "-")
    if key in DATASETS and not isinstance(name, os.PathLike):
        return "builtin", key
    path = Path(text).expanduser()
    if path.is_dir():
        return "folder", path
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("npy", "npz"):
        if not path.is_file():
            raise DataError(f"array file {path} does not exist.")
        return suffix, path
    if path.is_file():
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; use .npy, .npz or a folder of images."
        )
    raise _unknown(text)


def load_dataset(
    name: str | os.PathLike,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    size: int | tuple[int, int] | None = None,
) -> Dataset:
    """Load ``split`` of a built-in set, an array file or an image folder (module docstring).

    ``data_dir`` / ``download`` apply to built-in MNIST-family sets; ``size`` (int or (H, W))
    only to image folders.  Every problem raises :class:`DataError` (a ``ValueError``).

    Example::

        load_dataset("digits", "test").x.shape                            # (360, 1, 8, 8)
        load_dataset("mnist", "train", data_dir="../shared/data").x.shape  # (60000, 1, 28, 28)
        load_dataset("my_images.npz", "train")    # arrays x_train / y_train (see advrep.data.arrays)
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'.")
    kind, target = _parse_name(name)
    if size is not None and kind != "folder":
        raise DataError(f"size= only applies to image folders, not to {os.fspath(name)!r}.")
    if kind == "builtin":
        if target == "digits":
            return load_digits_dataset(split)
        if target in IMAGE_SETS:
            return IMAGE_SETS[target](split, resolve_data_dir(data_dir), download)
        assert isinstance(target, str) and target in FAMILIES
        return load_mnist_family(target, split, resolve_data_dir(data_dir), download)
    if kind == "folder":
        return load_folder(target, split, size=size)
    return load_array_file(target, split, kind=kind)


def load_run_dataset(cfg, split: str, *, data: str | os.PathLike | None = None,
                     data_dir: str | os.PathLike | None = None, run: str | os.PathLike | None = None,
                     download: bool = True) -> Dataset:
    """``split`` of the images a trained run is evaluated, sampled or inverted against.

    ``data`` (a command's --data) when given, else the dataset the run was trained on (``cfg.data``); built-in
    sets come from ``data_dir``, else the run's own ``cfg.data_dir``; image folders are resized as in training
    (``cfg.image_size``); ``download`` is ``load_dataset``'s. The images must have the run's shape
    (``cfg.image_shape``). When the run's own dataset cannot be loaded (a relative path used from another
    directory, a set on another machine), the error says that the name came from the run's config and how
    to give another.

    Example::

        cfg = load_model("runs/bigan").cfg
        test = load_run_dataset(cfg, "test", data_dir="../shared/data")       # the run's MNIST
    """
    name = cfg.data if data is None else data
    size = cfg.image_size or None  # image folders are resized as in training; other kinds take no size
    if data is not None and _parse_name(data)[0] != "folder":
        size = None
    try:
        found = load_dataset(name, split, data_dir=data_dir or cfg.data_dir, size=size, download=download)
    except DataError as exc:
        if data is not None:
            raise
        owner = f"run {os.fspath(run)}" if run is not None else "the run"
        raise DataError(f"{exc} ({name!r} is the dataset {owner} was trained on, named in its config; pass "
                        "--data with where it is now, or --data-dir for a built-in set.)") from None
    shape = tuple(cfg.image_shape or ())
    if shape and tuple(found.image_shape) != shape:
        raise DataError(f"dataset {os.fspath(name)!r} has images of shape {tuple(found.image_shape)} but "
                        f"the {cfg.method!r} run was trained on {shape}; pass --data with images of "
                        "that shape.")
    return found
