"""``mosaicnet compare``: groups of trained runs compared over their training seeds.

:func:`mosaicnet.protocols_support.seed_comparison.compare_groups` meta-tests each
run on the torch clone (cached in the run) and gives each group's mean with a
95 % Student-t interval over seeds, and the differences to the first group
paired by seed; ``--figure`` draws every seed's run
(:func:`mosaicnet.protocols_support.figures.plot_seed_comparison`).
"""

from __future__ import annotations

import argparse
import json

HELP_ORDER = 47


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` command."""
    parser = subparsers.add_parser(
        "compare",
        help="compare groups of trained runs over their training seeds (mean, 95 %% CI, "
        "paired differences)",
        description=(
            "Meta-test every run of each group on the same tasks (torch clone; tasks over "
            "all classes and separate seen / unseen tasks) and print each group's mean "
            "accuracy with its 95 % Student-t interval over training seeds, and the "
            "differences to the first group paired by training seed. Example: mosaicnet "
            "compare --group mosaic runs/mosaic_s* --group fc runs/fc_s*"
        ),
    )
    parser.add_argument(
        "--group",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "RUN_DIR"),
        help="a group: its name, then its run directories (one per training seed); "
        "repeat for each group, the first is compared with the others",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="directory with shd_test.h5 (default: the data each run was trained on)",
    )
    parser.add_argument(
        "--other-data",
        action="store_true",
        help="allow --data to hold other files than the runs were trained on",
    )
    parser.add_argument(
        "--tasks", type=int, default=200, help="meta-test tasks per protocol (default 200)"
    )
    parser.add_argument(
        "--inner-steps",
        type=int,
        help="inner steps at meta-test (default: each run's test_inner_steps, else as trained)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the meta-test tasks (default 0)"
    )
    parser.add_argument(
        "--figure", metavar="PATH", help="write the per-seed figure (e.g. compare.png)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_compare)


def parse_groups(entries: list[list[str]]) -> dict[str, list[str]]:
    """``[[NAME, RUN, ...], ...]`` from the command line -> name -> run directories.

    Raises
    ------
    ConfigError
        A group without run directories, or two groups with one name.
    """
    from mosaicnet.errors import ConfigError

    groups: dict[str, list[str]] = {}
    for name, *runs in entries:
        if not runs:
            raise ConfigError(
                f"--group {name} names no run directory; write --group NAME RUN_DIR [RUN_DIR ...]"
            )
        if name in groups:
            raise ConfigError(f"two groups are named {name!r}; give each --group its own name")
        groups[name] = runs
    return groups


def run_compare(args: argparse.Namespace) -> int:
    """Compare the groups and print the table (or JSON); write the figure if asked."""
    from mosaicnet.protocols_support.seed_comparison import compare_groups, markdown_report

    groups = parse_groups(args.group)
    if args.figure:
        from mosaicnet.network.figures import check_figure_path

        check_figure_path(args.figure)  # before the evaluations
    comparison = compare_groups(
        groups, data=args.data, tasks=args.tasks, inner_steps=args.inner_steps, seed=args.seed,
        allow_other_data=args.other_data, progress=not (args.quiet or args.json),
    )  # fmt: skip
    if args.figure:
        from mosaicnet.protocols_support.figures import plot_seed_comparison

        names = " vs ".join(comparison["groups"])
        comparison["figure"] = str(
            plot_seed_comparison(
                args.figure, comparison, title=f"{names}: accuracy over training seeds"
            )
        )
    if args.json:
        print(json.dumps(comparison, allow_nan=True))
    else:
        print(markdown_report(comparison), end="")
        if "figure" in comparison:
            print(f"Figure written: {comparison['figure']}")
    return 0
