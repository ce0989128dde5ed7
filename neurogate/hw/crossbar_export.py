"""Crossbar target of ``neurogate export | simulate``: a trained run lowered onto resistive tiles,
its report, and a Monte Carlo run over programming seeds against the float model.

Inputs are event counts; as for SpiNNaker (:func:`neurogate.hw.report.with_input_copies`) the
input rows are repeated ``input_copies`` times so every row carries a 0/1 spike, which an ideal or
a finite DAC over ``input_range = 1`` passes exactly.

Example:
    >>> export_run("runs/lif-convnet", "crossbar", "out/xbar", device="rram")  # doctest: +SKIP
    >>> r = simulate_crossbar("out/xbar", seeds=5, t_read=3600.0)              # doctest: +SKIP
    >>> r["float_acc"], r["hardware_acc_mean"], r["hardware_acc_std"]          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["crossbar_report", "lower_crossbar", "simulate_crossbar"]


def lower_crossbar(graph: Any, meta: dict[str, Any], *, device: str = "rram", tile: int = 256,
                   adc_bits: int | None = None, dac_bits: int | None = None,
                   budget: int | None = None, wire_resistance: float | None = None,
                   differential: bool = True) -> Any:
    """The crossbar :class:`~neurogate.hw.crossbar.Descriptor` of ``graph`` (input copies from
    ``meta["input_copies"]``); records the device and array in ``meta``."""
    from .crossbar import PRESETS, Array, lower
    from .report import with_input_copies

    if device not in PRESETS:
        raise ConfigError(f"crossbar device {device!r} is not one of {', '.join(sorted(PRESETS))}")
    array = Array(rows=tile, cols=tile, adc_bits=adc_bits, dac_bits=dac_bits, wire_resistance=wire_resistance,
                  differential=differential)
    desc = lower(with_input_copies(graph, int(meta.get("input_copies", 1))), PRESETS[device], array,
                 budget=budget, dt=meta["dt"])
    exact = lower(with_input_copies(graph, int(meta.get("input_copies", 1))), "ideal", array, dt=meta["dt"])
    q_err = {}
    for ly in desc.layers:
        w, ref = (np.concatenate([dd.weights(ly.name, s) for s in ly.sources]) for dd in (desc, exact))
        q_err[ly.name] = float(np.linalg.norm(w - ref) / max(np.linalg.norm(ref), 1e-300))
    meta["crossbar"] = {"device": device, "tile": tile, "adc_bits": adc_bits, "dac_bits": dac_bits,
                        "budget": budget, "wire_resistance": wire_resistance,
                        "differential": differential, "tiles": len(desc.tiles), "quantisation_error": q_err}
    return desc


def crossbar_report(desc: Any, meta: dict[str, Any] | None = None) -> str:
    """Markdown: source, device and converters, tile map, utilisation, per-layer quantisation and
    column scales, digital periphery (biases, neurons), input encoding."""
    meta = meta or {}
    d, a = desc.device, desc.array
    util = desc.utilisation
    lines = [f"# Crossbar export: {d.name}", ""]
    if meta.get("checkpoint"):
        lines += [f"- source: `{meta['checkpoint']}` (model {(meta.get('model_config') or {}).get('name', '?')})"]
    ins = ", ".join(f"{k} ({v})" for k, v in desc.inputs.items())
    lines += [f"- timestep: {desc.dt} s; inputs: {ins}; outputs: {', '.join(desc.outputs)}", ""]
    lines += ["## Device and converters", "", "| parameter | value |", "|---|---|",
              f"| conductance range | {d.g_min}..{d.g_max} uS |",
              f"| levels | {d.levels or 'unlimited'} |",
              f"| programming noise (c0, c1, c2) x g_max | {', '.join(f'{c:.4g}' for c in d.prog_coeffs)} |",
              f"| read noise (relative) | {d.read_noise} |",
              f"| drift nu | {d.drift_nu} +- {d.drift_nu_std} (t0 {d.drift_t0} s) |",
              f"| stuck LRS / HRS | {d.stuck_lrs} / {d.stuck_hrs} |",
              f"| tile | {a.rows} x {a.cols}, {'differential pairs' if a.differential else 'one device per weight + a reference column'} |",
              f"| wire resistance (IR drop) | {f'{a.wire_resistance} ohm per segment' if a.wire_resistance else 'ideal wires'} |",
              f"| DAC | {f'{a.dac_bits} bits' if a.dac_bits else 'ideal'} over +-{a.input_range}, v_read {a.v_read} V |",
              f"| ADC | {f'{a.adc_bits} bits' if a.adc_bits else 'ideal'} over +-{a.adc_range or a.v_read * a.rows * a.unit(d):.4g} uA |",
              ""]
    lines += ["## Tile map", "", (f"{len(desc.tiles)} tiles, utilisation {util['overall']:.1%} "
                                  f"(cells used / cells of the tiles placed)."), "",
              ("A convolution is weight-stationary: its kernel matrix (C_in k_h k_w rows x C_out columns) is "
               "programmed once and read once per output position; pooling before it is digital."), "",
              "| layer | source | mapping | weights (rows x cols) | reads per step | tiles | utilisation | tile ids |",
              "|---|---|---|---|---|---|---|---|"]
    for p in desc.projections:
        ts = [t for t in desc.tiles if t.projection == p.id]
        ids = f"{ts[0].id}..{ts[-1].id}" if len(ts) > 1 else (str(ts[0].id) if ts else "-")
        how = ("digital " + " + ".join(f"{q['mode']}-pool {q['kernel'][0]}x{q['kernel'][1]}" for q in p.pre) + ", "
               if p.pre else "") + (f"conv {p.conv['kernel'][0]}x{p.conv['kernel'][1]}" if p.kind == "conv" else "dense")
        lines.append(f"| {p.layer} | {p.source} | {how} | {p.n_rows} x {p.n_cols} | {p.reads_per_step} | {len(ts)} | "
                     f"{util.get(p.layer, 0):.1%} | {ids} |")
    lines += ["", "## Quantisation", "",
              ("Column j of a tile holds W[:, j] / s_j as G+ - G- over the conductance range, s_j = max_i "
               "|W_ij| (model units per full range). Error: relative Frobenius error of the target (noise-free) "
               "weights on the device's levels against the float weights."), "",
              "| layer | column scales s | level step (model units, max) | relative error |", "|---|---|---|---|"]
    for ly in desc.layers:
        ts = [t for t in desc.tiles if t.layer == ly.name]
        if not ts:
            continue
        s = np.concatenate([t.scale for t in ts])
        step = float(s.max()) / (d.levels - 1) if d.levels else 0.0
        err = (meta.get("crossbar") or {}).get("quantisation_error", {}).get(ly.name, float("nan"))
        lines.append(f"| {ly.name} | {_span(s)} | {step:.3g} | {err:.2e} |")
    lines += ["", "## Digital periphery", "",
              "Biases, neurons (decay beta, input gain c, threshold, reset) and readouts stay digital.", "",
              "| layer | kind | neurons | bias | decay | gain | threshold | reset |", "|---|---|---|---|---|---|---|---|"]
    for ly in desc.layers:
        p = {k: _span(ly.params[k]) if k in ly.params else "-" for k in ("decay", "gain", "threshold")}
        lines.append(f"| {ly.name} | {ly.kind} | {ly.size} | {_span(ly.bias) if ly.bias.size else '-'} | "
                     f"{p['decay']} | {p['gain']} | {p['threshold']} | {ly.reset} |")
    lines += ["", "## Input encoding", "",
              (f"- {meta.get('input_copies', 1)} input copies: copy m spikes where the event count >= m "
               f"(counts above are clipped and counted by neurogate simulate).")]
    return "\n".join(lines) + "\n"


def simulate_crossbar(directory: str | Path, dataset: str | None = None, split: str = "test",
                      samples: int | None = None, *, seeds: int = 5, t_read: float | None = None,
                      drift_compensation: bool = False, root: str | None = None,
                      batch_size: int = 128, noise_scale: float = 1.0) -> dict[str, Any]:
    """Run a crossbar export on ``dataset`` for ``seeds`` programmings (seeds 0..n-1) and the float
    model of the recorded checkpoint on the same samples; ``noise_scale`` multiplies the device's
    programming and read noise.

    Returns ``float_acc``, ``hardware_acc`` (one per seed), ``hardware_acc_mean``/``_std``,
    ``layer_error`` (per layer, mean over seeds: ``sum |s_hw - s_float| / sum s_float`` for spikes,
    ``||y_hw - y_float|| / ||y_float||`` for readouts and membranes), ``clipped_events``,
    ``dac_saturations``, ``adc_saturations``, ``samples``, ``seconds``.
    """
    import torch

    from ..models.base import SpikeMonitor
    from .report import _hardware_logits, export_source, input_spikes, load_export

    meta, desc = load_export(directory)
    if noise_scale != 1:
        desc = dataclasses.replace(desc, device=desc.device.with_noise(noise_scale))
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    model, batches, n, name = export_source(meta, dataset, split, root, samples, batch_size)
    copies = int(meta.get("input_copies", 1))
    t0 = time.perf_counter()
    hw_correct = np.zeros(seeds)
    fl_correct, clipped, dac_sat, adc_sat = 0, 0, 0, 0
    err: dict[str, np.ndarray] = {}  # layer -> [seeds, 2] (|diff|, |ref|) accumulators
    for x, y in batches:
        spikes, dropped = input_spikes(x.numpy(), copies)
        clipped += dropped
        with torch.no_grad(), SpikeMonitor(model, keep_spikes=True) as mon:
            fl_logits = model(x).double().numpy()
        fl_correct += int((fl_logits.argmax(1) == y).sum())
        ref = {m.replace(".", "_"): s.reshape(s.shape[0], s.shape[1], -1).double().numpy()
               for m, s in mon.spikes.items()}
        for k in range(seeds):
            # one programming per seed; batches read the same chip (read noise differs per batch)
            res = desc.simulate(spikes, seed=k, t_read=t_read, drift_compensation=drift_compensation)
            dac_sat += res.dac_saturations
            adc_sat += res.adc_saturations
            hw_logits = _hardware_logits(desc, res)
            hw_correct[k] += int((hw_logits.argmax(1) == y).sum())
            for lname, s in res.spikes.items():
                if lname in ref and ref[lname].shape == s.shape:
                    e = err.setdefault(lname, np.zeros((seeds, 2)))
                    e[k] += [np.abs(s - ref[lname]).sum(), ref[lname].sum()]
            out = desc.outputs[0]
            if out not in res.spikes:
                e = err.setdefault(out, np.zeros((seeds, 2)))
                e[k] += [((hw_logits - fl_logits) ** 2).sum(), (fl_logits ** 2).sum()]
    acc = hw_correct / max(n, 1)
    layer_error = {}
    for lname, e in err.items():
        r = e[:, 0] / np.maximum(e[:, 1], 1e-300)
        layer_error[lname] = float(np.mean(np.sqrt(r) if lname not in ref else r))
    return {"samples": n, "dataset": name, "split": split, "input_copies": copies, "seeds": seeds,
            "t_read": t_read, "noise_scale": noise_scale, "device": desc.device.name, "float_acc": fl_correct / max(n, 1),
            "hardware_acc": acc.tolist(), "hardware_acc_mean": float(acc.mean()),
            "hardware_acc_std": float(acc.std(ddof=1)) if seeds > 1 else 0.0,
            "layer_error": layer_error, "clipped_events": int(clipped),
            "dac_saturations": int(dac_sat), "adc_saturations": int(adc_sat),
            "seconds": round(time.perf_counter() - t0, 2)}


def _span(v: np.ndarray) -> str:
    v = np.asarray(v, np.float64)
    lo, hi = float(v.min()), float(v.max())
    return f"{lo:.4g}" if np.isclose(lo, hi, rtol=1e-9, atol=1e-12) else f"{lo:.4g}..{hi:.4g}"
