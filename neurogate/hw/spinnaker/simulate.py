r"""Bit-accurate fixed-point simulation of a SpiNNaker descriptor (batched, vectorised numpy).

Per machine step :math:`t`, for every neuron (integers; s16.15 unless stated, see :mod:`.quantise`):

.. math::

    E, H &= \text{ring}[t \bmod L, \text{exc}], \ \text{ring}[t \bmod L, \text{inh}]
           \quad\text{(16-bit sums of weights; the slot is then cleared)} \\
    I &= (E \ll \text{shift}_e) - (H \ll \text{shift}_i) + i_{offset} \\
    \alpha &= (I \cdot R) \gg 15 + V_{rest} \\
    V &= \alpha - \big(\text{exp\_tc} \cdot (\alpha - V)\big) \gg 32
         \qquad (\text{exp\_tc} = e^{-dt/\tau_m} \text{ in u0.32}) \\
    S &= [V \ge V_{thresh}], \qquad V \leftarrow V_{reset} \ \text{(zero)} \ \text{or}\
         V - V_{sub} \ \text{(subtract)}

then every spike of step :math:`t` (inputs and neurons) adds its synapses' integer weights to
slot :math:`(t + d) \bmod L` of its targets (total delay :math:`d \ge 1` steps, on-core plus
delay-extension stages; :math:`L` = largest delay + 1, which holds the same sums as 16 on-core
slots fed by re-sending extension cores). Values leaving s16.15 saturate, and saturations are
counted in the result (never silent). ``mode="float"`` runs the same equations in float64 on the
dequantised constants (no product rounding): the reference for spike agreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ShapeError, ValueRangeError
from .descriptor import Descriptor

__all__ = ["SimResult", "latency", "simulate"]

LO, HI = -(1 << 31), (1 << 31) - 1


@dataclass
class SimResult:
    """``spikes[pop]``: ``[T, B, n]`` uint8; ``v[pop]``: membranes in the model's units (pre-reset),
    recorded for LI populations and any in ``record_v``; ``saturations``: s16.15 overflows;
    ``readouts[name]``: ``[T, B, n_out]`` host readout currents from the recorded spikes."""

    spikes: dict[str, np.ndarray]
    v: dict[str, np.ndarray] = field(default_factory=dict)
    saturations: int = 0
    latency: dict[str, int] = field(default_factory=dict)
    readouts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        """The first host readout's per-step currents if there is one, else the first output's spikes."""
        return next(iter(self.readouts.values())) if self.readouts else next(iter(self.spikes.values()))


def latency(desc: Descriptor) -> dict[str, int]:
    """Shortest delay (steps) from any input to each population (inputs: 0)."""
    lat = {n: 0 for n in desc.inputs}
    changed = True
    while changed:
        changed = False
        for pr in desc.projections:
            if pr.pre in lat and pr.words.size:
                d = lat[pr.pre] + int(desc.synapses(pr)["delay"].min())
                if d < lat.get(pr.post, 1 << 30):
                    lat[pr.post], changed = d, True
    return lat


def simulate(desc: Descriptor, input_spikes: np.ndarray | dict[str, np.ndarray], *, mode: str = "fixed",
             record_v: tuple[str, ...] = (), align: bool = False) -> SimResult:
    """Run ``desc`` on ``input_spikes`` ``[T, B, n_in]`` (0/1; a dict for several inputs).

    ``align=True`` runs ``max latency`` extra steps and returns each population's spikes shifted
    back by its latency, to compare with a zero-delay model (exact with ``lower(bias="synapse")``,
    the default; with ``bias="i_offset"`` the first steps differ, as the bias acts before the
    first spikes arrive).
    """
    if mode not in ("fixed", "float"):
        raise ValueError(f"mode {mode!r} is not 'fixed' or 'float'")
    if not isinstance(input_spikes, dict):
        input_spikes = {desc.inputs[0]: input_spikes}
    for name, x in input_spikes.items():
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != desc.populations[name].size:
            raise ShapeError(f"input {name}: expected [T, B, {desc.populations[name].size}], got {x.shape}")
        if not np.all((x == 0) | (x == 1)):
            raise ValueRangeError(f"input {name}: spikes must be 0 or 1")
    T, B = next(iter(input_spikes.values())).shape[:2]
    lat = latency(desc)
    extra = max(lat.values()) if align else 0
    input_spikes = dict(input_spikes)
    for name in desc.always_on:
        input_spikes[name] = np.ones((T + extra, B, 1), np.uint8)
    fixed = mode == "fixed"
    delivery = _delivery(desc, fixed)
    L = max((d for _, _, d, _, _ in delivery), default=0) + 1  # ring slots actually needed
    neurons = [p for p in desc.populations.values() if p.kind != "input"]
    dtype = np.int64 if fixed else np.float64
    ring = {p.name: np.zeros((L, 2, B, p.size), dtype) for p in neurons}
    state = {p.name: np.broadcast_to(p.fixed["v_rest"], (B, p.size)).astype(dtype) for p in neurons}
    if not fixed:
        state = {k: v / 2**15 for k, v in state.items()}
    consts = {p.name: _constants(p, fixed) for p in neurons}
    rec_v = {p.name for p in neurons if p.kind == "li"} | set(record_v)
    out = {n: np.zeros((T + extra, B, p.size), np.uint8) for n, p in desc.populations.items()}
    vout = {n: np.zeros((T + extra, B, desc.populations[n].size)) for n in rec_v}
    sat, ring_max = 0, desc.machine.ring_buffer_max
    for t in range(T + extra):
        slot = t % L
        for p in neurons:
            c, buf = consts[p.name], ring[p.name]
            e, h = buf[slot, 0], buf[slot, 1]
            if fixed:
                # 16-bit saturating ring buffer: saturating adds of non-negative weights equal one
                # clip of the sum, done here when the slot is read (lower() makes it unreachable)
                sat += int(np.count_nonzero(e > ring_max) + np.count_nonzero(h > ring_max))
                e, h = np.minimum(e, ring_max), np.minimum(h, ring_max)
                i_syn = (e << c["shift_e"]) - (h << c["shift_i"]) + c["i_offset"]
                sat += int(np.count_nonzero((i_syn < LO) | (i_syn > HI)))
                i_syn = np.clip(i_syn, LO, HI)
                alpha = ((i_syn * c["r_mem"]) >> 15) + c["v_rest"]
                diff = alpha - state[p.name]
                v = alpha - _mul_u032(c["exp_tc"], diff)
                sat += int(np.count_nonzero((v < LO) | (v > HI)) + np.count_nonzero((alpha < LO) | (alpha > HI)))
                v = np.clip(v, LO, HI)
            else:
                i_syn = e * c["scale_e"] - h * c["scale_i"] + c["i_offset"]
                alpha = i_syn * c["r_mem"] + c["v_rest"]
                v = alpha - c["exp_tc"] * (alpha - state[p.name])
            buf[slot] = 0
            if p.name in rec_v:
                scale = 2.0**15 if fixed else 1.0
                vout[p.name][t] = (v / scale - c["v_rest_mv"]) / p.v_scale + p.params["v_leak_model"]
            if p.kind == "lif":
                s = v >= c["v_thresh"]
                if desc.reset == "zero":
                    v = np.where(s, c["v_reset"], v)
                else:
                    v = v - s * c["v_sub"]
                out[p.name][t] = s
            state[p.name] = v
        for name, x in input_spikes.items():
            if t < len(x):
                out[name][t] = x[t]
        for pre, post, d, typ, w in delivery:
            s = out[pre][t]
            if s.any():
                add = np.asarray(s.astype(np.float64) @ w)
                ring[post][(t + d) % L, typ] += add.astype(np.int64) if fixed else add
    if align:
        out = {n: s[lat.get(n, 0):lat.get(n, 0) + T] for n, s in out.items()}
        vout = {n: v[lat.get(n, 0):lat.get(n, 0) + T] for n, v in vout.items()}
    host = {n: out[r["source"]].astype(np.float64) @ r["weight"].T + r["bias"] for n, r in desc.readouts.items()}
    spikes = {n: out[n] for n in desc.outputs} | {n: s for n, s in out.items() if n not in desc.outputs}
    return SimResult(spikes, vout, sat, lat, host)


def spike_agreement(desc: Descriptor, input_spikes: np.ndarray | dict[str, np.ndarray]) -> dict[str, float]:
    """Fraction of (step, sample, neuron) entries where the fixed-point run and the float64 run of
    the same dequantised descriptor agree, per spiking population (1.0 = identical spikes)."""
    fx, fl = simulate(desc, input_spikes), simulate(desc, input_spikes, mode="float")
    return {n: float((fx.spikes[n] == fl.spikes[n]).mean()) for n, p in desc.populations.items()
            if p.kind == "lif"}


def _mul_u032(e: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``(e * a) >> 32`` exactly for ``e < 2^32`` and ``|a| < 2^33``, without int64 overflow."""
    hi, lo = e >> 16, e & 0xFFFF
    return (a * hi + ((a * lo) >> 16)) >> 16


