r"""Spiking inference through a crossbar descriptor: analog tiles, converters, digital neurons.

Per read and tile (rows :math:`r`, columns :math:`c` of a projection's weights, see
:mod:`.projection`: a dense layer reads once per step and sample, a convolution once per output
position, on its input patch, after any digital pooling), with the tile's input :math:`x` (spikes
or values of the source, model units):

.. math::

    V &= v_{read}\,\mathrm{DAC}(x / x_{max}) \quad\text{(volts; } \mathrm{DAC}(u) =
         \mathrm{round}(u q)/q,\ q = 2^{b_{DAC}-1}-1,\ |u| \le 1) \\
    I &= V \tilde G^+ - V \tilde G^- + \epsilon, \quad
         \epsilon \sim \mathcal N\!\big(0,\ \sigma_r^2 (V^2 (\tilde G^{+})^2 + V^2 (\tilde G^{-})^2)\big)
         \quad\text{(uA; read noise)} \\
    y_c &= s_c\, x_{max}\, \mathrm{ADC}(I) / (v_{read}\, u), \qquad
         \mathrm{ADC}(I) = I_{max}\, \mathrm{round}(q\, I / I_{max}) / q

where :math:`\tilde G^\pm = \text{program}(G^\pm) \cdot (t_{read}/t_0)^{-\nu}` are the programmed
conductances (programming noise and stuck-at faults drawn once per ``seed``, drift per device at
``t_read`` seconds after programming, see :mod:`.device`). The read noise is the exact
distribution of independent per-device relative noise :math:`G (1 + \sigma_r \xi)` summed on a
column. Values beyond the DAC or ADC range saturate and are counted in the result. The layer's
current is the sum of its tiles' :math:`y` plus the digital bias, :math:`I^\ell_t`; a LIF layer
then runs :func:`neurogate.functional.lif_scan` (float64) on :math:`c\,I^\ell`
with its decay, threshold and reset; an LI layer records :math:`h_t = \beta h_{t-1} + c I_t`; a
readout layer outputs :math:`I^\ell_t` (neurogate's mean readout averages it over time).
``drift_compensation=True`` multiplies every tile output by :math:`(t_{read}/t_0)^{\nu_{mean}}`
(global drift compensation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ShapeError, ValueRangeError
from . import irdrop
from .descriptor import Descriptor

__all__ = ["SimResult", "programmed", "simulate"]


@dataclass
class SimResult:
    """``spikes[layer]`` ``[T, B, n]`` uint8 (LIF layers), ``v[layer]`` LI membranes ``[T, B, n]``,
    ``readouts[layer]`` per-step readout currents ``[T, B, n]`` (model units), and the number of
    DAC / ADC saturations."""

    spikes: dict[str, np.ndarray]
    v: dict[str, np.ndarray] = field(default_factory=dict)
    readouts: dict[str, np.ndarray] = field(default_factory=dict)
    dac_saturations: int = 0
    adc_saturations: int = 0
    outputs: list[str] = field(default_factory=list)

    @property
    def output(self) -> np.ndarray:
        """The first output: a readout's currents, an LI membrane, or a LIF layer's spikes."""
        name = self.outputs[0]
        for d in (self.readouts, self.v, self.spikes):
            if name in d:
                return d[name]
        raise KeyError(name)


def programmed(desc: Descriptor, seed: int = 0, t_read: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The conductances ``(G+, G-)`` (uS) each tile holds after programming with ``seed`` and
    drifting until ``t_read`` seconds (``None``: no drift); the targets for an ideal device. With
    ``array.wire_resistance`` they are the first-order effective conductances under IR drop
    (:func:`.irdrop.effective`)."""
    dev, r_wire = desc.device, desc.array.wire_resistance
    rng = np.random.default_rng([seed, 0])
    out = []
    for t in desc.tiles:
        pair = []
        for g in (t.g_pos, t.g_neg):
            g = dev.program(g, rng)
            if t_read is not None:
                g = g * dev.drift_factor(g.shape, t_read, rng)
            pair.append(g)
        if r_wire:
            pair = list(irdrop.split(irdrop.effective(irdrop.physical(*pair), r_wire), pair[0].shape, pair[1].shape))
        out.append((pair[0], pair[1]))
    return out


