"""Resistive-memory crossbar target: NIR graph -> tiles of conductance pairs + digital periphery.

Example:
    >>> import neurogate as ng, neurogate.hw
    >>> from neurogate.hw import crossbar
    >>> graph = ng.hw.to_nir(ng.models.create("lif-mlp", in_shape=(2, 6, 6)), dt=1e-3)
    >>> desc = crossbar.lower(graph, device="rram", array=crossbar.Array(rows=128, cols=128))
    >>> spikes = (np.random.default_rng(0).random((20, 4, 72)) < 0.2).astype(float)  # [T, B, n_in]
    >>> res = crossbar.simulate(desc, spikes, seed=0, t_read=3600.0)  # programmed once, read 1 h later
    >>> res.output.mean(0)                                              # mean readout [B, classes]
"""

from .descriptor import SCHEMA_VERSION, CrossbarTile, Descriptor, DigitalLayer
from .device import PCM, PRESETS, RRAM, Array, Device, device_from_dict, ideal
from .lower import lower, program_tile
from .simulate import SimResult, programmed, simulate

__all__ = [
    "PCM",
    "PRESETS",
    "RRAM",
    "SCHEMA_VERSION",
    "Array",
    "CrossbarTile",
    "Descriptor",
    "Device",
    "DigitalLayer",
    "SimResult",
    "device_from_dict",
    "ideal",
    "lower",
    "program_tile",
    "programmed",
    "simulate",
]
