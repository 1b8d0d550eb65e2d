"""The single exception type for every data problem in :mod:`advrep.data`.

It subclasses ``ValueError`` so callers that already guard with ``except ValueError`` keep
working, while the CLI can catch exactly the data problems and print the message (which always
names the file, the offending value and the fix) without a traceback.
"""

from __future__ import annotations


class DataError(ValueError):
    """A dataset file is missing, corrupt, of the wrong kind, or holds unusable values."""