def simulate(desc: Descriptor, inputs: Any, seed: int = 0, t_read: float | None = None, *,
             drift_compensation: bool = False, batch: int = 64) -> SimResult:
    """Run ``desc`` on ``inputs`` ``[T, B, n_in]`` (spikes or values; a dict for several inputs).

    ``seed`` fixes the programming noise, stuck devices and drift exponents (one programming of
    the chip) and the read-noise sequence; ``t_read`` is the time since programming (s).
    Samples are simulated ``batch`` at a time (memory: a convolution reads ``T * batch * H' W'``
    patches at once); the read noise depends on ``seed`` and ``batch``.
    """
    if not isinstance(inputs, dict):
        inputs = {next(iter(desc.inputs)): inputs}
    acts: dict[str, np.ndarray] = {}
    for name, x in inputs.items():
        if name not in desc.inputs:
            raise ShapeError(f"input {name!r} is not an input of the descriptor ({list(desc.inputs)})")
        x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, np.float64)
        if x.ndim != 3 or x.shape[2] != desc.inputs[name]:
            raise ShapeError(f"input {name}: expected [T, B, {desc.inputs[name]}], got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueRangeError(f"input {name}: values must be finite")
        acts[name] = x
    missing = set(desc.inputs) - set(acts)
    if missing:
        raise ShapeError(f"inputs {sorted(missing)} are not given")
    T, B = next(iter(acts.values())).shape[:2]
    dev = desc.device
    if t_read is not None and t_read < dev.drift_t0:
        raise ValueRangeError(f"t_read must be >= t0 = {dev.drift_t0} s (seconds after programming), got {t_read}")
    if int(batch) != batch or batch < 1:
        raise ValueRangeError(f"batch must be an integer >= 1, got {batch}")
    conds = programmed(desc, seed, t_read)
    read_rng = np.random.default_rng([seed, 1])
    comp = (t_read / dev.drift_t0) ** dev.drift_nu if drift_compensation and t_read is not None else 1.0
    counts = {"dac": 0, "adc": 0}
    parts = [_forward(desc, {k: v[:, b0:b0 + batch] for k, v in acts.items()}, conds, comp, read_rng, counts)
             for b0 in range(0, B, batch)]
    res = SimResult({}, outputs=list(desc.outputs))
    for field_ in ("spikes", "v", "readouts"):
        for k in getattr(parts[0], field_):
            getattr(res, field_)[k] = np.concatenate([getattr(p, field_)[k] for p in parts], axis=1)
    res.dac_saturations, res.adc_saturations = counts["dac"], counts["adc"]
    return res


def _forward(desc: Descriptor, acts: dict[str, np.ndarray], conds: list[tuple[np.ndarray, np.ndarray]],
             comp: float, rng: np.random.Generator, counts: dict[str, int]) -> SimResult:
    """All layers on one batch of samples ``acts`` ``{input: [T, B, n]}``."""
    T, B = next(iter(acts.values())).shape[:2]
    res = SimResult({})
    for ly in desc.layers:
        cur = np.zeros((T * B, ly.size))
        for p in desc.projections_of(ly.name):
            x = p.source_input(acts[p.source].reshape(T * B, -1))
            y = np.zeros((T * B * p.reads_per_step, p.n_cols))
            for t, (gp, gn) in zip(desc.tiles, conds):
                if t.projection == p.id:
                    def product(v: np.ndarray, g: np.ndarray, p: Any = p, rows: tuple = t.rows) -> np.ndarray:
                        return p.product(v, g, rows)
                    y[:, t.cols[0]:t.cols[1]] += comp * t.scale * _tile(p.tile_input(x, t.rows), gp, gn, product,
                                                                         desc, rng, counts)
            cur += p.to_layer(y, T * B)
        cur = cur.reshape(T, B, ly.size) + ly.bias
        if ly.kind == "readout":
            res.readouts[ly.name] = cur
        elif ly.kind == "li":
            res.v[ly.name] = _leaky(cur * ly.params["gain"], ly.params["decay"])
        else:
            acts[ly.name] = _lif(cur * ly.params["gain"], ly.params["decay"], ly.params["threshold"], ly.reset)
            res.spikes[ly.name] = acts[ly.name].astype(np.uint8)
    return res


def _tile(x: np.ndarray, gp: np.ndarray, gn: np.ndarray, product: Any, desc: Descriptor,
          rng: np.random.Generator, counts: dict[str, int]) -> np.ndarray:
    """One tile's input ``x`` -> its columns for every read ``[reads, cols]``, in model units per
    column scale (before multiplying by ``s``); ``product(v, g)`` is the tile's :math:`V G`
    (:meth:`.Projection.product`). ``gn`` is ``[rows, cols]`` (differential pairs) or the
    reference column ``[rows, 1]``."""
    dev, arr = desc.device, desc.array
    unit = arr.unit(dev)
    u = x / arr.input_range
    if arr.dac_bits is not None:
        counts["dac"] += int(np.count_nonzero(np.abs(u) > 1))
        q = 2 ** (arr.dac_bits - 1) - 1
        u = np.rint(np.clip(u, -1, 1) * q) / q
    v = arr.v_read * u  # volts
    if gn.shape[1] == gp.shape[1]:  # differential pair: the two columns' currents subtract
        i = product(v, gp - gn)  # uA
        if dev.read_noise:
            var = product(v * v, dev.read_noise ** 2 * (gp * gp + gn * gn))
            i = i + np.sqrt(var) * rng.standard_normal(i.shape)
    else:  # reference column: every column minus the one (noisy) reference current
        g = np.concatenate([gp, gn], axis=1)
        i = product(v, g)
        if dev.read_noise:
            i = i + np.sqrt(product(v * v, dev.read_noise ** 2 * g * g)) * rng.standard_normal(i.shape)
        i = i[:, :-1] - i[:, -1:]
    if arr.adc_bits is not None:
        i_max = arr.adc_range if arr.adc_range is not None else arr.v_read * arr.rows * unit
        counts["adc"] += int(np.count_nonzero(np.abs(i) > i_max))
        q = 2 ** (arr.adc_bits - 1) - 1
        i = i_max * np.rint(np.clip(i / i_max, -1, 1) * q) / q
    return i * arr.input_range / (arr.v_read * unit)


def _lif(x: np.ndarray, decay: np.ndarray, threshold: np.ndarray, reset: str) -> np.ndarray:
    """Spikes of :func:`neurogate.functional.lif_scan` (float64) on ``x``: the fused CPU engine,
    whose forward equals the reference engine bit for bit (tested), 10x faster here."""
    import torch

    from ...functional import lif_scan

    with torch.no_grad():
        s = lif_scan(torch.from_numpy(x), decay=torch.from_numpy(decay), threshold=torch.from_numpy(threshold),
                     reset=reset)
    return s.numpy()


def _leaky(x: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """LI membrane :math:`h_t = \\beta h_{t-1} + x_t` (``x`` already multiplied by the gain)."""
    h, out = np.zeros(x.shape[1:]), np.empty_like(x)
    for t in range(x.shape[0]):
        h = decay * h + x[t]
        out[t] = h
    return out
