"""``mosaicnet hardware-cost``: events, energy and latency of one inference of a trained run.

The counts come from the torch clone (spike-exact with Brian2, ideal weights) on
test samples; the per-event figures and their gaps are those of
:mod:`mosaicnet.layout.energy` (docs/mosaic.md, 'Energy and latency per inference').
"""

from __future__ import annotations

import argparse
import json

HELP_ORDER = 47


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``hardware-cost`` command."""
    from mosaicnet.cli.evaluate_commands import add_run_arguments

    parser = subparsers.add_parser(
        "hardware-cost",
        help="events, energy and latency per inference of a trained run (Mosaic and one crossbar)",
        description=(
            "Simulate test samples with the torch clone and count, per inference, the "
            "synaptic events (memristor reads), routing hops and neuron updates of the "
            "network on its layout and on one crossbar; price them with per-event figures "
            "(none found published for the Mosaic: the output names each gap; give your "
            "own with --figures)."
        ),
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--samples", type=int, default=20, help="test samples simulated (default 20)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample choice")
    parser.add_argument(
        "--figures",
        metavar="FILE",
        help="JSON object of per-event figures (energy_per_device_read_J, "
        "energy_per_routing_hop_J, energy_per_neuron_update_J, latency_per_routing_hop_s, "
        "sources) instead of the published ones",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_hardware_cost)


def simulated_counts(spec, x):
    """Per-inference input and recurrent spikes per neuron of ``spec`` on inputs ``x``."""
    import torch

    from mosaicnet.layout.energy import per_inference_counts
    from mosaicnet.network.spec import input_spikes
    from mosaicnet.network.torch_clone import TorchClone

    clone = TorchClone(spec, dtype=torch.float64)
    with torch.no_grad():
        z = clone.recurrent_spikes(clone.init_params(), torch.as_tensor(x))
    return per_inference_counts(input_spikes(x)), per_inference_counts(z)


def run_hardware_cost(args: argparse.Namespace) -> int:
    """Simulate, estimate, print (plain or JSON)."""
    from pathlib import Path

    from mosaicnet.errors import ConfigError
    from mosaicnet.layout.energy import MOSAIC_PUBLISHED, EventFigures, hardware_cost
    from mosaicnet.meta.run_data import data_for_run
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.protocols_support.recordings import split_inputs

    if args.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {args.samples}")
    figures = MOSAIC_PUBLISHED
    if args.figures:
        path = Path(args.figures)
        try:
            figures = EventFigures.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"--figures {path}: {error}") from error
    run = RunDirectory.open(args.run_dir)
    config = run.load_config()
    spec = run.load_spec()
    data = data_for_run(args.run_dir, args.data, allow_other=args.other_data)
    x, _, _ = split_inputs(data, config, args.samples, seed=args.seed)
    input_counts, recurrent_counts = simulated_counts(spec, x)
    summary = {
        "run": str(run.path),
        "samples": args.samples,
        "simulator": "torch clone (ideal weights)",
        "n_steps": int(x.shape[1]),
        "figures": figures.to_dict(),
        **hardware_cost(spec, input_counts, recurrent_counts, int(x.shape[1]), figures=figures),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(readable(summary))
    return 0


def _value(value, unit: str) -> str:
    return "n/a (no figure)" if value is None else f"{value:.4g} {unit}"


def readable(summary: dict) -> str:
    """The plain-text table of ``mosaicnet hardware-cost``."""
    rows = [
        ("input spikes", "input_spikes"),
        ("recurrent spikes", "recurrent_spikes"),
        ("synaptic events", "synaptic_events"),
        ("memristor reads", "device_reads"),
        ("routing hops", "routing_hops"),
        ("neuron updates", "neuron_updates"),
    ]
    placements = [summary["layout"], summary["one_crossbar"]]
    width = 40
    header = f"{'per inference':<20}" + "".join(
        f"{p['layout'][:width]:>{width + 2}}" for p in placements
    )
    lines = [
        f"Hardware cost of {summary['run']}: {summary['samples']} test samples, "
        f"{summary['simulator']}, {summary['n_steps']} steps",
        header,
    ]
    for label, key in rows:
        lines.append(
            f"{label:<20}" + "".join(f"{p['counts'][key]:>{width + 2}.6g}" for p in placements)
        )
    for term in ("device_reads", "routing_hops", "neuron_updates"):
        lines.append(
            f"{'energy, ' + term.replace('_', ' '):<20}"
            + "".join(f"{_value(p['energy_J'][term], 'J'):>{width + 2}}" for p in placements)
        )
    for label, key, unit in (
        ("energy, total", "energy_total_J", "J"),
        ("input duration", "input_duration_s", "s"),
        ("latency", "latency_s", "s"),
    ):
        lines.append(
            f"{label:<20}" + "".join(f"{_value(p[key], unit):>{width + 2}}" for p in placements)
        )
    missing = sorted({m for p in placements for m in p["missing"]})
    if missing:
        lines.append("Figures not known (terms left out): " + ", ".join(missing))
        lines.append("  " + placements[0]["sources"][missing[0]])
    return "\n".join(lines)
