"""Export a trained run to NIR, SpiNNaker or a resistive crossbar, a readable report of what was
exported, and a run of the exported network on a dataset against the float model
(``neurogate export | simulate``).

An export directory holds the target's own files (``model.nir``, or the SpiNNaker descriptor's
``descriptor.json`` + ``arrays.npz``; the crossbar descriptor, see
:mod:`neurogate.hw.crossbar_export`), ``report.md`` and ``export.json``: the source checkpoint's
path, the model config, the dataset the model was trained on and the input encoding, so that
:func:`simulate_export` can rebuild the float model and its test data.

**Input encoding.** Event frames hold event *counts* per pixel and step (event-digits: up to 5),
while a machine input is a 0/1 spike. With ``input_copies = M`` the input population has ``M``
copies of every pixel, copy ``m`` (1-based) spiking when ``count >= m``, and the first layer's
weights are repeated for each copy, so the layer receives ``W min(count, M)``: exactly the float
model's input when ``M`` >= the largest count (``"auto"`` measures it on the training data's test
split). Counts above ``M`` are clipped and counted in the simulation result, never silently.

Example:
    >>> res = export_run("runs/lif-convnet", "spinnaker", "out/spinn")      # doctest: +SKIP
    >>> print(res.summary)                                                 # doctest: +SKIP
    >>> sim = simulate_export("out/spinn", samples=100)                     # doctest: +SKIP
    >>> sim["hardware_acc"], sim["float_acc"], sim["agreement"]             # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, NeurogateError

__all__ = ["EXPORT_FILE", "ExportResult", "export_run", "input_spikes", "load_export", "nir_report",
           "simulate_export", "spinnaker_report", "with_input_copies"]

EXPORT_FILE = "export.json"
MAX_AUTO_COPIES = 16
PYNN_UNITS = {"v_rest": "mV", "v_reset": "mV", "v_thresh": "mV", "tau_m": "ms", "cm": "nF",
              "tau_syn_E": "ms", "tau_syn_I": "ms", "tau_refrac": "ms", "i_offset": "nA"}


@dataclass
class ExportResult:
    """What :func:`export_run` wrote: ``out``, the ``report`` (markdown), a short ``summary`` and
    the exported object (``descriptor`` for SpiNNaker, ``graph`` for NIR); ``seconds`` from the
    checkpoint to the files on disk."""

    out: Path
    target: str
    report: str
    summary: str
    seconds: float
    meta: dict[str, Any]
    descriptor: Any = None
    graph: Any = None


def export_run(source: str | Path, target: str = "spinnaker", out: str | Path = "export", *,
               machine: str = "spinnaker1", dt: float = 1e-3, input_copies: int | str = "auto",
               root: str | None = None, device: str = "rram", tile: int = 256,
               adc_bits: int | None = None, dac_bits: int | None = None, wire_resistance: float | None = None,
               differential: bool = True) -> ExportResult:
    """Export the model of a run directory (``best.pt``, else ``last.pt``) or checkpoint to ``out``.

    ``target``: ``"nir"`` (``model.nir``), ``"spinnaker"`` (a descriptor for ``machine``,
    ``spinnaker1`` or ``spinnaker2``) or ``"crossbar"`` (tiles of ``tile`` x ``tile`` on the
    ``device`` preset, converters of ``adc_bits`` / ``dac_bits``, ``None`` = ideal, wires of
    ``wire_resistance`` ohm per segment, differential pairs or a reference column; see
    :mod:`neurogate.hw.crossbar_export`). ``root`` overrides the dataset root recorded in the run
    (used only by ``input_copies="auto"``).
    """
    import nir

    from ..train import load_checkpoint, load_model
    from . import to_nir

    t0 = time.perf_counter()
    if target not in ("nir", "spinnaker", "crossbar"):
        raise ConfigError(f"export target {target!r} is not 'nir', 'spinnaker' or 'crossbar'")
    ckpt_path = _checkpoint_path(source)
    ckpt = load_checkpoint(ckpt_path)
    model = load_model(ckpt_path)
    train = dict(ckpt.get("train_config") or {})
    data = {"dataset": train.get("dataset"), "time_steps": train.get("time_steps"),
            "root": str(Path(root or train.get("root") or "datasets").resolve()),  # simulate may run elsewhere
            "data_options": train.get("data_options") or {}}
    meta: dict[str, Any] = {"target": target, "checkpoint": str(ckpt_path.resolve()),
                            "model_config": ckpt.get("model_config"), "epoch": ckpt.get("epoch"),
                            "dt": dt, "data": data}
    graph = to_nir(model, dt=dt)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if target == "nir":
        nir.write(out / "model.nir", graph)
        report, desc = nir_report(graph, meta), None
    elif target == "crossbar":
        from .crossbar_export import crossbar_report, lower_crossbar

        meta["input_copies"] = _auto_copies(data) if input_copies == "auto" else int(input_copies)
        if meta["input_copies"] < 1:
            raise ConfigError(f"input_copies must be >= 1, got {meta['input_copies']}")
        desc = lower_crossbar(graph, meta, device=device, tile=tile, adc_bits=adc_bits, dac_bits=dac_bits,
                              wire_resistance=wire_resistance, differential=differential)
        desc.save(out)
        report = crossbar_report(desc, meta)
    else:
        from .spinnaker import PRESETS, lower

        if machine.lower() not in PRESETS:
            raise ConfigError(f"machine {machine!r} is not one of {', '.join(sorted(PRESETS))}")
        copies = _auto_copies(data) if input_copies == "auto" else int(input_copies)
        if copies < 1:
            raise ConfigError(f"input_copies must be >= 1, got {copies}")
        meta["input_copies"] = copies
        import warnings

        with warnings.catch_warnings(record=True) as caught:  # underflows are in the report
            warnings.simplefilter("always")
            desc = lower(with_input_copies(graph, copies), PRESETS[machine.lower()], dt=dt)
        meta["warnings"] = [str(w.message) for w in caught]
        desc.save(out)
        report = spinnaker_report(desc, meta)
    meta["seconds"] = round(time.perf_counter() - t0, 3)
    (out / EXPORT_FILE).write_text(json.dumps(meta, indent=1))
    (out / "report.md").write_text(report)
    summary = _summary(report)
    return ExportResult(out, target, report, summary, meta["seconds"], meta, desc, graph)


def load_export(directory: str | Path) -> tuple[dict[str, Any], Any]:
    """``(export.json, Descriptor | NIR graph)`` of an export directory, validated."""
    path = Path(directory)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such export directory (write one with neurogate export)")
    try:
        meta = json.loads((path / EXPORT_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path / EXPORT_FILE}: cannot read the export record ({err}); "
                          "re-run neurogate export") from err
    if meta.get("target") == "nir":
        import nir

        try:
            return meta, nir.read(path / "model.nir")
        except Exception as err:  # h5py / nir raise many kinds
            raise ConfigError(f"{path / 'model.nir'}: unreadable NIR file ({err})") from err
    if meta.get("target") == "crossbar":
        from .crossbar import Descriptor as CrossbarDescriptor

        return meta, CrossbarDescriptor.load(path)
    from .spinnaker import Descriptor

    return meta, Descriptor.load(path)


def simulate_export(directory: str | Path, dataset: str | None = None, split: str = "test",
                    samples: int | None = None, *, root: str | None = None,
                    batch_size: int = 64) -> dict[str, Any]:
    """Run an exported SpiNNaker descriptor (fixed point, latency aligned) on ``dataset`` and the
    float model of the recorded checkpoint on the same samples.

    Returns ``hardware_acc``, ``float_acc``, ``agreement`` (per LIF population: fraction of
    (step, sample, neuron) entries where hardware and float-model spikes agree), ``prediction_agreement``,
    ``clipped_events`` (counts above the input copies), ``saturations``, ``samples``, ``seconds``.
    """
    import torch

    from ..models.base import SpikeMonitor
    from .spinnaker import simulate

    meta, desc = load_export(directory)
    if meta.get("target") != "spinnaker":
        raise ConfigError(f"{directory}: a {meta.get('target')!r} export; simulate needs --target spinnaker")
    model, batches, n, name = export_source(meta, dataset, split, root, samples, batch_size)
    copies = int(meta.get("input_copies", 1))
    t0 = time.perf_counter()
    hw_correct = fl_correct = same_pred = 0
    clipped, sat = 0, 0
    agree: dict[str, list[float]] = {}  # population -> [equal entries, entries]
    for x, y in batches:
        spikes, dropped = input_spikes(x.numpy(), copies)
        clipped += dropped
        res = simulate(desc, spikes, align=True)
        sat += res.saturations
        hw_logits = _hardware_logits(desc, res)
        with torch.no_grad(), SpikeMonitor(model, keep_spikes=True) as mon:
            fl_logits = model(x).double().numpy()
        hw_pred, fl_pred = hw_logits.argmax(1), fl_logits.argmax(1)
        hw_correct += int((hw_pred == y).sum())
        fl_correct += int((fl_pred == y).sum())
        same_pred += int((hw_pred == fl_pred).sum())
        for module, s in mon.spikes.items():
            pop = module.replace(".", "_")  # to_nir names a node after its module path
            if pop in res.spikes and desc.populations[pop].kind == "lif":
                ref = s.reshape(s.shape[0], s.shape[1], -1).numpy()
                a = agree.setdefault(pop, [0.0, 0.0])
                a[0] += float((res.spikes[pop] == (ref > 0)).sum())
                a[1] += ref.size
    out = {"samples": n, "dataset": name, "split": split, "input_copies": copies,
           "hardware_acc": hw_correct / max(n, 1), "float_acc": fl_correct / max(n, 1),
           "prediction_agreement": same_pred / max(n, 1),
           "agreement": {p: v[0] / max(v[1], 1) for p, v in agree.items()},
           "clipped_events": int(clipped), "saturations": int(sat),
           "seconds": round(time.perf_counter() - t0, 2)}
    return out


def input_spikes(frames: np.ndarray, copies: int) -> tuple[np.ndarray, int]:
    """``[T, B, *shape]`` event counts -> ``([T, B, copies * n] uint8, events clipped)``: copy ``m``
    (copy-major, as :func:`with_input_copies` lays out the input) spikes where ``count >= m + 1``."""
    x = np.asarray(frames)
    T, B = x.shape[:2]
    x = x.reshape(T, B, -1)
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise ConfigError("the inputs are not event counts (non-negative integers); hardware inputs are spikes")
    clipped = int(np.clip(x - copies, 0, None).sum())
    out = np.concatenate([(x >= m) for m in range(1, copies + 1)], axis=2).astype(np.uint8)
    return out, clipped


def with_input_copies(graph: Any, copies: int) -> Any:
    """The NIR graph with its input repeated ``copies`` times along the first (channel) axis and the
    first layer's weights repeated to match (see the module docstring); ``copies=1``: unchanged."""
    import nir

    if copies == 1:
        return graph
    nodes, edges = dict(graph.nodes), list(graph.edges)
    inputs = [k for k, v in nodes.items() if type(v).__name__ == "Input"]
    if len(inputs) != 1:
        raise ConfigError(f"input copies need exactly one Input node, found {inputs}")
    name = inputs[0]
    shape = np.asarray(nodes[name].input_type["input"]).reshape(-1)
    new_shape = np.array([shape[0] * copies, *shape[1:]])
    nodes[name] = nir.Input(new_shape)
    cur = name
    while True:
        nxt = [b for a, b in edges if a == cur]
        if len(nxt) != 1:
            raise ConfigError(f"input copies: {cur} feeds {len(nxt)} nodes; use input_copies=1")
        cur = nxt[0]
        node, kind = nodes[cur], type(nodes[cur]).__name__
        if kind == "Flatten":
            nodes[cur] = dataclasses.replace(node, input_type={"input": new_shape})
            continue
        if kind in ("Conv1d", "Conv2d") and int(node.groups) == 1:
            w = np.asarray(node.weight)
            nodes[cur] = dataclasses.replace(node, weight=np.concatenate([w] * copies, axis=1))
            break
        if kind in ("Affine", "Linear"):
            w = np.asarray(node.weight)
            nodes[cur] = dataclasses.replace(node, weight=np.concatenate([w] * copies, axis=1))
            break
        raise ConfigError(f"input copies: the first layer {cur} ({kind}) cannot be repeated; "
                          "use input_copies=1 (binary inputs)")
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={**(graph.metadata or {}), "input_copies": copies})


