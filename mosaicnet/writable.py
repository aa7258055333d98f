"""Check, before any work starts, that an output folder can be written.

A training, a protocol or a report that runs for minutes must not end in a
traceback because its output lies below a plain file, on a read-only or
pseudo file system (``/proc``) or in a folder without write permission.
:func:`check_writable_dir` writes and removes a scratch file in the nearest
existing folder of the path, which is what will be written into.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mosaicnet.errors import RunDirectoryError


def check_writable_dir(path: str | os.PathLike, *, what: str = "output folder") -> Path:
    """Return ``path`` if a folder there can be created and written; raise otherwise.

    Raises
    ------
    RunDirectoryError
        ``path`` is a file, lies below a file, or nothing can be written where it
        would be created (the message names the folder and the reason).
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise RunDirectoryError(f"{what} {target} exists and is not a folder; choose another")
    folder = target
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise RunDirectoryError(
            f"{what} {target} cannot be created: {folder} is a file, not a folder"
        )
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise RunDirectoryError(
            f"{what} {target} cannot be written: nothing can be written in {folder} "
            f"({error.strerror}); choose another place"
        ) from None
    return target
