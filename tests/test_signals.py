"""A process started with SIGINT ignored keeps ignoring it (Brian2 would replace it)."""

from __future__ import annotations

import signal
import subprocess
import sys

CODE = """
import os, signal
import mosaicnet.network.brian_network  # imports brian2
os.kill(os.getpid(), signal.SIGINT)
print("still running")
"""


def test_sigint_ignored_by_the_parent_stays_ignored():
    result = subprocess.run(
        [sys.executable, "-c", CODE],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "still running" in result.stdout and "TypeError" not in result.stderr
