"""The ``mosaicnet`` command line.

Each command group lives in its own module named ``*_commands.py`` in this
package and exposes ``register(subparsers)``, which adds its sub-command(s) and
sets ``func`` on the parsed namespace; modules are discovered, so adding a
command never edits this file. An optional module constant ``HELP_ORDER``
(int, default 100) orders the help listing. Errors
derived from :class:`mosaicnet.errors.MosaicnetError` are printed as one line
and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Sequence

from mosaicnet import __version__
from mosaicnet.errors import MosaicnetError


def _command_modules() -> list:
    """Import every ``*_commands`` module of this package, in help order."""
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if info.name.endswith("_commands")
    ]
    return sorted(modules, key=lambda m: (getattr(m, "HELP_ORDER", 100), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="mosaicnet",
        description="Hardware-aware few-shot learning with spiking networks on the Mosaic.",
    )
    parser.add_argument("--version", action="version", version=f"mosaicnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


#: Options whose value may start with a minus sign followed by a digit (``-1s``).
_DURATION_OPTIONS = ("--read-time", "--times")


def _join_negative_durations(argv: Sequence[str]) -> list[str]:
    """``--read-time -1s`` -> ``--read-time=-1s``.

    argparse takes ``-1s`` for an unknown flag and reports a missing value; joined,
    the value reaches the read-time parser, which says what is wrong with it.
    """
    tokens = list(argv)
    # From the end, so that a joined pair is never looked at again.
    for k in range(len(tokens) - 2, -1, -1):
        if tokens[k] in _DURATION_OPTIONS and re.match(r"-[\d.]", tokens[k + 1]):
            tokens[k : k + 2] = [f"{tokens[k]}={tokens[k + 1]}"]
    return tokens


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(_join_negative_durations(sys.argv[1:] if argv is None else argv))
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except MosaicnetError as error:
        print(f"mosaicnet {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover - exercised through the entry point
    sys.exit(main())
