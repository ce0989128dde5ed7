"""The ``neurogate`` command: ``neurogate train | export | simulate | datasets | models``.

Each subcommand is one ``add_<name>`` function that declares its options and one ``cmd_<name>``
function that runs it; adding ``export``, ``simulate`` or ``bench`` means adding such a pair to
:data:`COMMANDS`. An error from neurogate prints one line, without a traceback, and exits 2.

Example:
    $ neurogate train                                  # lif-convnet on event-digits
    $ neurogate train --model lif-mlp --epochs 2 --out runs/mlp
    $ neurogate train --out runs/mlp --resume          # continue an interrupted run
    $ torchrun --nproc_per_node=2 -m neurogate.cli train --batch-size 64
    $ neurogate export runs/mlp --target spinnaker --out exports/mlp   # descriptor + report.md
    $ neurogate simulate exports/mlp --samples 100                    # hardware vs float accuracy
    $ neurogate export runs/mlp --target crossbar --device rram --out exports/xbar
    $ neurogate simulate exports/xbar --seeds 5 --t-read 3600         # Monte Carlo over programmings
    $ neurogate datasets
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, NeurogateError

__all__ = ["COMMANDS", "build_parser", "main", "train_config_from_args"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except NeurogateError as err:
        print(f"neurogate {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neurogate {args.command}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="neurogate", description="Spiking neural networks: train, export to hardware, simulate, inspect data.")
    parser.add_argument("--version", action="version", version=f"neurogate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(run=run)
    return parser


# ----------------------------------------------------------------------------------- train
def add_train(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Options override --config FILE.yaml, whose keys are TrainConfig field names; "
                "with --resume the run's own config.yaml is the starting point.")
    a = p.add_argument
    a("--config", metavar="FILE.yaml", help="YAML file of TrainConfig fields")
    a("--model", help="registered model (neurogate models); default lif-convnet")
    a("--dataset", help="registered dataset (neurogate datasets); default event-digits")
    a("--epochs", type=int)
    a("--batch-size", type=int, help="global batch size (split across torchrun processes)")
    a("--lr", type=float, help="peak learning rate (Adam)")
    a("--time-steps", type=int, help="frames per sample T")
    a("--device", help="auto | cpu | cuda")
    a("--seed", type=int)
    a("--out", help="run directory (default runs/<model>-<dataset>-<timestamp>)")
    a("--resume", action="store_true", default=None, help="continue the run in --out")
    a("--root", help="dataset root (default datasets)")
    a("--runs-dir", help="parent of auto-named run directories (default runs)")
    a("--schedule", help="onecycle | cosine | constant")
    a("--weight-decay", type=float)
    a("--checkpoint-every", type=int, help="write last.pt every N batches too (0: epoch ends)")
    a("--eval-batch-size", type=int)
    a("--num-workers", type=int, help="DataLoader worker processes")
    a("--train-samples", type=int, help="use only the first N training samples")
    a("--test-samples", type=int, help="use only the first N test samples")
    a("--threads", type=int, help="CPU threads for torch and numba (default: theirs)")
    a("--model-opt", action="append", metavar="KEY=VALUE", dest="model_opt",
      help="model option, repeatable (e.g. --model-opt hidden=256 --model-opt channels=[8,16])")
    a("--hw-aware", metavar="crossbar:DEVICE",
      help="hardware-aware training: weights see the device's noise in training (e.g. crossbar:rram)")
    a("--hw-aware-noise", type=float, metavar="K",
      help="hardware-aware training at K times the device's programming and read noise (default 1)")
    a("--no-progress", action="store_false", dest="progress", default=None)
    a("--no-plots", action="store_false", dest="plots", default=None)


def train_config_from_args(args: argparse.Namespace):
    """The :class:`~neurogate.train.TrainConfig` of ``neurogate train``'s arguments.

    Precedence, lowest first: defaults; with ``--resume``, the run's ``config.yaml``; the
    ``--config`` file; the flags.
    """
    from .train import TrainConfig, config_from_dict, load_config

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if args.model_opt:
        flags["model_options"] = _model_options(args.model_opt)
    base = TrainConfig()
    if args.resume and args.out and (Path(args.out) / "config.yaml").is_file():
        saved = yaml.safe_load((Path(args.out) / "config.yaml").read_text()) or {}
        base = config_from_dict(saved, source=str(Path(args.out) / "config.yaml"))
    cfg = load_config(args.config, base)
    if "model_options" in flags:
        flags["model_options"] = {**cfg.model_options, **flags["model_options"]}
    return config_from_dict(flags, cfg, source="command line")


def cmd_train(args: argparse.Namespace) -> int:
    from .train import fit

    result = fit(config=train_config_from_args(args))
    if result.interrupted:
        return 128 + (result.signal or 2)
    if result.rank == 0:
        print(f"best test accuracy {result.best_acc:.4f}, final {result.final_acc:.4f}; "
              f"run in {result.run_dir}")
    return 0


def _model_options(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-opt expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


# ---------------------------------------------------------------------------------- export
def add_export(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Writes the target's files, report.md (resources, quantisation, delays, neuron "
                "parameters) and export.json (source checkpoint, model config, input encoding).")
    a = p.add_argument
    a("source", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (best.pt, else last.pt) or a .pt file")
    a("--target", choices=("nir", "spinnaker", "crossbar"), default="spinnaker")
    a("--machine", default="spinnaker1", type=str.lower, choices=("spinnaker1", "spinnaker2"),
      help="SpiNNaker machine preset (default spinnaker1)")
    a("--out", required=True, metavar="DIR", help="export directory")
    a("--dt", type=float, default=1e-3, help="seconds one model step stands for (default 1e-3)")
    a("--input-copies", default="auto", metavar="N|auto",
      help="input spikes per pixel and step (event counts up to N are exact); auto: the largest "
           "count in the run's test split")
    a("--root", help="dataset root (default: the run's)")
    x = p.add_argument_group("crossbar target")
    x.add_argument("--device", dest="xbar_device", default="rram", type=str.lower, choices=("rram", "pcm", "ideal"),
                   help="resistive device preset (default rram)")
    x.add_argument("--tile", type=int, default=256, help="tile rows = columns (default 256)")
    x.add_argument("--adc-bits", type=int, help="ADC bits on column currents (default: ideal)")
    x.add_argument("--dac-bits", type=int, help="DAC bits on row inputs (default: ideal)")
    x.add_argument("--wire-resistance", type=float, metavar="OHM",
                   help="wire resistance per cell segment, for IR drop (default: ideal wires)")
    x.add_argument("--reference-column", action="store_true",
                   help="one device per weight plus a reference column per tile (default: differential pairs)")


def cmd_export(args: argparse.Namespace) -> int:
    from .hw.report import export_run

    copies = args.input_copies if args.input_copies == "auto" else _positive_int(args.input_copies, "--input-copies")
    res = export_run(args.source, args.target, args.out, machine=args.machine, dt=args.dt,
                     input_copies=copies, root=args.root, device=args.xbar_device, tile=args.tile,
                     adc_bits=args.adc_bits, dac_bits=args.dac_bits, wire_resistance=args.wire_resistance,
                     differential=not args.reference_column)
    print(res.summary)
    print(f"exported to {res.out} in {res.seconds:.2f} s (full report: {res.out / 'report.md'})")
    return 0


def _positive_int(value: str, flag: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{flag} expects a positive integer or 'auto', got {value!r}")
    return n


# -------------------------------------------------------------------------------- simulate
def add_simulate(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("export_dir", metavar="DIR", help="a SpiNNaker or crossbar export (neurogate export --target ...)")
    a("--dataset", help="registered dataset (default: the one the model was trained on)")
    a("--split", default="test")
    a("--samples", type=int, help="only the first N samples")
    a("--root", help="dataset root (default: the run's)")
    a("--batch-size", type=int, default=64)
    a("--seeds", type=int, default=5, help="crossbar: programmings (Monte Carlo seeds 0..N-1; default 5)")
    a("--t-read", type=float, metavar="SECONDS", help="crossbar: read time after programming (drift; default none)")
    a("--drift-compensation", action="store_true", help="crossbar: global drift compensation")
    a("--noise-scale", type=float, default=1.0, metavar="K",
      help="crossbar: multiply the device's programming and read noise by K (default 1)")


def cmd_simulate(args: argparse.Namespace) -> int:
    from .hw.report import load_export, simulate_export

    if load_export(args.export_dir)[0].get("target") == "crossbar":
        return _simulate_crossbar(args)
    r = simulate_export(args.export_dir, args.dataset, args.split, args.samples, root=args.root,
                        batch_size=args.batch_size)
    print(f"{r['dataset']} {r['split']}: {r['samples']} samples, {r['input_copies']} input copies, "
          f"{r['seconds']:.1f} s")
    print(f"  hardware (fixed point) accuracy {r['hardware_acc']:.4f}")
    print(f"  float model accuracy            {r['float_acc']:.4f}")
    print(f"  same prediction                 {r['prediction_agreement']:.4f}")
    for pop, v in r["agreement"].items():
        print(f"  spike agreement {pop:<15} {v:.4f}")
    if r["clipped_events"] or r["saturations"]:
        print(f"  warning: {r['clipped_events']} input events above the input copies were clipped, "
              f"{r['saturations']} s16.15 saturations")
    return 0


def _simulate_crossbar(args: argparse.Namespace) -> int:
    from .hw.crossbar_export import simulate_crossbar

    r = simulate_crossbar(args.export_dir, args.dataset, args.split, args.samples, seeds=args.seeds,
                          t_read=args.t_read, drift_compensation=args.drift_compensation, root=args.root,
                          batch_size=args.batch_size, noise_scale=args.noise_scale)
    t_read = "no drift" if r["t_read"] is None else f"read {r['t_read']:g} s after programming"
    noise = "" if r["noise_scale"] == 1 else f" x{r['noise_scale']:g} noise"
    print(f"{r['dataset']} {r['split']}: {r['samples']} samples on {r['device']}{noise}, {r['seeds']} seeds, "
          f"{t_read}, {r['seconds']:.1f} s")
    print(f"  float model accuracy     {r['float_acc']:.4f}")
    print(f"  hardware accuracy        {r['hardware_acc_mean']:.4f} +- {r['hardware_acc_std']:.4f} "
          f"(seeds: {' '.join(f'{a:.4f}' for a in r['hardware_acc'])})")
    for name, e in r["layer_error"].items():
        print(f"  output error {name:<15} {e:.4f} (relative)")
    if r["clipped_events"] or r["dac_saturations"] or r["adc_saturations"]:
        print(f"  warning: {r['clipped_events']} input events clipped, {r['dac_saturations']} DAC and "
              f"{r['adc_saturations']} ADC saturations")
    return 0


# -------------------------------------------------------------------------------- datasets
def add_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default="datasets", help="dataset root (default datasets)")


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import list_datasets

    rows = list_datasets(args.root)
    width = max(len(r.name) for r in rows) if rows else 4
    print(f"{'name':<{width}}  {'state':<9}  {'splits':<12}  location")
    for r in rows:
        print(f"{r.name:<{width}}  {r.state:<9}  {','.join(r.splits) or '-':<12}  {r.location}")
    return 0


# ---------------------------------------------------------------------------------- models
def add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", help="only names containing this")


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    names = models.list_models(args.pattern)
    width = max(map(len, names)) if names else 4
    for name in names:
        print(f"{name:<{width}}  {models.get_spec(name).description}")
    return 0


#: name -> (add options, run, help). New subcommands (bench, ...) go here.
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int], str]] = {
    "train": (add_train, cmd_train, "train a spiking model (see neurogate.train.TrainConfig)"),
    "export": (add_export, cmd_export, "export a trained run to NIR, a SpiNNaker or a crossbar descriptor, with a report"),
    "simulate": (add_simulate, cmd_simulate, "run a SpiNNaker or crossbar export on a dataset against the float model"),
    "datasets": (add_datasets, cmd_datasets, "list the registered datasets and what is on disk"),
    "models": (add_models, cmd_models, "list the registered models"),
}


if __name__ == "__main__":
    sys.exit(main())
