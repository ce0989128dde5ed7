r"""Fixed-point formats, weight quantisation and the 32-bit synaptic word of the SpiNNaker target.

**s16.15** (sPyNNaker's ``REAL`` / ``accum``): a signed 32-bit integer :math:`q` read as
:math:`q / 2^{15}`; range :math:`[-65536, 65536)`, resolution :math:`2^{-15} \approx 3.05\cdot10^{-5}`.
Membrane voltages (mV), currents (nA), resistances (MOhm) and the decay :math:`e^{-dt/\tau_m}` are
stored in it. A product of two s16.15 numbers is :math:`(a b) \gg 15` (arithmetic shift: rounds
towards :math:`-\infty`).

**Weights.** A synapse carries an unsigned integer weight :math:`w_q \le` ``machine.weight_max``
(65535 on SpiNNaker1, 127 on SpiNNaker2); its sign is the receptor (synapse type 0 = excitatory,
1 = inhibitory). Ring buffers accumulate :math:`w_q` as integers; the input current of one step is
read as ``(sum << shift)`` in s16.15, so one weight unit is worth :math:`2^{\text{shift}-15}` nA:

.. math::  w_q = \lfloor |w| \, 2^{15-\text{shift}} + \tfrac12 \rfloor, \qquad
           \hat w = w_q \, 2^{\text{shift}-15}.

The shift is chosen per (post population, synapse type) from fan-in statistics: the smallest
:math:`\text{shift} \ge 0` such that every :math:`w_q \le` ``weight_max`` and the largest possible
ring-buffer sum, :math:`\max_i \sum_j w_{q,ij}` (every presynaptic neuron of that type spiking into
the same slot), is at most the 16-bit ring-buffer capacity 65535; so no input can overflow.
Weights with :math:`w \ne 0` but :math:`w_q = 0` underflow and are counted per projection.

**Synaptic word** (one ``uint32`` per synapse)::

    bit  31 ........ 16 | 15 14 | 13 .. 10 | 9 8  | 7 ..... 0
         weight w_q (16) | spare | delay-1 (4) | type (2) | neuron index (8)

``delay`` is the on-core delay in steps, 1..16, stored minus one; ``type`` 0 = excitatory,
1 = inhibitory (2, 3 reserved); ``neuron index`` is the target's index inside its core slice. The
spare bits are zero.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DELAY_SHIFT",
    "FRAC_BITS",
    "INDEX_MASK",
    "ONE",
    "SPARE_MASK",
    "TYPE_SHIFT",
    "WEIGHT_SHIFT",
    "choose_shift",
    "decode_words",
    "encode_words",
    "from_s1615",
    "mul_s1615",
    "quantise_magnitudes",
    "to_s1615",
]

FRAC_BITS = 15
ONE = 1 << FRAC_BITS
S1615_MIN, S1615_MAX = -(1 << 31), (1 << 31) - 1
WEIGHT_SHIFT, DELAY_SHIFT, TYPE_SHIFT = 16, 10, 8
WEIGHT_MASK, DELAY_MASK, TYPE_MASK, INDEX_MASK = 0xFFFF, 0xF, 0x3, 0xFF
SPARE_MASK = 0x3 << 14
MAX_SHIFT = 16


def to_s1615(x: np.ndarray | float) -> np.ndarray:
    """Round real values to s16.15 integers (nearest, halves away from zero); error if out of range."""
    x = np.asarray(x, dtype=np.float64)
    q = np.sign(x) * np.floor(np.abs(x) * ONE + 0.5)
    if q.size and (q.min() < S1615_MIN or q.max() > S1615_MAX):
        raise OverflowError(f"value {np.abs(x).max():.6g} does not fit s16.15 (|x| < 65536)")
    return q.astype(np.int64)


def from_s1615(q: np.ndarray) -> np.ndarray:
    return np.asarray(q, dtype=np.float64) / ONE


def mul_s1615(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s16.15 product ``(a * b) >> 15`` in int64 (operands are < 2^31 so the product fits)."""
    return (np.asarray(a, np.int64) * np.asarray(b, np.int64)) >> FRAC_BITS


def quantise_magnitudes(mag: np.ndarray, shift: int) -> np.ndarray:
    """``w_q = floor(|w| 2^(15-shift) + 1/2)`` as int64."""
    return np.floor(np.abs(mag) * 2.0 ** (FRAC_BITS - shift) + 0.5).astype(np.int64)


def choose_shift(mag: np.ndarray, post: np.ndarray, n_post: int, weight_max: int,
                 ring_max: int = 65535) -> int | None:
    """Smallest shift in 0..16 for which no weight and no worst-case ring-buffer sum overflows.

    ``mag`` are the weight magnitudes (nA) of every synapse of one type into one population and
    ``post`` their target neurons. Returns ``None`` when no shift fits.
    """
    if mag.size == 0:
        return 0
    for shift in range(MAX_SHIFT + 1):
        wq = quantise_magnitudes(mag, shift)
        if wq.max() > weight_max:
            continue
        if np.bincount(post, weights=wq, minlength=n_post).max() <= ring_max:
            return shift
    return None


def encode_words(weight: np.ndarray, delay: np.ndarray, syn_type: np.ndarray,
                 index: np.ndarray) -> np.ndarray:
    """Pack synapses into words; ``delay`` is the on-core delay 1..16 (see the module docstring)."""
    weight, delay = np.asarray(weight, np.int64), np.asarray(delay, np.int64)
    syn_type, index = np.asarray(syn_type, np.int64), np.asarray(index, np.int64)
    for name, v, lo, hi in (("weight", weight, 0, WEIGHT_MASK), ("delay", delay, 1, DELAY_MASK + 1),
                            ("synapse type", syn_type, 0, TYPE_MASK), ("neuron index", index, 0, INDEX_MASK)):
        if v.size and (v.min() < lo or v.max() > hi):
            raise ValueError(f"{name} outside {lo}..{hi} cannot be packed into a synaptic word")
    w = (weight << WEIGHT_SHIFT) | ((delay - 1) << DELAY_SHIFT) | (syn_type << TYPE_SHIFT) | index
    return w.astype(np.uint32)


def decode_words(words: np.ndarray) -> dict[str, np.ndarray]:
    """Unpack words into ``weight``, ``delay`` (1..16), ``type``, ``index`` and ``spare`` (int64)."""
    w = np.asarray(words).astype(np.int64)
    return {
        "weight": (w >> WEIGHT_SHIFT) & WEIGHT_MASK,
        "delay": ((w >> DELAY_SHIFT) & DELAY_MASK) + 1,
        "type": (w >> TYPE_SHIFT) & TYPE_MASK,
        "index": w & INDEX_MASK,
        "spare": (w & SPARE_MASK) >> 14,
    }
