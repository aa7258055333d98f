"""One training at a time per run directory: an advisory lock held while training.

Two processes training into the same directory would interleave checkpoints,
metrics and specs and both report success. :func:`run_lock` takes an
exclusive ``flock`` on ``<run>/.lock`` for as long as a training runs; a second
training is refused with the holder's process id. The operating system drops
the lock when the holder exits for any reason (SIGKILL included), so a killed
run can be resumed at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from mosaicnet.errors import RunDirectoryError

#: The lock file inside a run directory.
LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the training lock of run directory ``path`` (created if missing).

    Raises
    ------
    RunDirectoryError
        ``path`` is a file, or another process holds the lock (the message
        names it).
    """
    from mosaicnet.writable import check_writable_dir

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"{path} exists and is not a directory; choose another")
    check_writable_dir(path, what="run directory")
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock_path = path / LOCK_FILE
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 (held across the yield)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunDirectoryError(
                f"run directory {path} is in use: {holder} is training into it; wait for "
                "it to finish (or stop it), or train into another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"process {os.getpid()} on {socket.gethostname()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        )
        handle.flush()
        try:
            yield path
        finally:
            # A directory made only for a training that failed before writing
            # anything is removed again; otherwise the (unlocked) file stays.
            if created and {p.name for p in path.iterdir()} == {LOCK_FILE}:
                lock_path.unlink()
                path.rmdir()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
