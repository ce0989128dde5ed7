r"""Lower an NIR graph onto a SpiNNaker-like machine: populations, quantised synaptic rows, routing.

**Neuron model.** An NIR ``LIF`` (``tau dv/dt = (v_leak - v) + r I``) runs at the graph's step
``dt`` (``graph.metadata["dt"]`` or the ``dt`` argument) with the exact-exponential update

.. math::  v_t = v_{leak} + \beta (v_{t-1} - v_{leak}) + (1 - \beta) r I_t, \quad
           \beta = e^{-dt/\tau}, \qquad S_t = [v_t \ge v_{th}],

followed by the reset (``"zero"``: :math:`v \leftarrow v_{reset}`; ``"subtract"``:
:math:`v \leftarrow v - v_{th}`). neurogate's ``h = \beta v + c x`` is this with ``v_leak = 0``,
``r = 1`` (``decay_input``) or ``r = 1 / (1 - beta)``. One model step is one machine step (a model
``dt`` other than 1 ms means running ``1 ms / dt`` times slower than the model's real time).

**Mapping to PyNN ``IF_curr_exp``** (mV, ms, nF, nA), per neuron, with a per-population voltage
scale :math:`s = 15\,\text{mV} / \max |v_{th} - v_{leak}|`:
``v_rest = -65``, ``v_thresh = -65 + s (v_th - v_leak)``, ``v_reset = -65 + s (v_reset - v_leak)``,
``tau_m = -timestep_ms / ln(beta)`` (= ``tau / dt * timestep_ms``), ``cm = 1 nF`` (so ``R = tau_m / cm`` MOhm and sPyNNaker's
``V = alpha - e^{-dt/tau_m} (alpha - V)``, ``alpha = R I + v_rest`` reproduces the update),
currents ``I_nA = g I`` with ``g = s r / R``; Affine biases become ``i_offset = g b``; the
subtractive reset removes ``s v_th`` mV. Synaptic input is a one-step current pulse (the input of
step ``t`` acts on ``V_t`` only): PyNN's exponential synapse with ``tau_syn = timestep / 32``
(decay ``e^{-32}``, zero in 32-bit fixed point) approximates it, see :mod:`.pynn`.
``tau_refrac = 0``. ``LI`` readouts are the same neuron with an unreachable threshold (``s = 1``).
With ``graph.metadata["integration"] == "euler"`` the decay is :math:`\beta = 1 - dt/\tau`
instead (what neurogate's ``to_nir(..., integration="euler")`` writes); ``tau_m`` is then chosen
as :math:`-dt/\ln\beta` in machine steps so that the machine's exact exponential gives the same
:math:`\beta`.

**Projections.** Every presynaptic-postsynaptic pair with a non-zero weight is a synapse of type
excitatory (weight > 0) or inhibitory (< 0); its delay is ``1 + Delay-node steps`` (SpiNNaker's
minimum is one step, so each layer adds one step of latency). Weights are quantised per
(population, synapse type), see :mod:`.quantise`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ...errors import ConfigError, HardwareConstraintError
from .descriptor import Descriptor, Population, Projection
from .graph import read_graph
from .machine import SPINNAKER1, Machine
from .quantise import MAX_SHIFT, choose_shift, encode_words, to_s1615
from .routing import place_and_route

__all__ = ["V_REST_MV", "V_SPAN_MV", "lower"]

V_REST_MV, V_SPAN_MV = -65.0, 15.0
BIAS_SOURCE = "bias_source"
LI_THRESHOLD = (1 << 31) - 1


def lower(
    graph: Any,
    machine: Machine = SPINNAKER1,
    dt: float | None = None,
    *,
    reset: str | None = None,
    neurons_per_core: int | None = None,
    weight_shift: int | dict[str, int | tuple[int, int]] | None = None,
    bias: str = "synapse",
) -> Descriptor:
    """Map an NIR graph of Input/Affine/Linear/Conv/Flatten/Pool/Delay/LIF/LI nodes onto ``machine``.

    ``dt`` (graph time units per step) and ``reset`` default to ``graph.metadata["dt"]`` and
    ``graph.metadata["reset"]`` (``"zero"`` if absent). ``weight_shift`` overrides the automatic
    ring-buffer shift: one int for all, or ``{population: shift | (exc_shift, inh_shift)}``.
    ``bias="synapse"`` (default) delivers Affine biases as synapses from a one-neuron source that
    spikes every step (population ``"bias_source"``), delayed by the layer's latency, so a layer's
    bias starts when its first input can arrive and the aligned run equals the zero-delay model;
    ``bias="i_offset"`` uses the neuron's constant ``i_offset`` instead (acts from step 0).
    """
    meta = getattr(graph, "metadata", None) or {}
    dt = float(dt if dt is not None else meta.get("dt", 0) or 0)
    if dt <= 0:
        raise ConfigError("lower: the step dt is unknown; pass dt=... or set graph.metadata['dt']")
    reset = reset or meta.get("reset", "zero")
    if reset not in ("zero", "subtract"):
        raise ConfigError(f"lower: reset {reset!r} is not 'zero' or 'subtract'")
    euler = meta.get("integration", "exact") == "euler"
    npc = neurons_per_core or machine.max_neurons_per_core
    if npc > machine.max_neurons_per_core:
        raise HardwareConstraintError("network", f"neurons per core on {machine.name}", npc,
                                      f"use neurons_per_core <= {machine.max_neurons_per_core}")
    sources, targets, outputs, readouts = read_graph(graph, dt)
    if not targets:
        raise ConfigError("lower: the graph has no LIF or LI node to map")
    resets = {t.node.metadata.get("reset", reset) for t in targets if type(t.node).__name__ == "LIF"}
    if len(resets) > 1:
        raise HardwareConstraintError("network", "one reset mode per network", sorted(resets),
                                      "use the same reset mode in every LIF layer")
    reset = resets.pop() if resets else reset

    pops: dict[str, Population] = {}
    gains: dict[str, np.ndarray] = {}
    for name, n in sources.items():
        if name not in {t.name for t in targets}:
            pops[name] = Population(name, "input", n, _slices(n, npc))
    if bias not in ("synapse", "i_offset"):
        raise ConfigError(f"lower: bias {bias!r} is not 'synapse' or 'i_offset'")
    use_bias_source = bias == "synapse" and any(np.any(t.bias != 0) for t in targets)
    if use_bias_source:
        pops[BIAS_SOURCE] = Population(BIAS_SOURCE, "input", 1, [1])
    for t in targets:
        params, fixed, v_scale, gains[t.name] = _neuron_params(t.name, t.node, t.size, dt, machine, euler)
        kind = "lif" if type(t.node).__name__ == "LIF" else "li"
        pops[t.name] = Population(t.name, kind, t.size, _slices(t.size, npc), v_scale, [0, 0], params, fixed)

    raw = []  # (name, pre, post, pre_idx, post_idx, weight nA, delay steps)
    lat = {n: 0 for n, p in pops.items() if p.kind == "input"}
    for t in targets:
        i_offset = gains[t.name] * t.bias
        if use_bias_source:
            arrive = [lat[term.source] + 1 + int((term.dpre.min(initial=0)) + term.dpost.min(initial=0))
                      for term in t.terms if term.source in lat]
            lat[t.name] = min(arrive, default=1)
            post_i = np.flatnonzero(i_offset)
            if post_i.size:
                raw.append((f"{BIAS_SOURCE}->{t.name}", BIAS_SOURCE, t.name, np.zeros(post_i.size, np.int64),
                            post_i, i_offset[post_i], np.full(post_i.size, lat[t.name])))
            i_offset = np.zeros_like(i_offset)
        pops[t.name].params["i_offset"] = i_offset
        pops[t.name].fixed["i_offset"] = _fixed(t.name, "i_offset", i_offset)
        for k, term in enumerate(t.terms):
            name = f"{term.source}->{t.name}" + (f"#{k}" if len(t.terms) > 1 else "")
            m = term.matrix.tocsc().tocoo()  # no stored zeros (graph.py); by pre: _rows' sort is cheap
            post_i, pre_i = m.row.astype(np.int64), m.col.astype(np.int64)
            w = gains[t.name][post_i] * m.data
            delay = 1 + term.dpre[pre_i] + term.dpost[post_i]
            if delay.size and delay.max() > machine.max_delay:
                raise HardwareConstraintError(name, f"delay ({machine.max_delay} steps incl. extensions)",
                                              int(delay.max()), "shorten the Delay node's delays or use a coarser dt")
            raw.append((name, term.source, t.name, pre_i, post_i, w, delay))

    _choose_shifts(raw, pops, machine, weight_shift)
    projections = [_rows(r, pops, machine) for r in raw]
    for pr in projections:
        if pr.report["underflow_to_zero"]:
            warnings.warn(f"{pr.name}: {pr.report['underflow_to_zero']} non-zero weights underflow to 0 at "
                          f"shifts {pr.report['shifts']} (see Descriptor.summary())", stacklevel=2)
    mapping = _place(projections, pops, machine)
    inputs = [n for n, p in pops.items() if p.kind == "input"]
    host = _host_readouts(readouts, pops, meta.get("readout", "mean"))
    outs = outputs or ([] if host else [targets[-1].name])
    desc = Descriptor(machine, reset, dt, pops, projections, [n for n in inputs if n != BIAS_SOURCE], outs,
                      mapping, readouts=host, always_on=[BIAS_SOURCE] if use_bias_source else [])
    desc.validate()
    return desc


def _choose_shifts(raw: list[tuple], pops: dict[str, Population], machine: Machine, weight_shift: Any) -> None:
    """Set ``shifts`` of every population that receives synapses (see :mod:`.quantise`)."""
    for post in {r[2] for r in raw}:
        for typ in (0, 1):
            sel = [(r, (r[5] > 0) if typ == 0 else (r[5] < 0)) for r in raw if r[2] == post]
            mag = np.concatenate([np.abs(r[5][m]) for r, m in sel])
            idx = np.concatenate([r[4][m] for r, m in sel])
            shift = _override(weight_shift, post, typ)
            auto = choose_shift(mag, idx, pops[post].size, machine.weight_max, machine.ring_buffer_max)
            if auto is None:
                raise HardwareConstraintError(post, "weight / ring-buffer range at every shift 0..16",
                                              f"max |w| {mag.max():.4g} nA", "scale the layer's weights down")
            if shift is not None and shift < auto:
                raise HardwareConstraintError(post, "ring-buffer sum / weight range with shift", shift,
                                              f"use weight_shift >= {auto} for this population (or leave it automatic)")
            pops[post].shifts[typ] = auto if shift is None else shift


def _place(projections: list[Projection], pops: dict[str, Population], machine: Machine) -> dict[str, Any]:
    """Collect fan-out and synaptic-matrix sizes per core, then place and route."""
    stages: dict[str, int] = {}
    fanout: dict[tuple[str, int, int], set[tuple[str, int]]] = {}
    rows_bytes: dict[tuple[str, int], int] = {}
    for pr in projections:
        if pr.row_stage.size:
            stages[pr.pre] = max(stages.get(pr.pre, 0), int(pr.row_stage.max()))
        pre_slice = np.searchsorted(pops[pr.pre].slice_starts, pr.row_pre, side="right") - 1
        for s, ps, k in set(zip(pre_slice.tolist(), pr.row_slice.tolist(), pr.row_stage.tolist())):
            fanout.setdefault((pr.pre, s, k), set()).add((pr.post, ps))
        lengths = np.diff(pr.row_offsets)
        for ps in np.unique(pr.row_slice):
            sel = pr.row_slice == ps
            nbytes = int(4 * (3 * sel.sum() + lengths[sel].sum()))  # 3 header words per row
            rows_bytes[(pr.post, int(ps))] = rows_bytes.get((pr.post, int(ps)), 0) + nbytes
    order = [(p.name, p.kind, p.slice_sizes) for p in pops.values()]
    return place_and_route(machine, order, stages, fanout, rows_bytes)


def _host_readouts(readouts: list, pops: dict[str, Population], mode: str) -> dict[str, dict[str, Any]]:
    """Linear readouts of one spiking population, applied on the host to the recorded spikes."""
    host = {}
    for r in readouts:
        for term in r.terms:
            if term.source not in pops:
                raise ConfigError(f"{r.name}: readout source {term.source} is not a population")
        srcs = {term.source for term in r.terms}
        if len(srcs) != 1:
            raise HardwareConstraintError(r.name, "host readout from one population", sorted(srcs),
                                          "read out from a single LIF layer")
        host[r.name] = {"source": srcs.pop(), "weight": np.asarray(sum(t.matrix for t in r.terms).toarray()), "bias": r.bias,
                        "mode": mode}
    return host


def _slices(n: int, npc: int) -> list[int]:
    return [min(npc, n - lo) for lo in range(0, n, npc)]


def _override(weight_shift: Any, post: str, typ: int) -> int | None:
    v = weight_shift.get(post) if isinstance(weight_shift, dict) else weight_shift
    if v is None:
        return None
    v = int(v[typ]) if isinstance(v, (tuple, list)) else int(v)
    if not 0 <= v <= MAX_SHIFT:
        raise ConfigError(f"weight_shift {v} for {post} is outside 0..{MAX_SHIFT}")
    return v


def _fixed(layer: str, field: str, x: np.ndarray) -> np.ndarray:
    try:
        return to_s1615(x)
    except OverflowError as err:
        raise HardwareConstraintError(layer, f"s16.15 range of {field}", f"{np.abs(x).max():.6g}",
                                      "scale the layer's weights/biases/thresholds down") from err


def _neuron_params(name: str, node: Any, n: int, dt: float, machine: Machine, euler: bool = False):
    """``(params in PyNN units, fixed-point constants, v_scale, gain nA per model unit)``."""
    def arr(v: Any) -> np.ndarray:
        a = np.asarray(v if v is not None else 0.0, dtype=np.float64).reshape(-1)
        if a.size not in (1, n):
            raise ConfigError(f"{name}: parameter of size {a.size} for a population of {n}")
        return np.broadcast_to(a, (n,)).copy()

    tau, r, v_leak = arr(node.tau), arr(node.r), arr(node.v_leak)
    if np.any(tau <= 0) or not np.all(np.isfinite(tau)):
        raise HardwareConstraintError(name, "finite positive tau (IF neurons are not supported)",
                                      float(tau.min()), "use a LIF with a finite tau")
    beta = 1 - dt / tau if euler else np.exp(-dt / tau)
    if np.any(beta <= 0):
        raise ConfigError(f"{name}: Euler decay 1 - dt/tau <= 0 (tau {tau.min():.3g} < dt {dt:.3g})")
    tau_m = -machine.timestep_ms / np.log(beta)  # the machine's exact exponential reproduces beta
    cm = np.ones(n)
    if type(node).__name__ == "LIF":
        th, v_reset = arr(node.v_threshold), arr(node.v_reset)
        span = np.abs(th - v_leak).max()
        if span <= 0:
            raise ConfigError(f"{name}: threshold equals v_leak; the neuron cannot be scaled")
        s = V_SPAN_MV / span
        v_thresh = V_REST_MV + s * (th - v_leak)
        fixed_th = _fixed(name, "v_thresh", v_thresh)
        v_sub = s * th
    else:
        s, v_reset, v_thresh, v_sub = 1.0, v_leak, np.full(n, LI_THRESHOLD / 2**15), np.zeros(n)
        fixed_th = np.full(n, LI_THRESHOLD, np.int64)
    v_reset_mv = V_REST_MV + s * (v_reset - v_leak)
    gain = s * r / (tau_m / cm)
    params = {"v_rest": np.full(n, V_REST_MV), "v_reset": v_reset_mv, "v_thresh": v_thresh,
              "tau_m": tau_m, "cm": cm, "tau_syn_E": np.full(n, machine.timestep_ms / 32),
              "tau_syn_I": np.full(n, machine.timestep_ms / 32), "tau_refrac": np.zeros(n),
              "v_leak_model": v_leak}
    fixed = {"v_rest": _fixed(name, "v_rest", params["v_rest"]), "v_reset": _fixed(name, "v_reset", v_reset_mv),
             "v_thresh": fixed_th, "v_sub": _fixed(name, "v_sub", v_sub),
             "r_mem": _fixed(name, "r_mem", tau_m / cm),
             "exp_tc": np.minimum(np.floor(beta * 2.0**32 + 0.5), 2.0**32 - 1).astype(np.int64)}
    return params, fixed, float(s), gain


def _rows(raw: tuple, pops: dict[str, Population], machine: Machine) -> Projection:
    """Quantise one projection's synapses and pack them into rows of words."""
    name, pre, post, pre_i, post_i, w, delay = raw
    p = pops[post]
    inh = w < 0
    typ = inh.astype(np.int64)
    # per-synapse 2^(15 - shift) as a lookup of the two exact powers of two (no array power)
    up = np.asarray([2.0 ** (15 - p.shifts[0]), 2.0 ** (15 - p.shifts[1])])[typ]
    mag = np.abs(w)
    wq = np.floor(mag * up + 0.5).astype(np.int64)
    keep = wq > 0
    err = np.abs(mag - wq / up)
    report = {"synapses": int(keep.sum()), "underflow_to_zero": int((~keep).sum()),
              "max_abs_error_nA": float(err.max(initial=0.0)),
              "excitatory": int((keep & ~inh).sum()), "inhibitory": int((keep & inh).sum()),
              "shifts": list(p.shifts), "max_delay_steps": int(delay.max(initial=1))}
    kept = np.flatnonzero(keep)
    pre_i, post_i, delay = pre_i[kept], post_i[kept], delay[kept]
    npc = p.slice_sizes[0]
    post_slice, index = post_i // npc, post_i % npc
    stage = (delay - 1) // machine.max_core_delay
    # one int64 key in (pre, slice, stage, index) order: a single argsort instead of a 4-key lexsort
    n_slices, n_stages = len(p.slice_sizes), int(stage.max(initial=0)) + 1
    row_key = (pre_i * n_slices + post_slice) * n_stages + stage
    order = np.argsort(row_key * npc + index, kind="stable")
    row_key, src = row_key[order], kept[order]
    stage, index = stage[order], index[order]
    words = encode_words(wq[src], delay[order] - stage * machine.max_core_delay, typ[src], index)
    starts = np.flatnonzero(np.concatenate([[True], row_key[1:] != row_key[:-1]])) if len(words) else np.zeros(0, np.int64)
    offsets = np.concatenate([starts, [len(words)]]).astype(np.int64)
    lengths = np.diff(offsets)
    if lengths.size and lengths.max() > machine.max_row_length:
        raise HardwareConstraintError(name, f"synapses per row ({machine.max_row_length})", int(lengths.max()),
                                      "use fewer neurons per core (neurons_per_core=...)")
    head = order[starts]
    return Projection(name, pre, post, words, offsets, pre_i[head].astype(np.int32),
                      post_slice[head].astype(np.int32), stage[starts].astype(np.int32), report)
