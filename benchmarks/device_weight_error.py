"""Relative weight error of each device preset at 1 s, 1 h, 1 day and 1 month after programming.

A fixed random weight matrix (256 x 256, standard normal times 0.1, seed 0) is
programmed into differential pairs of each preset in ``mosaicnet.devices`` and
read back at each time; the script prints ``mean |w_read - w| / mean |w|`` as a
Markdown table, for plain reads and with global drift compensation. The
``ideal`` preset is the baseline run in the same script (0 % by construction).

Run: ``python benchmarks/device_weight_error.py [--seed N]``
"""

import argparse

from mosaicnet.devices import list_presets
from mosaicnet.devices.weight_error import format_weight_error_table, weight_error_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and noise")
    args = parser.parse_args()
    for compensated in (False, True):
        table = weight_error_table(list_presets(), seed=args.seed, drift_compensation=compensated)
        title = "global drift compensation" if compensated else "plain reads"
        print(f"Relative weight error, {title} (seed {args.seed}):\n")
        print(format_weight_error_table(table))
        print()


if __name__ == "__main__":
    main()
