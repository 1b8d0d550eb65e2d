"""Reader and writer for the IDX format of MNIST, Fashion-MNIST and KMNIST.

Layout (every integer big-endian)::

    bytes 0-1   zero
    byte  2     element type code (see IDX_DTYPES)
    byte  3     number of dimensions d
    4*d bytes   size of each dimension (uint32)
    the rest    the elements in C order

Files may be gzip-compressed.  We decide by content (gzip magic ``1f 8b``) rather than by the
file name, because an IDX file always starts with two zero bytes, so the two can never be
confused, and a mis-named file still loads.

Every problem is reported as :class:`DataError` naming the file, the bad value and the fix;
a damaged gzip stream in particular never escapes as a bare ``zlib.error`` / ``EOFError``.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# type code -> big-endian element dtype.  MNIST-family files use only 0x08.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FIX = "Delete it and download again."


def _supported() -> str:
    return ", ".join(f"0x{c:02X} ({dt.newbyteorder('=').name})" for c, dt in IDX_DTYPES.items())


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a raw or gzip-compressed IDX file into a native-endian, writable array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file {path} does not exist.") from None
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if raw.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            # BadGzipFile (bad CRC / length, garbage), EOFError (stream cut short) and
            # zlib.error (damaged deflate data) all mean the same thing to the user.
            raise DataError(f"IDX file {path} is a corrupt or truncated gzip file ({e}). {_FIX}") from None
        return parse_idx(data, str(path), decompressed=True)
    return parse_idx(raw, str(path))


def parse_idx(data: bytes, source: str = "<bytes>", *, decompressed: bool = False) -> np.ndarray:
    """Decode IDX bytes (already decompressed).  ``source`` names the file in error messages."""
    after = " after decompression" if decompressed else ""
    if len(data) < 4:
        raise DataError(
            f"IDX file {source} is truncated: expected at least a 4-byte header, "
            f"got {len(data)} bytes{after}. {_FIX}"
        )
    if data[0] != 0 or data[1] != 0:
        magic = int.from_bytes(data[:4], "big")
        hint = " (its name ends in .gz but it is not gzip-compressed)" if source.endswith(".gz") else ""
        raise DataError(
            f"IDX file {source} has a bad magic number 0x{magic:08X}{hint}: an IDX file starts with two "
            f"zero bytes (e.g. 0x00000803 for images, 0x00000801 for labels). It is corrupt or not an "
            f"IDX file. {_FIX}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataError(
            f"IDX file {source} has unsupported element type code 0x{code:02X} "
            f"(supported: {_supported()}). It is corrupt or not an IDX file. {_FIX}"
        )
    if ndim == 0:
        raise DataError(f"IDX file {source} declares 0 dimensions; it is corrupt. {_FIX}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"IDX file {source} is truncated: expected at least {header} header bytes for {ndim} "
            f"dimensions, got {len(data)} bytes{after}. {_FIX}"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    count = math.prod(dims)
    expected = header + count * dtype.itemsize
    if len(data) < expected:
        raise DataError(
            f"IDX file {source} is truncated: expected {expected} bytes, got {len(data)}{after}. {_FIX}"
        )
    if len(data) > expected:
        raise DataError(
            f"IDX file {source} is too long: its header declares shape {dims} ({expected} bytes) but it "
            f"has {len(data)} bytes{after}. It is corrupt. {_FIX}"
        )
    native = dtype.newbyteorder("=")
    if count == 0:
        return np.zeros(dims, dtype=native)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    # astype copies: the result is native-endian and writable (frombuffer over bytes is read-only).
    return arr.astype(native)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends in ``.gz``."""
    path = Path(path)
    arr = np.asarray(array)
    code = next(
        (c for c, dt in IDX_DTYPES.items() if dt.newbyteorder("=") == arr.dtype.newbyteorder("=")), None
    )
    if code is None:
        raise DataError(f"cannot write dtype {arr.dtype} to IDX file {path}; supported: {_supported()}")
    if not 1 <= arr.ndim <= 255 or any(d >= 2**32 for d in arr.shape):
        raise DataError(f"cannot write shape {arr.shape} to IDX file {path}: need 1-255 dims, each < 2**32")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    payload = header + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)  # mtime=0: byte-identical output for equal input
    path.write_bytes(payload)
    return path
