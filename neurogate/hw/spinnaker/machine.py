"""SpiNNaker-like machine descriptions: the limits a lowered network must respect.

A :class:`Machine` is a frozen dataclass; :data:`SPINNAKER1` and :data:`SPINNAKER2` are presets and
a custom machine is ``dataclasses.replace(SPINNAKER1, boards=2)`` or a new ``Machine(...)``.

Sizes (SpiNNaker1, SpiN-5 board): 18 ARM cores per chip of which 1 is the monitor, 48 chips per
board laid out here as an 8 x 6 mesh, at most 256 neurons per core (the neuron-index field of a
synaptic word is 8 bits), at most 256 synapses per synaptic row, 1023 multicast router entries per
chip, 64 KiB DTCM per core, a 1 ms machine time step, 16-bit unsigned weights, on-core delays of
1..16 steps and delay-extension stages up to 144 steps in total.
SpiNNaker2: 152 processing elements per chip, int8 weights (magnitude <= 127, sign from the
receptor), 16384 router entries, 128 KiB SRAM per element.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["PRESETS", "SPINNAKER1", "SPINNAKER2", "Machine", "machine_from_dict"]


@dataclass(frozen=True)
class Machine:
    """Limits of one SpiNNaker-like target (all counts per chip / per core unless stated)."""

    name: str
    cores_per_chip: int
    monitor_cores: int
    chip_grid: tuple[int, int]  # (width, height) of the chip mesh of one board
    boards: int
    max_neurons_per_core: int
    max_row_length: int
    router_entries: int
    dtcm_bytes: int
    timestep_ms: float
    weight_max: int  # largest unsigned weight magnitude in a synaptic word
    max_core_delay: int  # on-core ring buffer delay slots (1..max_core_delay steps)
    max_delay: int  # with delay-extension stages
    ring_buffer_max: int = 65535  # ring-buffer entries are 16-bit unsigned accumulators

    @property
    def app_cores_per_chip(self) -> int:
        return self.cores_per_chip - self.monitor_cores

    @property
    def n_chips(self) -> int:
        return self.chip_grid[0] * self.chip_grid[1] * self.boards

    @property
    def max_stages(self) -> int:
        """Delay-extension stages: a stage re-sends a spike ``max_core_delay`` steps later."""
        return -(-self.max_delay // self.max_core_delay) - 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["chip_grid"] = list(self.chip_grid)
        return d


def machine_from_dict(d: dict[str, Any]) -> Machine:
    """Inverse of :meth:`Machine.to_dict` (unknown keys are an error)."""
    names = {f.name for f in fields(Machine)}
    unknown = set(d) - names
    if unknown:
        raise KeyError(f"unknown machine fields {sorted(unknown)}")
    d = dict(d)
    d["chip_grid"] = tuple(d["chip_grid"])
    return Machine(**d)


SPINNAKER1 = Machine(
    name="spinnaker1", cores_per_chip=18, monitor_cores=1, chip_grid=(8, 6), boards=1,
    max_neurons_per_core=256, max_row_length=256, router_entries=1023, dtcm_bytes=64 * 1024,
    timestep_ms=1.0, weight_max=65535, max_core_delay=16, max_delay=144,
)
SPINNAKER2 = Machine(
    name="spinnaker2", cores_per_chip=152, monitor_cores=0, chip_grid=(8, 6), boards=1,
    max_neurons_per_core=256, max_row_length=256, router_entries=16384, dtcm_bytes=128 * 1024,
    timestep_ms=1.0, weight_max=127, max_core_delay=16, max_delay=144,
)
PRESETS: dict[str, Machine] = {m.name: m for m in (SPINNAKER1, SPINNAKER2)}
