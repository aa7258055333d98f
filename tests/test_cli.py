"""The ``mosaicnet`` command line: entry point, help and error reporting."""

import subprocess
import sys

from mosaicnet.cli import build_parser, main


def test_help_lists_registered_commands(capsys):
    parser = build_parser()
    help_text = parser.format_help()
    assert "mosaicnet" in help_text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_module_entry_point_reports_version():
    out = subprocess.run(
        [sys.executable, "-m", "mosaicnet", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("mosaicnet ")
