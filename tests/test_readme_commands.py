"""The README's two commands stay true: CI runs the README's test command itself."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_command(heading: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(heading)
    block = re.search(r"```bash\n(.+?)\n```", text[start:], flags=re.S)
    assert block, f"no bash block after {heading!r} in README.md"
    return block.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    command = _readme_command("**2. Install and run the tests**")
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in [line.strip() for line in ci_lines]


def test_readme_commands_do_not_pin_a_torch_release():
    # Pinning is CI's business (.ci/constraints.txt); a user's own torch must survive.
    for heading in ("**1. Install and run the main job", "**2. Install and run the tests**"):
        assert "torch==" not in _readme_command(heading)
    constraints = (ROOT / ".ci" / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==", constraints, flags=re.M)
    assert 'PIP_CONSTRAINT="$PWD/.ci/constraints.txt"' in (ROOT / ".ci" / "run").read_text()
