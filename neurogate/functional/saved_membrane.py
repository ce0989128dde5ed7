r"""The membrane a fused LIF scan keeps for its backward pass: exact, as an 8-bit float code, or none.

An exact backward needs one float per element and step (the pre-reset membrane :math:`h_t`): the
surrogate :math:`\sigma'(h_t - \vartheta)` and the decay gradient (through the post-reset
membrane) are continuous functions of it. ``saved_membrane="fp8"`` trades that exactness for
memory: the scan keeps

.. math::

    c_t = \mathrm{e4m3}\big(\mathrm{clip}(h_t - \vartheta, -448, 448)\big)

(1 byte per element, IEEE-style float8 e4m3 "fn" as ``torch.float8_e4m3fn``: 3 mantissa bits,
round to nearest even, normal values from :math:`2^{-6}`, subnormal steps of :math:`2^{-9}`) and
the backward runs the exact backward kernel on

.. math::

    \hat h_t = \vartheta + \mathrm{float}(c_t),

so its gradients are the exact gradients of the scan evaluated at :math:`\hat h_t`: the relative
error of :math:`h_t - \vartheta` is at most :math:`2^{-4}` (half a mantissa step) for
:math:`2^{-6} \le |h_t - \vartheta| \le 448`, and at most :math:`2^{-10}` absolute below.
Beyond :math:`\pm 448` the membrane is clipped in the saved copy only (the forward pass and its
outputs are exact); the surrogates' derivatives are negligible there, but the decay gradient
sees the clipped value.

Spikes stay exact. The backward recomputes :math:`S_t = H(\hat h_t - \vartheta)`, and the sign of
the code is the sign of :math:`h_t - \vartheta` (``-0.0`` is mapped to ``+0.0`` before coding: the
forward fires on :math:`h_t = \vartheta`); a negative code whose value rounds to zero decodes to
the largest float below :math:`\vartheta`, so that no silent neuron is read as firing.

This is ActNN-style activation compression (Chen et al., ICML 2021) applied to the LIF state:
4x less memory kept per LIF layer (0.25 of what snnTorch's ``Leaky`` keeps) at the price of
approximate surrogate gradients. It is an opt-in; the default ``"float"`` is exact. The Triton
engine codes and decodes inside its kernels (:mod:`neurogate.cuda.fp8`, bit-equal to
:func:`encode` and :func:`decode_reference`) for float32 states; the CPU engine codes with
:func:`encode` and decodes with a numba kernel.

``saved_membrane="recompute"`` keeps no membrane: the scan keeps its input ``x`` and the backward
recomputes :math:`h_t` with the forward's own operations, so its gradients equal the default's bit
for bit. The Triton engine does this inside its backward kernel, from checkpoints of the membrane
taken every few steps (:mod:`neurogate.cuda.lif_recompute`): on a GPU, where both passes are bound
by memory traffic, it moves 20 B per element of a float32 layer instead of 24 (10 instead of 16
for half inputs). Other engines run their forward pass again in the backward. It saves memory when
``x`` is kept anyway (a layer's input that its own backward keeps, or a half-precision input).
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

__all__ = ["MODES", "FP8_MAX", "check_mode", "decode", "decode_reference", "encode"]

MODES = ("float", "fp8", "recompute")
FP8_MAX = 448.0  # the largest finite float8_e4m3fn


def check_mode(mode: str) -> None:
    """Raise a :class:`~neurogate.errors.ConfigError` unless ``mode`` is one of :data:`MODES`."""
    if mode not in MODES:
        raise ConfigError(f"saved_membrane={mode!r} is unknown; use one of: {', '.join(MODES)}")


def encode(h: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """The 1-byte code of ``h - threshold`` (``h: [T, M]``, ``threshold`` broadcastable to ``[M]``).

    Overwrites ``h`` (a scratch the caller no longer needs) and returns a ``float8_e4m3fn`` tensor.
    """
    u = torch.sub(h, threshold, out=h)
    u.clamp_(-FP8_MAX, FP8_MAX)
    u.add_(0.0)  # -0.0 + 0.0 = +0.0: a neuron exactly at threshold fired, so its code must be >= 0
    return u.to(torch.float8_e4m3fn)


def decode(code: torch.Tensor, threshold: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    r""":math:`\hat h = \vartheta + \mathrm{float}(c)` (``[T, M]``, in ``out``'s dtype), with every
    negative code kept strictly below the threshold. Fills and returns ``out`` (a new tensor only
    where a negative code rounds onto the threshold, which is rare on the CPU). On the CPU a
    numba kernel does the same in one pass (:mod:`neurogate.cpu.fp8`, tested equal)."""
    if (
        out.device.type == "cpu" and out.dtype in (torch.float32, torch.float64) and out.dtype == threshold.dtype
        and out.is_contiguous() and code.is_contiguous() and threshold.numel() in (1, out.shape[-1])
    ):
        from ..cpu import fp8

        return fp8.decode(code, threshold, out)
    return decode_reference(code, threshold, out)


def decode_reference(code: torch.Tensor, threshold: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """:func:`decode` in torch operations (any device): the reference of the CPU kernel."""
    out.copy_(code)
    out.add_(threshold)
    wrong = (code.view(torch.uint8) >= 0x80) & (out >= threshold)  # sign bit set, yet read as firing
    if out.device.type == "cpu" and not bool(wrong.any()):  # (on a GPU, no host sync: always fix)
        return out
    below = torch.nextafter(threshold, threshold.new_full((), -float("inf"))).expand_as(out)
    return torch.where(wrong, below, out)