# ------------------------------------------------------------------------------------ reports
def spinnaker_report(desc: Any, meta: dict[str, Any] | None = None) -> str:
    """Markdown: source, resources, populations, quantisation per projection, delays, neuron
    parameters in PyNN units, host readouts, input encoding."""
    meta = meta or {}
    m = desc.machine
    res = desc.mapping.get("resources", {})
    n_syn = sum(pr.report.get("synapses", 0) for pr in desc.projections)
    lines = [f"# SpiNNaker export: {m.name}", ""]
    if meta.get("checkpoint"):
        lines += [f"- source: `{meta['checkpoint']}` (model {(meta.get('model_config') or {}).get('name', '?')})"]
    lines += [f"- timestep: {desc.dt} s of model time per {m.timestep_ms} ms machine step; reset: {desc.reset}",
              (f"- input: {', '.join(desc.inputs)}; outputs: {', '.join(desc.outputs) or '-'}; "
               f"host readouts: {', '.join(desc.readouts) or '-'}"), ""]
    lines += ["## Resources", "", "| resource | used | limit |", "|---|---|---|",
              f"| chips | {res.get('chips', '?')} | {m.chip_grid[0] * m.chip_grid[1] * m.boards} |",
              f"| cores | {res.get('cores', '?')} | {m.cores_per_chip - m.monitor_cores} per chip |",
              f"| router entries (max per chip) | {res.get('router_entries_max', '?')} | {m.router_entries} |",
              f"| router entries (total) | {res.get('router_entries_total', '?')} | |",
              f"| DTCM bytes (max per core) | {res.get('dtcm_bytes_max', '?')} | {m.dtcm_bytes} |",
              f"| SDRAM bytes (synaptic rows, total) | {res.get('sdram_bytes_total', '?')} | |",
              (f"| neurons | {sum(p.size for p in desc.populations.values() if p.kind != 'input')} | "
               f"{m.max_neurons_per_core} per core |"),
              f"| synapses | {n_syn} | {m.max_row_length} per row |", ""]
    lines += ["## Populations", "", "| population | kind | neurons | cores | shift exc/inh | mV per model unit |",
              "|---|---|---|---|---|---|"]
    for p in desc.populations.values():
        lines.append(f"| {p.name} | {p.kind} | {p.size} | {len(p.slice_sizes)} | {p.shifts[0]}/{p.shifts[1]} | "
                     f"{p.v_scale:.4g} |")
    lines += ["", "## Quantisation", "",
              ("Weights are 16-bit magnitudes, input = weight << shift read as s16.15 nA; the sign is the "
               "receptor (exc/inh). Weights that round to 0 at the shift are dropped (underflow)."), "",
              ("| projection | shift exc/inh | exc synapses | inh synapses | underflowed to 0 | fraction | "
               "max abs error (nA) |"), "|---|---|---|---|---|---|---|"]
    for pr in desc.projections:
        r = pr.report
        kept, lost = r.get("synapses", 0), r.get("underflow_to_zero", 0)
        sh = r.get("shifts", desc.populations[pr.post].shifts)
        lines.append(f"| {pr.name} | {sh[0]}/{sh[1]} | {r.get('excitatory', 0)} | {r.get('inhibitory', 0)} | "
                     f"{lost} | {lost / max(kept + lost, 1):.2%} | {r.get('max_abs_error_nA', 0):.3g} |")
    ranges = {pr.name: _delay_range(desc, pr) for pr in desc.projections}
    lat = _latency(desc, ranges)
    lines += ["", "## Delays", "",
              (f"Delays are whole machine steps, 1..{m.max_core_delay} on core, up to {m.max_delay} with "
               "delay-extension stages. Every projection adds at least one step (SpiNNaker's minimum), "
               "so a population's output lags the zero-delay model by its latency (`simulate(..., align=True)` "
               "removes it)."), "", "| projection | delay min..max (steps) | extension stages | rows |",
              "|---|---|---|---|"]
    for pr in desc.projections:
        lo, hi = ranges[pr.name]
        lines.append(f"| {pr.name} | {lo}..{hi} | {int(pr.row_stage.max(initial=0))} | {len(pr.row_pre)} |")
    lines += ["", "| population | latency (steps) |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in lat.items()]
    lines += ["", "## Neuron parameters (PyNN IF_curr_exp units)", "",
              "| population | " + " | ".join(f"{k} ({u})" for k, u in PYNN_UNITS.items()) + " |",
              "|---|" + "---|" * len(PYNN_UNITS)]
    for p in desc.populations.values():
        if p.kind == "input":
            continue
        cells = [_span(p.params[k]) if k in p.params else "-" for k in PYNN_UNITS]
        lines.append(f"| {p.name} ({p.kind}) | " + " | ".join(cells) + " |")
    if desc.always_on:
        lines += ["", (f"Biases arrive as synapses from {', '.join(desc.always_on)} (spiking every step, "
                       "delayed by the layer's latency), so i_offset is 0 (`lower(..., bias=\"i_offset\")` "
                       "uses it instead).")]
    if desc.readouts:
        lines += ["", "## Host readouts", ""]
        for name, r in desc.readouts.items():
            lines.append(f"- {name}: {r['mode']} readout of {r['source']} spikes, weight {list(r['weight'].shape)} "
                         "(float64, applied on the host)")
    copies = meta.get("input_copies")
    if copies:
        lines += ["", "## Input encoding", "",
                  (f"{copies} input copies per pixel: copy m spikes when the event count >= m "
                   f"(exact for counts <= {copies}; larger counts are clipped and counted by simulate).")]
    if meta.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in meta["warnings"]]
    return "\n".join(lines) + "\n"


