"""The SpiNNaker-like target: lower an NIR graph to a descriptor, save/load it, simulate it bit-accurately.

    graph (NIR: Input/Affine/Linear/Conv/Pool/Flatten/Delay/LIF/LI, metadata dt + reset)
      -> lower(graph, machine=SPINNAKER1)        populations in core slices, exc/inh synaptic rows
                                                 of 32-bit words, shifts, keys, router tables
      -> Descriptor.save(dir) / Descriptor.load(dir)      JSON (schema 1) + .npz, validated
      -> simulate(desc, spikes [T, B, n_in])     fixed-point run (s16.15, u0.32 decay)
      -> to_pynn(desc)                           a PyNN script for sPyNNaker (IF_curr_exp)

Every projection adds one step of latency (SpiNNaker's minimum delay); ``simulate(...,
align=True)`` shifts it back for comparison with a zero-delay model. A linear readout feeding
``Output`` (neurogate's mean readout) is applied on the host to the recorded spikes.

>>> desc = lower(graph, machine=SPINNAKER1, dt=1e-3)       # doctest: +SKIP
>>> desc.save("out/"); desc = Descriptor.load("out/")       # doctest: +SKIP
>>> result = simulate(desc, spikes, align=True)             # doctest: +SKIP
>>> script = to_pynn(desc)                                  # doctest: +SKIP
"""

from .descriptor import SCHEMA_VERSION, Descriptor, Population, Projection
from .lower import lower
from .machine import PRESETS, SPINNAKER1, SPINNAKER2, Machine
from .pynn import to_pynn
from .quantise import decode_words, encode_words
from .simulate import SimResult, latency, simulate, spike_agreement

__all__ = [
    "PRESETS",
    "SCHEMA_VERSION",
    "SPINNAKER1",
    "SPINNAKER2",
    "Descriptor",
    "Machine",
    "Population",
    "Projection",
    "SimResult",
    "decode_words",
    "encode_words",
    "latency",
    "lower",
    "simulate",
    "spike_agreement",
    "to_pynn",
]
