"""``mosaicnet data ...``: write the synthetic default, inspect a file, download SHD.

Heavy imports (numpy, tables, torch) happen inside the command functions so that
``mosaicnet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP_ORDER = 10


def _name_the_flag(error: Exception, argument: str, flag: str) -> None:
    """Re-raise a library error that names a Python argument with the flag added."""
    if argument in str(error):
        raise type(error)(f"{error} (on the command line: {flag})") from error
    raise error


def _synth(args: argparse.Namespace) -> int:
    from mosaicnet.data.synthetic import write_synthetic_shd
    from mosaicnet.writable import check_writable_dir

    check_writable_dir(args.out_dir, what="data folder")

    from mosaicnet.errors import RunDirectoryError

    try:
        train, test = write_synthetic_shd(
            args.out_dir,
            seed=args.seed,
            n_train=args.n_train,
            n_test=args.n_test,
            overwrite=args.force,
            progress=not args.quiet,
        )
    except RunDirectoryError as error:
        _name_the_flag(error, "overwrite=True", "--force")
    print(f"wrote {train}")
    print(f"wrote {test}")
    return 0


def _format_stats(stats: dict[str, float], unit: str = "", digits: int = 0) -> str:
    fmt = f"{{:.{digits}f}}{unit}"
    return "  ".join(f"{k} {fmt.format(v)}" for k, v in stats.items())


def _inspect(args: argparse.Namespace) -> int:
    from mosaicnet.data.inspect import inspect_shd
    from mosaicnet.errors import DataFormatError

    try:
        info = inspect_shd(args.file, n_channels=args.channels, window_s=args.window_s)
    except DataFormatError as error:
        _name_the_flag(error, "n_channels argument", "--channels")
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    names = ", ".join(f"{k}={v}" for k, v in info["label_names"].items())
    lines = [
        f"file        {info['path']}",
        f"samples     {info['samples']}",
        f"classes     {info['classes']}: {names}",
        "per class   " + " ".join(f"{v}" for v in info["samples_per_class"].values()),
        f"speakers    {info['speakers']}: "
        + ", ".join(f"{k} ({v})" for k, v in info["samples_per_speaker"].items()),
        f"channels    {info['channels']}",
        f"spikes      total {info['total_spikes']}  per sample "
        + _format_stats(info["spike_count"], digits=0),
        "duration    " + _format_stats(info["duration_s"], unit=" s", digits=3),
        f"empty       {info['empty_samples']} samples without spikes",
        f"beyond      {info['spikes_beyond_window']} spikes in "
        f"{info['samples_beyond_window']} samples at t >= {info['window_s']} s "
        "(dropped by binning)",
    ]
    print("\n".join(lines))
    return 0


def _download(args: argparse.Namespace) -> int:
    from mosaicnet.data.download import download_shd

    kwargs = {"progress": not args.quiet, "timeout_s": args.timeout_s}
    if args.base_url is not None:
        kwargs["base_url"] = args.base_url
    paths = download_shd(Path(args.to), **kwargs)
    for path in paths:
        print(f"ready {path}")
    return 0


def _help_of(parser: argparse.ArgumentParser):
    """A command function that prints ``parser``'s help and fails (no sub-command given)."""

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show_help


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data synth``, ``data inspect`` and ``data download shd``."""
    data = subparsers.add_parser(
        "data", help="spike datasets: synthetic default, inspection, SHD download"
    )
    data.set_defaults(func=_help_of(data))
    commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    synth = commands.add_parser(
        "synth",
        help="write the synthetic SHD-layout default (shd_train.h5, shd_test.h5)",
        description="Write synthetic spoken-digit spike data in the exact SHD HDF5 layout. "
        "Existing files are never overwritten without --force.",
    )
    synth.add_argument("out_dir", metavar="OUT_DIR", help="directory to write the two files to")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--n-train", type=int, default=1200, help="training samples (default 1200)")
    synth.add_argument("--n-test", type=int, default=400, help="test samples (default 400)")
    synth.add_argument("--force", action="store_true", help="overwrite existing files")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_synth)

    inspect = commands.add_parser(
        "inspect",
        help="print statistics of an SHD-layout file",
        description="Read an SHD-layout HDF5 file, validate it and print its statistics.",
    )
    inspect.add_argument("file", metavar="FILE", help="shd_train.h5, shd_test.h5 or alike")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument(
        "--channels",
        type=int,
        default=700,
        help="input channels of the recording; spike units must lie below it (default 700, SHD)",
    )
    inspect.add_argument(
        "--window-s",
        type=float,
        default=1.4,
        help="binning window in seconds; later spikes are counted as dropped (default 1.4)",
    )
    inspect.set_defaults(func=_inspect)

    download = commands.add_parser(
        "download",
        help="download a dataset with checksum verification",
        description="Download a public dataset and verify its checksums.",
    )
    which = download.add_subparsers(dest="dataset", metavar="DATASET")
    shd = which.add_parser(
        "shd",
        help="Spiking Heidelberg Digits (shd_train.h5, shd_test.h5)",
        description="Download and decompress SHD (Cramer et al. 2022), verifying md5 sums. "
        "Files already in DIR (the .h5.gz archives or the .h5 files, e.g. fetched by hand) "
        "are verified without the network; one that does not match is renamed *.mismatch. "
        "An interrupted transfer is not resumed: the next run fetches that archive again.",
    )
    shd.add_argument("--to", required=True, metavar="DIR", help="destination directory")
    shd.add_argument("--base-url", default=None, metavar="URL", help="mirror to use")
    shd.add_argument(
        "--timeout-s", type=float, default=30.0, help="network timeout in seconds (default 30)"
    )
    shd.add_argument("--quiet", action="store_true", help="no progress bar")
    shd.set_defaults(func=_download)
    download.set_defaults(func=_help_of(download))