def nir_report(graph: Any, meta: dict[str, Any] | None = None) -> str:
    """Markdown: source, graph metadata and every node with its type, shapes and parameter count."""
    meta = meta or {}
    lines = ["# NIR export", ""]
    if meta.get("checkpoint"):
        lines.append(f"- source: `{meta['checkpoint']}` (model {(meta.get('model_config') or {}).get('name', '?')})")
    lines += [f"- {k}: {v}" for k, v in (graph.metadata or {}).items()]
    lines += ["", "## Nodes", "", "| node | type | input | output | parameters |", "|---|---|---|---|---|"]
    for name, node in graph.nodes.items():
        def shape(t: Any) -> str:
            return ", ".join(str([int(x) for x in np.asarray(v).reshape(-1)]) for v in (t or {}).values())
        n_par = sum(int(np.asarray(v).size) for f, v in vars(node).items()
                    if f not in ("input_type", "output_type", "metadata") and isinstance(v, np.ndarray))
        lines.append(f"| {name} | {type(node).__name__} | {shape(getattr(node, 'input_type', None))} | "
                     f"{shape(getattr(node, 'output_type', None))} | {n_par} |")
    lines += ["", "## Edges", ""] + [f"- {a} -> {b}" for a, b in graph.edges]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ helpers
def _checkpoint_path(source: str | Path) -> Path:
    path = Path(source)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run directory without best.pt or last.pt (train it with neurogate train)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such run directory or checkpoint")
    return path


