"""``mosaicnet devices``: list the device presets; report their weight error over time."""

from __future__ import annotations

import argparse

HELP_ORDER = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``devices list`` and ``devices report``."""
    parser = subparsers.add_parser(
        "devices",
        help="memristor device presets: list them, report weight error vs time",
        description="Memristor device models (conductance pairs, programming noise, drift).",
    )
    actions = parser.add_subparsers(dest="devices_command", metavar="ACTION")
    listing = actions.add_parser("list", help="list the device presets and their parameters")
    listing.add_argument(
        "--parameters", action="store_true", help="also print every parameter (SI units)"
    )
    listing.set_defaults(func=_list)

    report = actions.add_parser(
        "report",
        help="weight error at 1 s, 1 h, 1 day, 1 month after programming, and figures",
        description=(
            "Program a fixed random 256x256 weight matrix (normal * 0.1, seeded) into each "
            "preset, read it back at 1 s, 1 h, 1 day and 1 month, and write the relative "
            "weight error table (Markdown) and figures into OUT."
        ),
    )
    report.add_argument("--out", required=True, help="output directory (created if missing)")
    report.add_argument("--presets", default=None, help="comma-separated presets (default: all)")
    report.add_argument("--seed", type=int, default=0, help="seed of weights and noise (0)")
    report.add_argument("--no-figures", action="store_true", help="write the table only (faster)")
    report.set_defaults(func=_report)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _list(args: argparse.Namespace) -> int:
    from mosaicnet.devices import get_device_model, list_presets

    for name in list_presets():
        model = get_device_model(name)
        print(model.describe())
        if args.parameters:
            for key, value in model.parameters().items():
                print(f"    {key} = {value!r}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mosaicnet.devices import get_device_model, list_presets
    from mosaicnet.devices.figures import (
        plot_conductance_distributions,
        plot_weight_error_vs_time,
    )
    from mosaicnet.devices.weight_error import format_weight_error_table, weight_error_table
    from mosaicnet.errors import RunDirectoryError

    names = (
        list_presets()
        if args.presets is None
        else [name.strip() for name in args.presets.split(",") if name.strip()]
    )
    if not names:
        from mosaicnet.errors import ConfigError

        raise ConfigError(
            f"--presets {args.presets!r} names no preset; give some of "
            f"{', '.join(list_presets())} (comma-separated), or omit --presets for all"
        )
    models = [get_device_model(name) for name in names]  # unknown names fail here, listed
    from mosaicnet.writable import check_writable_dir

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out} exists and is not a directory; choose another path")
    check_writable_dir(out, what="report folder")
    out.mkdir(parents=True, exist_ok=True)

    sections = []
    for compensated in (False, True):
        table = weight_error_table(
            models, seed=args.seed, drift_compensation=compensated, progress=True
        )
        title = "with global drift compensation" if compensated else "plain reads"
        sections.append(f"### Relative weight error, {title}\n\n{format_weight_error_table(table)}")
    text = (
        "Relative weight error mean|w_read - w| / mean|w| of a 256x256 normal*0.1 matrix "
        f"(seed {args.seed}).\n\n" + "\n\n".join(sections) + "\n"
    )
    (out / "weight_error.md").write_text(text, encoding="utf-8")
    print(text)
    if not args.no_figures:
        written = [
            plot_weight_error_vs_time(
                models, out / "weight_error_vs_time.png", seed=args.seed, progress=True
            )
        ]
        for model in models:
            written.append(
                plot_conductance_distributions(
                    model, out / f"conductances_{model.name}.png", seed=args.seed
                )
            )
        for path in written:
            print(f"wrote {path}")
    print(f"wrote {out / 'weight_error.md'}")
    return 0
