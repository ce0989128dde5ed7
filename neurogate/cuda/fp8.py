r"""The fp8 code of the saved membrane inside Triton kernels (:mod:`neurogate.functional.saved_membrane`).

The same code as the torch reference, bit for bit: :math:`c = \mathrm{e4m3fn}(\mathrm{clip}(u,
\pm 448))` of :math:`u = h - \vartheta` with round-to-nearest-even, ``-0`` coded as ``+0`` and NaN
as ``0x7F``; decoding gives :math:`\vartheta + \mathrm{float}(c)`, moved to the largest float below
:math:`\vartheta` when a negative code would read as firing. The rounding is done on the bits
rather than with a float8 conversion instruction, so that it is exact wherever the kernels run
(Triton's interpreter rounds float32 -> float8 differently from the GPU and PyTorch). float32 only.

e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; normal values from :math:`2^{-6}` to 448,
subnormal steps of :math:`2^{-9}`; ``0x7F``/``0xFF`` are NaN.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["decode", "encode"]


@triton.jit
def encode(u):
    """The uint8 code of float32 ``u`` (``h - threshold``)."""
    nan = u != u
    u = tl.where(u == 0.0, 0.0, tl.minimum(tl.maximum(u, -448.0), 448.0))  # clip; -0 -> +0
    bits = u.to(tl.uint32, bitcast=True)
    a = bits & 0x7FFFFFFF
    # |u| >= 2**-6: drop 20 of the 23 mantissa bits, rounding half to even (a carry moves the
    # exponent up, as it should), then rebias the exponent from 127 to 7 ((127 - 7) << 3 = 960).
    normal = ((a + 0x7FFFF + ((a >> 20) & 1)) >> 20) - 960
    # |u| < 2**-6: a multiple of 2**-9; adding and subtracting 2**23 rounds to an integer, half to even
    q = tl.abs(u) * 512.0
    sub = ((q + 8388608.0) - 8388608.0).to(tl.uint32)
    code = tl.where(a >= 0x3C800000, normal, sub) | ((bits >> 31) << 7)
    code = tl.where(nan, 0x7F, code)  # (min/max may have clipped a NaN to a number)
    return code.to(tl.uint8)


@triton.jit
def decode(code, th):
    r""":math:`\hat h = \vartheta + \mathrm{float}(c)` in float32, strictly below ``th`` for negative codes."""
    c = code.to(tl.uint32)
    e = (c >> 3) & 0xF
    m = c & 7
    normal = (((e + 120) << 23) | (m << 20)).to(tl.float32, bitcast=True)
    value = tl.where(e == 0, m.to(tl.float32) * 0.001953125, normal)  # subnormal: m * 2**-9
    value = tl.where((c & 0x7F) == 0x7F, float("nan"), value)
    neg = (c >> 7) == 1
    h = th + tl.where(neg, -value, value)
    tb = th.to(tl.uint32, bitcast=True)
    below = tl.where(th > 0.0, tb - 1, tl.where(th < 0.0, tb + 1, 0x80000001)).to(tl.float32, bitcast=True)
    return tl.where(neg & (h >= th), below, h)