def _auto_copies(data: dict[str, Any], scan: int = 512) -> int:
    """The largest event count per pixel and step in (up to ``scan`` samples of) the test split."""
    if not data.get("dataset"):
        return 1
    from .. import data as nd

    opts = {**data.get("data_options", {}), "root": data.get("root") or "datasets"}
    if data.get("time_steps"):
        opts["time_steps"] = data["time_steps"]
    try:
        ds = nd.load(data["dataset"], "test", **opts)
    except NeurogateError as err:
        raise ConfigError(f"input_copies=auto reads the test split of {data['dataset']!r}: {err}; "
                          "pass --root DIR or --input-copies N") from err
    top = max((float(np.asarray(ds[i][0]).max()) for i in range(min(scan, len(ds)))), default=1.0)
    return int(min(max(np.ceil(top), 1), MAX_AUTO_COPIES))


def _hardware_logits(desc: Any, res: Any) -> np.ndarray:
    """Per-sample class scores from a simulation: the host readout's time mean, else the LI
    membrane's time mean, else the output population's spike counts."""
    if res.readouts:
        return next(iter(res.readouts.values())).mean(0)
    out = desc.outputs[0]
    if out in res.v:
        return res.v[out].mean(0)
    return res.spikes[out].sum(0).astype(np.float64)


