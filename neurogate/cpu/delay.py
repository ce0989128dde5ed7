r"""Fused numba engines for sparse delay taps (contract: :func:`neurogate.functional.delay.delay_taps`).

Computes, for time-major ``x: [T, B, I]``, per-synapse coefficients ``coef: [O, I, J]`` and
integer first delays ``dmin: [O, I]``:

.. math::

    y[t, b, o] = \sum_{i} \sum_{j=0}^{J-1} \mathrm{coef}[o, i, j]\; x[t - d_{\min}[o, i] - j, b, i],
    \qquad x[s] = 0 \text{ for } s \notin [0, T)

and its gradients

.. math::

    \frac{\partial L}{\partial \mathrm{coef}[o, i, j]} = \sum_{t, b} x[t, b, i]\; g[t + d_{\min}[o, i] + j, b, o],
    \qquad
    \frac{\partial L}{\partial x[t, b, i]} = \sum_{o, j} \mathrm{coef}[o, i, j]\; g[t + d_{\min}[o, i] + j, b, o]

(:math:`g = \partial L / \partial y`, zero outside :math:`[0, T)`). ``J = 1`` is a layer with one
integer delay per synapse; ``J = 2r`` is the truncated Gaussian of a DCLS layer once its sigma is
small. Two engines compute the same sums:

* the dense engine (:mod:`neurogate.cpu.delay_dense`), ``T B O I J`` multiply-adds over every
  input step, and
* the event engine (:mod:`neurogate.cpu.delay_events`), ``E O ceil(J/8)`` 8-lane multiply-adds
  over the ``E`` non-zero inputs.

This module holds the entry points: which engine runs is decided once per forward pass by the
density of ``x`` (:func:`events` gathers the non-zero inputs when they are few enough,
:func:`event_max_density`), and the backward pass reuses that decision and the events
(``grad_x`` is dense, as ``g`` is, so it always runs on the dense engine). It also holds the
**Gaussian taps** (:func:`gaussian_taps`, :func:`gaussian_taps_backward`): the truncated DCLS
kernel's coefficients and their chain rule to weights and positions, one parallel pass over the
synapses each way, so that a training step runs no torch operation between the engine's kernels
(torch's and numba's OpenMP thread pools each spin a while after their parallel regions; on two
cores, alternating between them slows both). The forward pass vectorises over synapses, float32
exponentials included (:func:`_exp32`), and returns the normalised window with the coefficients,
so that the backward pass needs no exponential.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from . import delay_dense as dense
from . import delay_events as ev

__all__ = [
    "EVENT_COST", "backward", "event_max_density", "events", "forward", "gaussian_taps", "gaussian_taps_backward",
]

# Cost of one event-engine lane group (one event, one output, 8 taps) against the dense engine's
# cost per (step, batch entry, synapse) of J + 1 units (J multiply-adds and the row's traffic).
# Measured at SHD scale (T=100, B=64, 140 -> 256, K=25, one thread), the engines break even near
# 44 % input density for J = 6 (training: forward and coefficient gradient) and near 7 % for J = 1
# (inference: forward only); one constant for both puts the switch at 25 % and 7.1 %.
EVENT_COST = 28.0
TAPS_CHUNK = 512  # Gaussian taps: synapses per task
_FM = {"contract", "reassoc", "nsz", "arcp"}


# --------------------------------------------------------------------------- dispatch
def event_max_density(J: int) -> float:
    r"""The input density (non-zeros / ``T B I``) below which the event engine is the cheaper one.

    The dense engine costs about :math:`T B I O (J + 1)` units, the event engine
    :math:`E\, O \lceil J / 8 \rceil` lane groups of ``EVENT_COST`` units, so events pay while
    :math:`E / (T B I) < (J + 1) / (\mathrm{EVENT\_COST} \lceil J/8 \rceil)`: 25 % for ``J = 6``
    (the Gaussian at the sigma floor), 7.1 % for ``J = 1`` (integer delays).
    """
    return (J + 1) / (EVENT_COST * math.ceil(J / ev.LANES)) if J > 0 else 0.0


def events(x: torch.Tensor, max_density: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The non-zero entries of ``x [T, B, I]`` as events, or a marker that ``x`` is too dense.

    Returns ``(ptr [B I + 1] int64, step [cap] int32, val [cap])`` with
    ``cap = floor(max_density * T * B * I)`` (a static size, so the custom operator has a fake
    implementation): the events of batch entry ``b`` and channel ``i`` are
    ``ptr[b I + i] <= e < ptr[b I + i + 1]``, at step ``step[e]`` (increasing), value ``val[e]`` (any
    non-zero value: spike counts and graded inputs work like binary spikes). When ``x`` has more
    than ``cap`` non-zeros, ``ptr[0] = -1`` and nothing else is written: the dense engine runs.
    """
    cdt = _compute_dtype(x.dtype)
    T, B, I = x.shape
    cap = max(0, int(max_density * T * B * I))
    ptr = torch.zeros(B * I + 1, dtype=torch.int64)
    step, val = ev.pooled((cap,), torch.int32), ev.pooled((cap,), cdt)
    n = 0
    if T * B * I:
        xn = x.detach().to(cdt).contiguous().numpy()
        p = ptr.numpy()
        _count_events(xn, p[1:].reshape(B, I))
        np.cumsum(p, out=p)
        n = int(p[-1])
        if n > cap:
            p[0], n = -1, 0
        elif n:
            _gather_events(xn, p[:-1].reshape(B, I), step.numpy(), val.numpy())
    step.numpy()[n:] = 0  # the unused slots: deterministic output (numpy, not a torch parallel region)
    val.numpy()[n:] = 0
    return ptr, step, val


