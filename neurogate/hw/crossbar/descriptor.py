r"""The crossbar descriptor: tiles of programmed conductances plus the digital periphery, as data.

``Descriptor.save(dir)`` writes ``descriptor.json`` (schema version, device, array, layers with
their neuron parameters, tile map, utilisation) and ``arrays.npz`` (per tile ``tile{k}.g_pos``,
``tile{k}.g_neg`` ``[rows_used, cols_used]`` in uS and ``tile{k}.scale`` ``[cols_used]`` in model
units; per layer ``{name}.bias`` and neuron parameters). ``Descriptor.load(dir)`` reads the arrays
with ``allow_pickle=False`` and validates them: a conductance outside :math:`[g_{min}, g_{max}]`,
a tile larger than the array or a tile count over the budget is refused naming the tile.

Weights reach the tiles through *projections* (:mod:`.projection`): a dense matrix, or a
convolution kernel programmed once and read per output position (weight-stationary), each with
optional digital pooling before it. A tile ``k`` holds rows ``row_lo:row_hi`` and columns
``col_lo:col_hi`` of one projection's weight matrix; the layer's input current is the sum over its
tiles of :math:`s \odot (V G^+ - V G^-)/(v_{read} u)` on those columns (:math:`u` =
:meth:`Array.unit`; with a reference column ``G-`` is that column, ``[rows, 1]``).
Layer kinds: ``"lif"`` (spiking), ``"li"`` (leaky readout, membrane recorded), ``"readout"``
(per-step currents :math:`W s_t + b`, neurogate's ``readout="mean"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, HardwareConstraintError
from ..descriptor import read_descriptor, write_descriptor
from .device import Array, Device, device_from_dict
from .projection import Projection

__all__ = ["SCHEMA_VERSION", "CrossbarTile", "Descriptor", "DigitalLayer"]

SCHEMA_VERSION = 2
KINDS = ("lif", "li", "readout")
NEURON_FIELDS = ("decay", "threshold", "gain")
FIX = "re-export with neurogate.hw.crossbar.lower(...) instead of editing the descriptor by hand"


@dataclass
class CrossbarTile:
    """One physical array: a block of one projection's weight matrix as conductances (uS)."""

    id: int
    layer: str
    source: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    g_pos: np.ndarray
    g_neg: np.ndarray
    scale: np.ndarray
    projection: int = 0

    def map_entry(self) -> dict[str, Any]:
        return {"id": self.id, "layer": self.layer, "source": self.source, "projection": self.projection,
                "rows": list(self.rows), "cols": list(self.cols)}


@dataclass
class DigitalLayer:
    r"""A layer's digital periphery: ``bias`` and, for ``lif``/``li``, the discrete neuron
    :math:`h_t = \beta v_{t-1} + c I_t`, spike :math:`h_t \ge \vartheta`, then ``reset``."""

    name: str
    kind: str
    size: int
    sources: list[str]
    bias: np.ndarray
    params: dict[str, np.ndarray] = field(default_factory=dict)
    reset: str = "zero"


@dataclass
class Descriptor:
    device: Device
    array: Array
    dt: float
    inputs: dict[str, int]
    layers: list[DigitalLayer]
    tiles: list[CrossbarTile]
    outputs: list[str]
    budget: int | None = None
    projections: list[Projection] = field(default_factory=list)

    # ----------------------------------------------------------------- views
    @property
    def tile_map(self) -> list[dict[str, Any]]:
        """``[{id, layer, source, rows: [lo, hi], cols: [lo, hi]}]`` in tile order."""
        return [t.map_entry() for t in self.tiles]

    @property
    def utilisation(self) -> dict[str, float]:
        """Cells used / cells of the tiles placed, overall and per layer."""
        per: dict[str, list[int]] = {}
        for t in self.tiles:
            used = (t.rows[1] - t.rows[0]) * (t.cols[1] - t.cols[0])
            a = per.setdefault(t.layer, [0, 0])
            a[0] += used
            a[1] += self.array.cells
        total = [sum(v[0] for v in per.values()), sum(v[1] for v in per.values())]
        out = {"overall": total[0] / total[1] if total[1] else 0.0}
        return out | {k: v[0] / v[1] for k, v in per.items()}

    def layer(self, name: str) -> DigitalLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ConfigError(f"no layer {name!r}; layers are {[x.name for x in self.layers]}")

    def projections_of(self, layer: str, source: str | None = None) -> list[Projection]:
        """The projections into ``layer`` (from ``source`` only, if given)."""
        return [p for p in self.projections if p.layer == layer and source in (None, p.source)]

    def weights(self, layer: str, source: str | None = None) -> np.ndarray:
        """The dequantised weight matrix ``[n_rows, n_cols]`` the tiles of ``layer``'s projection from
        ``source`` (default: its first) hold, ideal read (a convolution's kernel matrix)."""
        ly = self.layer(layer)
        src = source or ly.sources[0]
        projs = self.projections_of(layer, src)
        if not projs:
            raise ConfigError(f"layer {layer!r} has no projection from {src!r}")
        w = np.zeros((projs[0].n_rows, projs[0].n_cols))
        unit = self.array.unit(self.device)
        for t in self.tiles:
            if t.projection == projs[0].id:
                w[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]] += (t.g_pos - t.g_neg) * t.scale / unit
        return w

    def simulate(self, inputs: Any, **options: Any) -> Any:
        """:func:`neurogate.hw.crossbar.simulate` on this descriptor."""
        from .simulate import simulate

        return simulate(self, inputs, **options)

    def summary(self) -> str:
        lines = [(f"crossbar on {self.device.name} ({self.device.g_min}..{self.device.g_max} uS, levels "
                  f"{self.device.levels or 'unlimited'}), tiles {self.array.rows}x{self.array.cols}: "
                  f"{len(self.tiles)} tiles, utilisation {self.utilisation['overall']:.1%}")]
        for ly in self.layers:
            n = sum(t.layer == ly.name for t in self.tiles)
            how = ", ".join(f"{p.kind} {p.n_rows}x{p.n_cols}" + (f" x {p.reads_per_step} reads" if p.kind == "conv" else "")
                            for p in self.projections_of(ly.name))
            lines.append(f"  {ly.name:<12} {ly.kind:<8} {ly.size:>6} neurons  {n:>4} tiles  "
                         f"utilisation {self.utilisation.get(ly.name, 0.0):.1%}  ({how})")
        return "\n".join(lines)

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        """Refuse anything the array cannot hold (HardwareConstraintError naming the tile)."""
        d, a = self.device, self.array
        if self.budget is not None and len(self.tiles) > self.budget:
            raise HardwareConstraintError("network", f"tile budget ({self.budget})", len(self.tiles),
                                          "raise budget= or use larger arrays")
        sizes = dict(self.inputs) | {x.name: x.size for x in self.layers}
        projs = {p.id: p for p in self.projections}
        for p in self.projections:
            if p.source not in sizes or p.layer not in sizes:
                raise ConfigError(f"projection {p.id}: source {p.source!r} or layer {p.layer!r} is unknown; {FIX}")
            p.validate(sizes[p.source], sizes[p.layer])
        tol = 1e-9 * d.g_max
        for t in self.tiles:
            where = f"tile {t.id} ({t.layer})"
            nr, nc = t.rows[1] - t.rows[0], t.cols[1] - t.cols[0]
            if not (0 < nr <= a.rows and 0 < nc <= a.cols):
                raise HardwareConstraintError(where, f"array size {a.rows}x{a.cols}", f"{nr}x{nc}", FIX)
            p = projs.get(t.projection)
            if p is None or (p.layer, p.source) != (t.layer, t.source):
                raise ConfigError(f"{where}: projection {t.projection} is unknown or does not join "
                                  f"{t.source!r} to {t.layer!r}; {FIX}")
            if not (0 <= t.rows[0] < t.rows[1] <= p.n_rows and 0 <= t.cols[0] < t.cols[1] <= p.n_cols):
                raise ConfigError(f"{where}: rows {t.rows} / cols {t.cols} outside projection {p.id}'s "
                                  f"{p.n_rows}x{p.n_cols} weights; {FIX}")
            for g, nm, shape in ((t.g_pos, "g_pos", (nr, nc)), (t.g_neg, "g_neg", (nr, nc if a.differential else 1))):
                if g.shape != shape or not np.all(np.isfinite(g)):
                    raise ConfigError(f"{where}: {nm} has shape {g.shape} (expected {shape}) or is not finite; {FIX}")
                if g.size and (g.min() < d.g_min - tol or g.max() > d.g_max + tol):
                    raise HardwareConstraintError(
                        where, f"conductance range [{d.g_min}, {d.g_max}] uS of {nm}",
                        f"{g.min():.6g}..{g.max():.6g} uS", FIX)
            if t.scale.shape != (nc,) or np.any(t.scale <= 0) or not np.all(np.isfinite(t.scale)):
                raise ConfigError(f"{where}: column scales must be {nc} finite values > 0; {FIX}")
        for ly in self.layers:
            if ly.kind not in KINDS:
                raise ConfigError(f"layer {ly.name}: kind {ly.kind!r} is not one of {KINDS}")
            if ly.bias.shape != (ly.size,):
                raise ConfigError(f"layer {ly.name}: bias shape {ly.bias.shape} != ({ly.size},); {FIX}")
            if ly.kind != "readout":
                for f in NEURON_FIELDS:
                    if np.asarray(ly.params.get(f)).shape != (ly.size,):
                        raise ConfigError(f"layer {ly.name}: neuron parameter {f} missing or not of size {ly.size}")
                if np.any((ly.params["decay"] < 0) | (ly.params["decay"] > 1)):
                    raise ConfigError(f"layer {ly.name}: decay outside [0, 1]; {FIX}")
                if ly.reset not in ("zero", "subtract", "none"):
                    raise ConfigError(f"layer {ly.name}: reset {ly.reset!r} unknown")

    # ----------------------------------------------------------------- disk
    def save(self, directory: str | Path) -> Path:
        """Write ``descriptor.json`` and ``arrays.npz`` into ``directory``; returns the directory."""
        self.validate()
        arrays: dict[str, np.ndarray] = {}
        for t in self.tiles:
            arrays |= {f"tile{t.id}.g_pos": t.g_pos, f"tile{t.id}.g_neg": t.g_neg, f"tile{t.id}.scale": t.scale}
        for i, ly in enumerate(self.layers):
            arrays[f"layer{i}.bias"] = ly.bias
            arrays |= {f"layer{i}.{k}": v for k, v in ly.params.items()}
        meta = {"schema_version": SCHEMA_VERSION, "target": "crossbar", "device": self.device.to_dict(),
                "array": self.array.to_dict(), "dt": self.dt, "inputs": self.inputs, "outputs": self.outputs,
                "budget": self.budget, "utilisation": self.utilisation, "tile_map": self.tile_map,
                "projections": [p.to_dict() for p in self.projections],
                "layers": [{"name": ly.name, "kind": ly.kind, "size": ly.size, "sources": ly.sources,
                            "reset": ly.reset, "params": sorted(ly.params)} for ly in self.layers]}
        return write_descriptor(directory, meta, arrays)

    @classmethod
    def load(cls, directory: str | Path) -> Descriptor:
        """Read and validate a descriptor written by :meth:`save`."""
        path = Path(directory)
        meta, arr = read_descriptor(path, "crossbar", SCHEMA_VERSION, FIX)
        try:
            device = device_from_dict(meta["device"])
            array = Array(**meta["array"])
            tiles = [CrossbarTile(int(e["id"]), e["layer"], e["source"], tuple(e["rows"]), tuple(e["cols"]),
                                  arr[f"tile{e['id']}.g_pos"], arr[f"tile{e['id']}.g_neg"],
                                  arr[f"tile{e['id']}.scale"], int(e["projection"])) for e in meta["tile_map"]]
            projections = [Projection.from_dict(e) for e in meta["projections"]]
            layers = [DigitalLayer(e["name"], e["kind"], int(e["size"]), list(e["sources"]),
                                   arr[f"layer{i}.bias"], {k: arr[f"layer{i}.{k}"] for k in e["params"]},
                                   e["reset"]) for i, e in enumerate(meta["layers"])]
            desc = cls(device, array, float(meta["dt"]), {k: int(v) for k, v in meta["inputs"].items()},
                       layers, tiles, list(meta["outputs"]), meta.get("budget"), projections)
        except (KeyError, TypeError) as err:
            raise ConfigError(f"{path}: descriptor field or array {err} missing or malformed; {FIX}") from None
        desc.validate()
        return desc