def _latency(desc: Any, ranges: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Shortest input-to-population delay in steps, from each projection's (min, max) delay."""
    lo = {pr.name: ranges[pr.name][0] for pr in desc.projections if pr.words.size}
    lat = {n: 0 for n in (*desc.inputs, *desc.always_on)}
    for _ in range(len(desc.populations)):
        for pr in desc.projections:
            if pr.pre in lat and pr.name in lo and pr.pre not in desc.always_on:
                lat[pr.post] = min(lat.get(pr.post, 1 << 30), lat[pr.pre] + lo[pr.name])
    return {n: v for n, v in lat.items() if n not in desc.always_on}


def _delay_range(desc: Any, pr: Any) -> tuple[int, int]:
    if not pr.words.size:
        return 0, 0
    from .spinnaker import decode_words

    d = decode_words(pr.words)["delay"]
    stage = np.repeat(pr.row_stage.astype(np.int64), np.diff(pr.row_offsets))
    total = stage * desc.machine.max_core_delay + d
    return int(total.min()), int(total.max())


def _span(v: np.ndarray) -> str:
    v = np.asarray(v, np.float64)
    lo, hi = float(v.min()), float(v.max())
    return f"{lo:.4g}" if np.isclose(lo, hi, rtol=1e-9, atol=1e-12) else f"{lo:.4g}..{hi:.4g}"


def _summary(report: str) -> str:
    """The report's tables of resources and quantisation (what a terminal needs), as plain text."""
    keep, section = [], None
    for line in report.splitlines():
        if line.startswith("#"):
            section = line.lstrip("# ")
            if line.startswith("# "):
                keep.append(section)
            continue
        if section in ("Resources", "Quantisation", "Nodes", "Tile map") and line.startswith("|") and "---" not in line:
            keep.append("  " + "  ".join(c.strip() for c in line.strip("|").split("|")))
        elif line.startswith("- ") and section is None:
            keep.append("  " + line[2:])
    return "\n".join(keep)


def export_source(meta: dict, dataset: str | None, split: str, root: str | None, samples: int | None,
                  batch_size: int):
    """``(float model, batches, n, dataset name)`` for comparing an export with the run it came from.

    The model is rebuilt from the checkpoint recorded in ``export.json``; the dataset (recorded or
    ``dataset``) is reopened with the recorded binning; ``batches`` yields ``(x [T, B, ...] float,
    y [B] int array)`` over the first ``n`` samples of ``split``.
    """
    import torch

    from .. import data as nd
    from ..train import load_model

    ckpt = Path(meta.get("checkpoint", ""))
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt}: the checkpoint this export was made from is gone; "
                              "re-export from an existing run")
    model = load_model(ckpt).eval()
    rec = meta.get("data") or {}
    name = dataset or rec.get("dataset")
    if not name:
        raise ConfigError("no dataset recorded in the export; pass --dataset")
    opts = {**rec.get("data_options", {}), "root": root or rec.get("root") or "datasets"}
    if rec.get("time_steps"):
        opts["time_steps"] = rec["time_steps"]
    ds = nd.load(name, split, **opts)
    n = len(ds) if samples is None else min(int(samples), len(ds))

    def batches():
        for lo in range(0, n, batch_size):
            items = [ds[i] for i in range(lo, min(n, lo + batch_size))]
            x = torch.stack([torch.as_tensor(f) for f, _ in items], 1).float()  # [T, B, ...]
            yield x, np.asarray([int(lbl) for _, lbl in items])

    return model, batches(), n, name
