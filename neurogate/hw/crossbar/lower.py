r"""Lower an NIR graph onto resistive crossbar tiles plus a digital periphery.

Every projection's weight matrix :math:`W \in \mathbb{R}^{R \times C}` (rows = inputs, columns =
outputs; a convolution's kernel matrix, programmed once and read per output position, see
:mod:`.projection`; a chain that does not fit that form arrives unrolled as a sparse matrix from
:func:`neurogate.hw.spinnaker.graph.read_graph`) is cut into blocks of at most ``array.rows`` x
``array.cols``; an all-zero block takes no tile. In each tile, column :math:`j` gets the scale
:math:`s_j = \max_i |W_{ij}|` (1 for an all-zero column), and the differential pair

.. math::  G^\pm_{ij} = \mathrm{Q}\!\left(\frac{\max(\pm W_{ij}, 0)}{s_j}\right), \qquad
           \mathrm{Q}(f) = g_{min} + \frac{\mathrm{round}(f (N-1))}{N-1}\,(g_{max} - g_{min})

with :math:`N` the device's levels (no rounding for unlimited levels); or one device per weight
and a reference column (:class:`~.device.Array` ``differential=False``). The digital periphery keeps,
per layer, the bias (Affine ``b``) and the discrete neuron of :mod:`neurogate.hw.units`:
:math:`\beta` from :math:`\tau` and ``dt`` (``graph.metadata["integration"]``), the input gain
:math:`c = R(1-\beta)`, the threshold :math:`\vartheta` and the reset mode (node metadata). A
linear node feeding ``Output`` directly (neurogate's ``readout="mean"``) is a ``"readout"`` layer:
its weights are on tiles too, its per-step currents are the output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from ...errors import ConfigError, HardwareConstraintError
from .. import units
from ..spinnaker.graph import read_graph, source_shape
from .descriptor import CrossbarTile, Descriptor, DigitalLayer
from .device import Array, Device, device_from_dict, ideal
from .projection import Projection, structured_projections

__all__ = ["lower", "program_tile"]


def lower(graph: Any, device: Device | str | None = None, array: Array | None = None, budget: int | None = None,
          *, dt: float | None = None) -> Descriptor:
    """Map an NIR graph (Input/Affine/Linear/Conv/Flatten/Pool/LIF/LI/Output) onto crossbar tiles.

    Args:
        graph: a ``nir.NIRGraph`` (e.g. from :func:`neurogate.hw.to_nir`).
        device: a :class:`Device`, a preset name (``"rram"``, ``"pcm"``, ``"ideal"``) or a
            :meth:`Device.to_dict`; default :func:`ideal`.
        array: the tile and converter configuration (default ``Array()``: 256 x 256, ideal converters).
        budget: the number of tiles available (``None`` = unlimited); a weight matrix or network
            needing more raises :class:`~neurogate.errors.HardwareConstraintError`.
        dt: seconds per step (default ``graph.metadata["dt"]``).
    """
    device = ideal() if device is None else device if isinstance(device, Device) else device_from_dict(device)
    array = array or Array()
    meta = getattr(graph, "metadata", None) or {}
    dt = float(dt if dt is not None else meta.get("dt", 0) or 0)
    if dt <= 0:
        raise ConfigError("lower: the step dt is unknown; pass dt=... or set graph.metadata['dt']")
    if budget is not None and (int(budget) != budget or budget < 1):
        raise ConfigError(f"lower: budget must be a number of tiles >= 1 or None, got {budget}")
    integration = units.check_integration(meta.get("integration", "exact"))
    sources, targets, outputs, readouts = read_graph(graph, dt)
    if not targets and not readouts:
        raise ConfigError("lower: the graph has no LIF, LI or readout node to map")
    inputs = {n: s for n, s in sources.items() if n not in {t.name for t in targets}}

    layers: list[DigitalLayer] = []
    projections: list[Projection] = []
    matrices: list[tuple[str, str, Any]] = []  # (layer, source, sparse [n_cols, n_rows]) per projection
    for t, kind in [(t, type(t.node).__name__.lower()) for t in targets] + [(r, "readout") for r in readouts]:
        for term in t.terms:
            if term.dpre.any() or term.dpost.any():
                raise HardwareConstraintError(t.name, "synaptic delays on a crossbar", "a Delay node",
                                              "remove Delay nodes (delays are not implemented on this target)")
            if term.source == t.name:
                raise HardwareConstraintError(t.name, "recurrent connections on a crossbar", "self-connection",
                                              "use a feed-forward network")
        structured = structured_projections(
            graph, t.name, lambda n: source_shape(graph.nodes[n], lambda: sources[n]))
        if structured is None:  # unrolled: one matrix per term
            parts = [(term.source, {"kind": "matrix", "pre": [], "conv": None}, term.matrix) for term in t.terms]
        else:
            parts = [(src, spec, sparse.csr_matrix(w.T)) for src, spec, w, _ in structured]
        for src, spec, m in parts:
            projections.append(Projection(len(projections), t.name, src, spec["kind"], m.shape[1], m.shape[0],
                                          spec["pre"], spec["conv"]))
            matrices.append((t.name, src, m))
        params, reset = ({}, "none") if kind == "readout" else _neuron(t.name, t.node, t.size, dt, integration,
                                                                     meta.get("reset", "zero"))
        srcs = list(dict.fromkeys(term.source for term in t.terms))
        layers.append(DigitalLayer(t.name, kind, t.size, srcs, np.asarray(t.bias, np.float64).copy(), params, reset))

    blocks = [(name, src, m, _blocks(m, array), k) for k, (name, src, m) in enumerate(matrices)]
    for name, src, _, bl, _ in blocks:
        if budget is not None and len(bl) > budget:
            raise HardwareConstraintError(name, f"tile budget ({budget} tiles of {array.rows}x{array.cols})",
                                          f"{len(bl)} tiles for the weights from {src}",
                                          f"use budget >= {len(bl)} or larger tiles (Array(rows=..., cols=...))")
    total = sum(len(b[3]) for b in blocks)
    if budget is not None and total > budget:
        raise HardwareConstraintError("network", f"tile budget ({budget} tiles)", f"{total} tiles",
                                      f"use budget >= {total} or larger tiles")
    tiles: list[CrossbarTile] = []
    for name, src, m, bl, k in blocks:
        for r0, r1, c0, c1 in bl:
            w = m[c0:c1, r0:r1].toarray().T  # [rows, cols] = [inputs, outputs]
            g_pos, g_neg, scale = array.program(w, device)
            tiles.append(CrossbarTile(len(tiles), name, src, (r0, r1), (c0, c1), g_pos, g_neg, scale, k))
    outs = outputs + [r.name for r in readouts]
    desc = Descriptor(device, array, dt, inputs, layers, tiles, outs or [layers[-1].name], budget, projections)
    desc.validate()
    return desc


def program_tile(w: np.ndarray, device: Device, array: Array | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(G+, G-, s)`` of a weight block ``w`` ``[rows, cols]``: target conductances (uS) on the
    device's levels and the per-column scales (:meth:`Array.program`; default differential pairs)."""
    return (array or Array()).program(w, device)