def _constants(p, fixed: bool) -> dict[str, np.ndarray]:
    f = {k: v.astype(np.int64) for k, v in p.fixed.items()}
    c = {"shift_e": p.shifts[0], "shift_i": p.shifts[1], "v_rest_mv": p.params["v_rest"]}
    if fixed:
        return c | f
    real = {k: v / 2.0**15 for k, v in f.items() if k != "exp_tc"}
    real["exp_tc"] = f["exp_tc"] / 2.0**32
    if p.kind == "li":
        real["v_thresh"] = np.inf
    return c | real | {"scale_e": 2.0 ** (p.shifts[0] - 15), "scale_i": 2.0 ** (p.shifts[1] - 15)}


def _delivery(desc: Descriptor, fixed: bool) -> list[tuple[str, str, int, int, Any]]:
    """``[n_pre, n_post]`` integer weight matrices per (projection, delay, synapse type); sparse
    (scipy CSR) when scipy is installed, dense otherwise."""
    try:
        from scipy import sparse
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        sparse = None
    out = []
    for pr in desc.projections:
        s = desc.synapses(pr)
        shape = (desc.populations[pr.pre].size, desc.populations[pr.post].size)
        for d in np.unique(s["delay"]):
            for typ in (0, 1):
                sel = (s["delay"] == d) & (s["type"] == typ)
                if not sel.any():
                    continue
                w8 = s["weight"][sel].astype(np.float64)
                if sparse is not None:
                    w = sparse.csr_matrix((w8, (s["pre"][sel], s["post"][sel])), shape=shape)
                else:
                    w = np.zeros(shape)
                    np.add.at(w, (s["pre"][sel], s["post"][sel]), w8)
                out.append((pr.pre, pr.post, int(d), typ, w))
    return out
