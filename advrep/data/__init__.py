"""Datasets for advrep: built-in MNIST-family and digits sets, NumPy arrays and image folders.

Everything is returned as a :class:`Dataset` holding float32 images in [0, 1] of shape
``[N, C, H, W]`` (``Dataset.flat()`` gives the ``[N, C*H*W]`` view) and optional int64 labels.
Every data problem raises :class:`DataError` (a ``ValueError``) whose message names the file,
the offending value and the fix.
"""

from .arrays import images_from_array, labels_from_array, load_array_file
from .dataset import Dataset
from .digits import load_digits_dataset
from .errors import DataError
from .folder import load_folder
from .idx import read_idx, write_idx
from .load import DATASETS, ENV_VAR, SPLITS, load_dataset, load_run_dataset, resolve_data_dir
from .mnist import load_mnist_family

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "SPLITS",
    "DataError",
    "Dataset",
    "images_from_array",
    "labels_from_array",
    "load_array_file",
    "load_dataset",
    "load_digits_dataset",
    "load_folder",
    "load_mnist_family",
    "load_run_dataset",
    "read_idx",
    "resolve_data_dir",
    "write_idx",
]