def _blocks(m: Any, array: Array) -> list[tuple[int, int, int, int]]:
    """``(row_lo, row_hi, col_lo, col_hi)`` of every non-empty tile-sized block of ``m.T``."""
    n_out, n_in = m.shape
    coo = m.tocoo()
    keep = coo.data != 0
    occupied = set(zip((coo.col[keep] // array.rows).tolist(), (coo.row[keep] // array.cols).tolist()))
    return [(i * array.rows, min((i + 1) * array.rows, n_in), j * array.cols, min((j + 1) * array.cols, n_out))
            for i, j in sorted(occupied)]


def _neuron(name: str, node: Any, n: int, dt: float, integration: str, default_reset: str
            ) -> tuple[dict[str, np.ndarray], str]:
    """Discrete ``decay``, input ``gain`` and ``threshold`` (inf for LI) of a NIR LIF/LI node."""
    def arr(v: Any) -> np.ndarray:
        a = np.asarray(0.0 if v is None else v, np.float64).reshape(-1)
        if a.size not in (1, n):
            raise ConfigError(f"{name}: parameter of size {a.size} for a layer of {n} neurons")
        return np.broadcast_to(a, (n,)).copy()

    tau, r = arr(node.tau), arr(node.r)
    if np.any(tau <= 0) or not np.all(np.isfinite(tau)):
        raise HardwareConstraintError(name, "finite positive tau", float(tau.min()), "use a LIF with a finite tau")
    if np.any(arr(node.v_leak) != 0):
        raise HardwareConstraintError(name, "v_leak = 0 in the digital neuron", "non-zero v_leak",
                                      "export the model with neurogate (v_leak = 0) or fold v_leak into a bias")
    decay = units.tau_to_decay(tau, dt, integration)
    params = {"decay": decay, "gain": units.r_to_gain(r, decay)}
    md = getattr(node, "metadata", None) or {}
    if type(node).__name__ == "LIF":
        if np.any(arr(node.v_reset) != 0):
            raise HardwareConstraintError(name, "v_reset = 0 in the digital neuron", "non-zero v_reset",
                                          "use reset to 0 or subtractive reset")
        params["threshold"] = arr(node.v_threshold)
        reset = md.get("reset", default_reset)
    else:
        params["threshold"] = np.full(n, np.inf)
        reset = "none"
    if reset not in ("zero", "subtract", "none"):
        raise ConfigError(f"{name}: reset {reset!r} is not 'zero', 'subtract' or 'none'")
    return params, reset
