"""Fetching dataset files over HTTP(S), safely.

* :func:`open_url` is the only function that touches the network.  It is a module-level
  function on purpose: tests replace it with ``monkeypatch.setattr(download, "open_url", ...)``
  so the test suite never goes online.
* Bytes stream into a temporary file in the destination folder; the checksum is checked
  before an atomic ``os.replace`` puts the file in place.  A failed, interrupted or
  mis-checksummed download therefore never leaves a file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from .errors import DataError

DEFAULT_TIMEOUT = 20.0  # seconds; an offline machine should fail fast, not hang
_CHUNK = 1 << 20

# Everything that means "the network did not deliver the file" (as opposed to, say, a full
# disk, which must surface as itself).  URLError covers DNS failure, refused connections and
# HTTP errors (HTTPError is a subclass).
NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    TimeoutError,
    ConnectionError,
    ssl.SSLError,
)


class DownloadError(DataError):
    """The file could not be fetched (offline, timeout, HTTP error)."""


def open_url(url: str, timeout: float) -> IO[bytes]:
    """Open ``url`` for reading; the single network entry point (monkeypatched in tests)."""
    return urllib.request.urlopen(url, timeout=timeout)


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file; ``algorithm`` is a hashlib name such as "sha256" or "md5"."""
    # usedforsecurity=False: md5 here is an integrity check, and FIPS builds refuse it otherwise.
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return f"{type(e).__name__}: {e}"


def download_file(
    url: str, dest: str | os.PathLike, *, algorithm: str, digest: str, timeout: float = DEFAULT_TIMEOUT
) -> Path:
    """Download ``url`` to ``dest`` if and only if its ``algorithm`` digest equals ``digest``.

    Raises :class:`DownloadError` when the network fails and :class:`DataError` on a checksum
    mismatch; in both cases nothing is left at ``dest`` or in its folder.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Same folder as dest so os.replace is a same-filesystem (atomic) rename.
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(
            f"cannot download into {dest.parent}: {e}. Choose a writable folder with --data-dir "
            f"(data_dir=) or the ADVREP_DATA_DIR environment variable."
        ) from None
    h = hashlib.new(algorithm, usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with open_url(url, timeout) as resp:
                    while chunk := resp.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
            except NETWORK_ERRORS as e:
                raise DownloadError(f"could not download {url}: {_reason(e)}") from None
        got = h.hexdigest()
        if got != digest.lower():
            raise DataError(
                f"downloaded {url} but its {algorithm} checksum is {got}, expected {digest}; the file was "
                f"not saved. The mirror may be serving a damaged or different file: try again later, or "
                f"download it by hand into {dest.parent}."
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest
