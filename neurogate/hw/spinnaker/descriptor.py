"""The SpiNNaker descriptor: what a lowered network *is* on the machine, as data on disk.

``Descriptor.save(dir)`` writes ``descriptor.json`` (schema version, machine, populations with
their PyNN ``IF_curr_exp`` parameters, projections, placement, keys, router tables, resources and
the quantisation report) and ``arrays.npz`` (parameters, fixed-point constants and synaptic rows as
32-bit words, see :mod:`.quantise`). ``Descriptor.load(dir)`` reads the arrays with
``allow_pickle=False`` and validates every limit of the machine; a descriptor that breaks one is
refused with a :class:`~neurogate.errors.HardwareConstraintError` naming the field.

Synaptic rows of a projection: row ``r`` holds the synapses from presynaptic neuron
``row_pre[r]`` to the core slice ``row_slice[r]`` of the postsynaptic population that leave
through delay-extension stage ``row_stage[r]`` (0 = directly); its words are
``words[row_offsets[r]:row_offsets[r+1]]``. Total delay = ``row_stage * max_core_delay + delay``.

``always_on``: input populations that spike at every step (the bias source of ``bias="synapse"``).
``readouts``: linear readouts computed on the host from recorded spikes (neurogate's mean readout:
per-step currents ``W s_t + b``, float64), stored as ``readout{i}.weight`` / ``.bias``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, HardwareConstraintError
from ..descriptor import read_descriptor, write_descriptor
from .machine import Machine, machine_from_dict
from .quantise import MAX_SHIFT, decode_words

__all__ = ["SCHEMA_VERSION", "Descriptor", "Population", "Projection"]

SCHEMA_VERSION = 1
KINDS = ("input", "lif", "li")
ROW_FIELDS = ("words", "row_offsets", "row_pre", "row_slice", "row_stage")
FIX = "re-export with neurogate.hw.spinnaker.lower(...) instead of editing the descriptor by hand"


@dataclass
class Population:
    """A population: ``params`` in PyNN units (mV, ms, nF, nA), ``fixed`` as the simulator's integers.

    ``v_scale`` (mV per model unit) and ``params["v_leak_model"]`` convert a membrane back to the
    model's units: ``v = (V - v_rest) / v_scale + v_leak``. ``shifts`` = (excitatory, inhibitory).
    """

    name: str
    kind: str
    size: int
    slice_sizes: list[int]
    v_scale: float = 1.0
    shifts: list[int] = field(default_factory=lambda: [0, 0])
    params: dict[str, np.ndarray] = field(default_factory=dict)
    fixed: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def slice_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.slice_sizes)[:-1]]).astype(np.int64)


@dataclass
class Projection:
    """Synaptic rows from ``pre`` to ``post`` plus the quantisation report of this projection."""

    name: str
    pre: str
    post: str
    words: np.ndarray
    row_offsets: np.ndarray
    row_pre: np.ndarray
    row_slice: np.ndarray
    row_stage: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class Descriptor:
    machine: Machine
    reset: str
    dt: float | None
    populations: dict[str, Population]
    projections: list[Projection]
    inputs: list[str]
    outputs: list[str]
    mapping: dict[str, Any] = field(default_factory=dict)
    readouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    always_on: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    # ------------------------------------------------------------------ queries
    def synapses(self, proj: Projection) -> dict[str, np.ndarray]:
        """Decoded synapses of ``proj``: ``pre``, ``post`` (population indices), ``weight``, ``type``,
        ``delay`` (total steps)."""
        d = decode_words(proj.words)
        lengths = np.diff(proj.row_offsets)
        post_pop = self.populations[proj.post]
        start = post_pop.slice_starts[np.repeat(proj.row_slice, lengths)]
        stage = np.repeat(proj.row_stage, lengths).astype(np.int64)
        return {"pre": np.repeat(proj.row_pre, lengths).astype(np.int64), "post": start + d["index"],
                "weight": d["weight"], "type": d["type"],
                "delay": stage * self.machine.max_core_delay + d["delay"]}

    def dequantised_weights(self, proj: Projection) -> np.ndarray:
        """Dense signed weights in nA, shape ``[n_post, n_pre]``, as the hardware applies them."""
        s = self.synapses(proj)
        post = self.populations[proj.post]
        scale = 2.0 ** (np.asarray(post.shifts)[s["type"]] - 15)
        w = np.zeros((post.size, self.populations[proj.pre].size))
        np.add.at(w, (s["post"], s["pre"]), np.where(s["type"] == 1, -1.0, 1.0) * s["weight"] * scale)
        return w

    def simulate(self, input_spikes: Any, **options: Any) -> Any:
        """Run the bit-accurate simulator: :func:`neurogate.hw.spinnaker.simulate.simulate`."""
        from .simulate import simulate

        return simulate(self, input_spikes, **options)

    def summary(self) -> str:
        """Human-readable report: populations, projections with quantisation, resources."""
        lines = [f"{self.machine.name} descriptor (schema {self.schema_version}), reset={self.reset}, dt={self.dt}"]
        for p in self.populations.values():
            lines.append(f"  population {p.name}: {p.kind}, {p.size} neurons on {len(p.slice_sizes)} cores, "
                         f"shifts exc/inh {p.shifts[0]}/{p.shifts[1]}")
        for pr in self.projections:
            r = pr.report
            lines.append(f"  projection {pr.name}: {r.get('excitatory', 0)} exc + {r.get('inhibitory', 0)} inh "
                         f"synapses in {len(pr.row_pre)} rows, {r.get('underflow_to_zero', 0)} underflowed to 0, "
                         f"max |error| {r.get('max_abs_error_nA', 0):.3g} nA, max delay {r.get('max_delay_steps', 1)}")
        res = self.mapping.get("resources", {})
        lines.append("  resources: " + ", ".join(f"{k} {v}" for k, v in res.items()))
        return "\n".join(lines)

    # ------------------------------------------------------------------ disk
    def save(self, directory: str | Path) -> Path:
        path = Path(directory)
        arrays: dict[str, np.ndarray] = {}
        pops = []
        for i, p in enumerate(self.populations.values()):
            for group in ("params", "fixed"):
                for k, v in getattr(p, group).items():
                    arrays[f"pop{i}.{group}.{k}"] = np.asarray(v)
            pops.append({"name": p.name, "kind": p.kind, "size": p.size, "slice_sizes": list(p.slice_sizes),
                         "v_scale": p.v_scale, "shifts": list(p.shifts),
                         "params": sorted(p.params), "fixed": sorted(p.fixed)})
        projs = []
        for i, pr in enumerate(self.projections):
            for k in ROW_FIELDS:
                arrays[f"proj{i}.{k}"] = getattr(pr, k)
            projs.append({"name": pr.name, "pre": pr.pre, "post": pr.post, "report": pr.report})
        host = {}
        for i, (name, r) in enumerate(self.readouts.items()):
            arrays[f"readout{i}.weight"], arrays[f"readout{i}.bias"] = r["weight"], r["bias"]
            host[name] = {"source": r["source"], "mode": r["mode"], "index": i}
        meta = {"schema_version": self.schema_version, "target": "spinnaker",
                "machine": self.machine.to_dict(), "reset": self.reset, "dt": self.dt,
                "inputs": self.inputs, "outputs": self.outputs, "populations": pops,
                "projections": projs, "mapping": self.mapping, "readouts": host,
                "always_on": self.always_on}
        return write_descriptor(path, meta, arrays)

    @classmethod
    def load(cls, directory: str | Path) -> Descriptor:
        path = Path(directory)
        meta, arrays = read_descriptor(path, "spinnaker", SCHEMA_VERSION, FIX)
        try:
            pops = {}
            for i, p in enumerate(meta["populations"]):
                pops[p["name"]] = Population(
                    p["name"], p["kind"], int(p["size"]), [int(n) for n in p["slice_sizes"]],
                    float(p["v_scale"]), [int(s) for s in p["shifts"]],
                    {k: arrays[f"pop{i}.params.{k}"] for k in p["params"]},
                    {k: arrays[f"pop{i}.fixed.{k}"] for k in p["fixed"]})
            projs = [Projection(pr["name"], pr["pre"], pr["post"],
                                *(arrays[f"proj{i}.{k}"] for k in ROW_FIELDS), pr.get("report", {}))
                     for i, pr in enumerate(meta["projections"])]
            host = {n: {"source": r["source"], "mode": r["mode"], "weight": arrays[f"readout{r['index']}.weight"],
                        "bias": arrays[f"readout{r['index']}.bias"]} for n, r in meta.get("readouts", {}).items()}
            desc = cls(machine_from_dict(meta["machine"]), meta["reset"], meta["dt"], pops, projs,
                       list(meta["inputs"]), list(meta["outputs"]), meta.get("mapping", {}), host,
                       list(meta.get("always_on", [])))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{path}: descriptor is missing or has a malformed field ({err!r}); {FIX}") from err
        desc.validate()
        return desc

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every machine limit; raise naming the offending field."""
        m = self.machine
        if self.reset not in ("subtract", "zero"):
            raise ConfigError(f"reset {self.reset!r} is not 'subtract' or 'zero'")
        for name in (*self.inputs, *self.outputs, *self.always_on):
            if name not in self.populations:
                raise ConfigError(f"inputs/outputs name an unknown population {name!r}")
        for name, r in self.readouts.items():
            src = self.populations.get(r["source"])
            if src is None or r["weight"].ndim != 2 or r["weight"].shape[1] != src.size \
                    or r["bias"].shape != (r["weight"].shape[0],):
                raise ConfigError(f"readout {name}: weight/bias do not fit source {r['source']!r}")
        for p in self.populations.values():
            if p.kind not in KINDS:
                raise ConfigError(f"{p.name}: kind {p.kind!r} not in {KINDS}")
            big = max(p.slice_sizes, default=0)
            if big > m.max_neurons_per_core or min(p.slice_sizes, default=1) < 1:
                raise HardwareConstraintError(p.name, f"slice_sizes: neurons per core "
                                              f"({m.max_neurons_per_core})", big, FIX)
            if sum(p.slice_sizes) != p.size:
                raise ConfigError(f"{p.name}: slice_sizes sum to {sum(p.slice_sizes)}, size is {p.size}")
            if any(not 0 <= s <= MAX_SHIFT for s in p.shifts):
                raise HardwareConstraintError(p.name, f"shifts: ring-buffer shift 0..{MAX_SHIFT}", p.shifts, FIX)
            for k, v in {**p.params, **p.fixed}.items():
                if v.shape != (p.size,):
                    raise ConfigError(f"{p.name}: parameter {k} has shape {v.shape}, expected ({p.size},)")
            for k, v in p.fixed.items():
                lo, hi = (0, 2**32 - 1) if k == "exp_tc" else (-(2**31), 2**31 - 1)  # u0.32 / s16.15
                if v.dtype.kind not in "iu" or (v.size and (v.min() < lo or v.max() > hi)):
                    bad = v.dtype if v.dtype.kind not in "iu" else int(v.max() if v.max() > hi else v.min())
                    raise HardwareConstraintError(p.name, f"fixed.{k}: range {lo}..{hi}", bad, FIX)
        sums: dict[tuple[str, int], np.ndarray] = {}
        for pr in self.projections:
            self._validate_rows(pr, sums)
        for (post, t), total in sums.items():
            if total.max(initial=0) > m.ring_buffer_max:
                raise HardwareConstraintError(
                    post, f"words.weight: worst-case ring-buffer sum ({m.ring_buffer_max}) of "
                    f"{'excitatory' if t == 0 else 'inhibitory'} inputs (weight overflow)", int(total.max()), FIX)
        for c in self.mapping.get("placement", []):
            x, y = c["chip"]
            if (c["neurons"] > m.max_neurons_per_core or not m.monitor_cores <= c["core"] < m.cores_per_chip
                    or not (0 <= x < m.chip_grid[0] and 0 <= y < m.chip_grid[1] * m.boards)):
                raise HardwareConstraintError(c["population"], "placement: chip/core/neurons within the machine",
                                              c, FIX)
        for chip, entries in self.mapping.get("routing", {}).items():
            if len(entries) > m.router_entries:
                raise HardwareConstraintError(f"chip {chip}", f"routing: router entries ({m.router_entries})",
                                              len(entries), FIX)

    def _validate_rows(self, pr: Projection, sums: dict[tuple[str, int], np.ndarray]) -> None:
        m = self.machine
        if pr.pre not in self.populations or pr.post not in self.populations:
            raise ConfigError(f"{pr.name}: pre/post {pr.pre!r}/{pr.post!r} is not a population")
        pre, post = self.populations[pr.pre], self.populations[pr.post]
        if pr.words.dtype != np.uint32:
            raise ConfigError(f"{pr.name}: words must be uint32, got {pr.words.dtype}")
        off = pr.row_offsets.astype(np.int64)
        n_rows = len(pr.row_pre)
        if (off.shape != (n_rows + 1,) or off[0] != 0 or off[-1] != len(pr.words) or np.any(np.diff(off) < 0)
                or len(pr.row_slice) != n_rows or len(pr.row_stage) != n_rows):
            raise ConfigError(f"{pr.name}: row_offsets / row arrays are inconsistent; {FIX}")
        checks = (("row_pre", pr.row_pre, 0, pre.size - 1),
                  ("row_slice", pr.row_slice, 0, len(post.slice_sizes) - 1),
                  ("row_stage: delay-extension stage", pr.row_stage, 0, m.max_stages),
                  ("row length: synapses per row", np.diff(off), 0, m.max_row_length))
        for fname, v, lo, hi in checks:
            if v.size and (v.min() < lo or v.max() > hi):
                bad = v.max() if v.max() > hi else v.min()
                raise HardwareConstraintError(pr.name, f"{fname} in {lo}..{hi}", int(bad), FIX)
        d = decode_words(pr.words)
        lengths = np.diff(off)
        slice_size = np.repeat(np.asarray(post.slice_sizes)[pr.row_slice], lengths)
        total_delay = np.repeat(pr.row_stage.astype(np.int64), lengths) * m.max_core_delay + d["delay"]
        for fname, bad in (("words.spare bits (must be 0)", d["spare"] != 0),
                           ("words.synapse type (0 exc, 1 inh)", d["type"] > 1),
                           (f"words.delay: on-core delay ({m.max_core_delay})", d["delay"] > m.max_core_delay),
                           (f"total delay ({m.max_delay} steps)", total_delay > m.max_delay),
                           (f"words.weight ({m.weight_max})", d["weight"] > m.weight_max),
                           ("words.neuron index (< slice size)", d["index"] >= slice_size)):
            if np.any(bad):
                i = int(np.argmax(bad))
                raise HardwareConstraintError(pr.name, f"{fname} (word {i})", hex(int(pr.words[i])), FIX)
        post_idx = post.slice_starts[np.repeat(pr.row_slice, lengths)] + d["index"]
        for t in (0, 1):
            sel = d["type"] == t
            acc = sums.setdefault((pr.post, t), np.zeros(post.size, np.int64))
            acc += np.bincount(post_idx[sel], weights=d["weight"][sel], minlength=post.size).astype(np.int64)