def forward(
    x: torch.Tensor, coef: torch.Tensor, dmin: torch.Tensor, ptr: torch.Tensor, step: torch.Tensor, val: torch.Tensor
) -> torch.Tensor:
    """``y [T, B, O]`` from ``x [T, B, I]``, ``coef [O, I, J]``, ``dmin [O, I]`` and the
    :func:`events` of ``x`` (module docstring): the event engine where there are events, else dense."""
    cdt = _compute_dtype(x.dtype)
    T, B, _ = x.shape
    d = dmin.detach().to(torch.int64).contiguous().numpy()
    c = coef.detach().to(cdt)
    if int(ptr[0]) >= 0:
        y = ev.forward(ptr.numpy(), step.numpy(), val.numpy(), c, d, B, T)
    else:
        y = dense.forward(x.detach().to(cdt), c, d)
    return y.to(x.dtype)


def backward(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    coef: torch.Tensor,
    dmin: torch.Tensor,
    ptr: torch.Tensor,
    step: torch.Tensor,
    val: torch.Tensor,
    need_x: bool = True,
    need_coef: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(grad_x [T, B, I], grad_coef [O, I, J])``; either is ``None`` when not needed.

    ``grad_coef`` walks the forward pass's events when it had them; ``grad_x`` is always dense.
    """
    cdt = _compute_dtype(x.dtype)
    J = coef.shape[2]
    d = dmin.detach().to(torch.int64).contiguous().numpy()
    use_events = int(ptr[0]) >= 0
    gy = grad_y.detach().to(cdt)
    gx, gc = dense.backward(gy, x.detach().to(cdt), coef.detach().to(cdt), d, need_x, need_coef and not use_events)
    if need_coef and use_events:
        gc = ev.grad_coef(ptr.numpy(), step.numpy(), val.numpy(), gy, d, J)
    return (None if gx is None else gx.to(x.dtype)), (None if gc is None else gc.to(coef.dtype))


def gaussian_taps(
    weight: torch.Tensor, P: torch.Tensor, sigma: float, max_delay: int, r: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The truncated Gaussian's taps ``(coef [O, I, J], dmin [O, I] int64, window [O, I, J])`` from
    ``weight, P [O, I]``.

    The same values as :func:`neurogate.functional.delay.gaussian_taps` applied to
    ``P.clamp(*position_range(K))`` (its docstring has the equations), in one pass over the
    synapses: with :math:`c = P + \lfloor K/2 \rfloor`, the window's top kernel tap
    :math:`m_0 = \lfloor c \rfloor + r` (or :math:`K - 1` when ``2r >= K``: all ``J = K`` taps),
    tap ``j`` sits at :math:`m_j = m_0 - j`, i.e. delay :math:`d_{\min} + j` with
    :math:`d_{\min} = K - 1 - m_0`, and

    .. math::

        \mathrm{coef}_j = w\, n_j, \qquad n_j = \frac{g_j}{S}, \qquad
        g_j = [0 \le m_j < K]\, e^{-\frac12 ((m_j - c)/\sigma)^2}, \qquad S = \sum_j g_j + \epsilon

    ``window`` is :math:`n_j`, kept for :func:`gaussian_taps_backward`.
    """
    K = max_delay
    J = min(K, 2 * r)
    lo, hi = -(K // 2), (K - 1) // 2
    cdt = _compute_dtype(weight.dtype)
    w = weight.detach().to(cdt).contiguous()
    p = P.detach().to(cdt).contiguous()
    coef = torch.empty((*w.shape, J), dtype=cdt)
    window = torch.empty((*w.shape, J), dtype=cdt)
    dmin = torch.empty(w.shape, dtype=torch.int64)
    if w.numel():
        _gauss_taps_kernel(w.view(-1).numpy(), p.view(-1).numpy(), lo, hi, float(sigma), K, r, eps,
                           coef.view(-1, J).numpy(), window.view(-1, J).numpy(), dmin.view(-1).numpy())
    return coef.to(weight.dtype), dmin, window.to(weight.dtype)


def gaussian_taps_backward(
    grad_coef: torch.Tensor, weight: torch.Tensor, P: torch.Tensor, window: torch.Tensor, sigma: float,
    max_delay: int, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(grad_weight, grad_P)`` of :func:`gaussian_taps` for ``grad_coef`` :math:`G_j`, from its
    ``window`` :math:`n_j = g_j / S`, so without an exponential: with :math:`u_j = m_j - c`,
    :math:`g_j' = \partial g_j / \partial c = g_j u_j / \sigma^2` and :math:`S' = \sum_j g_j'`,

    .. math::

        \frac{\partial L}{\partial w} = \frac{1}{S}\sum_j G_j g_j = \sum_j G_j n_j, \qquad
        \frac{\partial L}{\partial P} = [P_{\min} \le P \le P_{\max}]\, \frac{w}{S}
        \Big(\sum_j G_j g_j' - \frac{S'}{S} \sum_j G_j g_j\Big)
        = [P_{\min} \le P \le P_{\max}]\, \frac{w}{\sigma^2}
        \Big(\sum_j G_j n_j u_j - \sum_j n_j u_j \sum_j G_j n_j\Big)

    (the window :math:`\lfloor c \rfloor` is piecewise constant: no gradient, as in the reference,
    and the clamp passes the gradient inside its range, ends included, as ``torch.clamp`` does).
    """
    K = max_delay
    lo, hi = -(K // 2), (K - 1) // 2
    cdt = _compute_dtype(weight.dtype)
    w = weight.detach().to(cdt).contiguous()
    p = P.detach().to(cdt).contiguous()
    gw, gp = torch.empty_like(w), torch.empty_like(p)
    if w.numel():
        G = grad_coef.detach().to(cdt).contiguous()
        n = window.detach().to(cdt).contiguous()
        _gauss_taps_grad_kernel(w.view(-1).numpy(), p.view(-1).numpy(), lo, hi, float(sigma), K, r,
                                G.view(w.numel(), -1).numpy(), n.view(w.numel(), -1).numpy(),
                                gw.view(-1).numpy(), gp.view(-1).numpy())
    return gw.to(weight.dtype), gp.to(P.dtype)


# --------------------------------------------------------------------------- event gathering
@numba.njit(parallel=True, cache=True, nogil=True)
def _count_events(x, counts):
    # counts[b, i] = number of non-zeros of x[:, b, i]
    T, B, I = x.shape
    for b in numba.prange(B):
        n = counts[b]
        n[:] = 0
        for t in range(T):
            r = x[t, b]
            for i in range(I):
                n[i] += r[i] != 0


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather_events(x, start, step, val):
    # the non-zeros of x[:, b, i] into slots start[b, i] ... in time order; x read in its own order.
    # Per row x[t, b], the non-zero channels are listed first without a branch (measured: 1.7x
    # faster than testing each value, whose branch mispredicts at a few percent density)
    T, B, I = x.shape
    for b in numba.prange(B):
        e = start[b].copy()
        nz = np.empty(I, np.int64)
        for t in range(T):
            r = x[t, b]
            k = 0
            for i in range(I):
                nz[k] = i
                k += r[i] != 0
            for q in range(k):
                i = nz[q]
                step[e[i]] = t
                val[e[i]] = r[i]
                e[i] += 1


# --------------------------------------------------------------------------- Gaussian taps
@numba.njit(inline="always", cache=True)
def _gauss_window(p, lo, hi, K, r, J):
    # (c, m_0): the clamped centre and the window's top kernel tap (see gaussian_taps), in p's dtype
    c = min(max(p, lo), hi) + type(lo)(K // 2)
    return c, (K - 1 if J == K else int(np.floor(c)) + r)


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _gauss_taps_kernel(w, P, lo, hi, sigma, K, r, eps, coef, window, dmin):
    # Tasks of TAPS_CHUNK synapses; in each, the inner loops run over the synapses (one tap at a
    # time), so that they vectorise, exponentials included (_exp). All arithmetic in the arrays' dtype.
    N, J = coef.shape
    f = w.dtype.type
    h, e, zero, one = f(-0.5 / (sigma * sigma)), f(eps), f(0), f(1)
    for task in numba.prange((N + TAPS_CHUNK - 1) // TAPS_CHUNK):
        s0 = task * TAPS_CHUNK
        n = min(N, s0 + TAPS_CHUNK) - s0
        cs, tops = np.empty(n, w.dtype), np.empty(n, np.int64)
        g, a = np.empty((J, n), w.dtype), np.zeros(n, w.dtype)  # a: S - eps, then 1 / S
        for q in range(n):
            cs[q], tops[q] = _gauss_window(P[s0 + q], f(lo), f(hi), K, r, J)
        for j in range(J):
            gj = g[j]
            for q in range(n):
                m = tops[q] - j
                u = f(m) - cs[q]
                gj[q] = _exp(h * u * u) if 0 <= m < K else zero
                a[q] += gj[q]
        for q in range(n):
            a[q] = one / (a[q] + e)
            dmin[s0 + q] = K - 1 - tops[q]
        for j in range(J):
            gj, nj, cj = g[j], window[s0 : s0 + n, j], coef[s0 : s0 + n, j]
            for q in range(n):
                nj[q] = gj[q] * a[q]
                cj[q] = w[s0 + q] * nj[q]


def _exp(x):
    """:math:`e^x` for the taps kernel (only inside numba functions)."""


@overload(_exp, inline="always")
def _exp_overload(x):
    # float32: a polynomial that LLVM vectorises (numba's np.exp is a scalar libm call without
    # Intel's SVML; with the loops over synapses, the taps kernel measured 3x faster); float64: np.exp
    if x == types.float32:
        return lambda x: _exp32(x)
    return lambda x: np.exp(x)


_F = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_EXP_POLY = tuple(_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                   1.6666665459e-1, 5.0000001201e-1))
_EXP_MIN = _F(-87.0)  # below it e^x leaves float32's normal range: 0


@numba.njit(inline="always", fastmath=_FM, cache=True)
def _exp32(x):
    # Cephes expf: x = n ln 2 + r, |r| <= ln 2 / 2 (ln 2 in two parts, so r is exact),
    # e^r = 1 + r + r^2 p(r) with p of degree 5 (relative error about 1e-7), 2^n from exponent bits
    n = np.floor(max(x, _EXP_MIN) * _LOG2E + _F(0.5))
    r = max(x, _EXP_MIN) - n * _LN2_HI - n * _LN2_LO
    p0, p1, p2, p3, p4, p5 = _EXP_POLY
    p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5
    y = (p * r * r + r + _F(1)) * _float32_from_bits((np.int64(n) + 127) << 23)
    return _F(0) if x < _EXP_MIN else y


@intrinsic
def _float32_from_bits(typingctx, i):
    """The float32 whose bits are the low 32 bits of the integer ``i`` (an LLVM bitcast, vectorisable)."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = builder.trunc(args[0], ir.IntType(32)) if i.bitwidth > 32 else args[0]
        return builder.bitcast(v, ir.FloatType())

    return types.float32(i), codegen


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _gauss_taps_grad_kernel(w, P, lo, hi, sigma, K, r, G, window, gw, gP):
    J = G.shape[1]
    f = w.dtype.type
    zero, isig2 = f(0), f(1 / (sigma * sigma))
    for s in numba.prange(w.size):
        c, top = _gauss_window(P[s], f(lo), f(hi), K, r, J)
        gn = gnu = nu = zero  # sum G n, sum G n u, sum n u
        for j in range(J):
            u = f(top - j) - c
            n = window[s, j]
            gn += G[s, j] * n
            gnu += G[s, j] * n * u
            nu += n * u
        gw[s] = gn
        gP[s] = w[s] * isig2 * (gnu - nu * gn) if f(lo) <= P[s] <= f(hi) else zero


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32
