r"""The dense engine of sparse delay taps: every input step, zero or not (:mod:`neurogate.cpu.delay`).

``T B O I J`` multiply-adds, against ``T B O I K`` for the dense causal convolution:

.. math::

    y[t, b, o] = \sum_{i} \sum_{j=0}^{J-1} \mathrm{coef}[o, i, j]\; x[t - d_{\min}[o, i] - j, b, i]

Time and batch are flattened into one contiguous row per channel (``[I, T*B]`` for the input,
``[O, T*B]`` for the output), so a synapse's contribution is a shifted axpy of one input row into
one output row (the shift is ``delay * B``) and the inner loop is a long contiguous vector loop.
Rows are zero-padded in time once so that no tap needs a bounds test. (synapse, tap) pairs are
fused six at a time: one read-modify-write of an output row adds six shifted source rows (measured:
about 2x faster than one pass per pair for ``J = 1``, where the kernel would otherwise be bound by
the output row's traffic). Work is split over blocks of 8 output rows (input rows for ``grad_x``),
so that each source row, read once from L3, serves 8 rows held in L2. The dot products of
``grad_coef`` need ``reassoc`` to vectorise; summation order therefore differs from the reference
(fp32 rounding, not a formula change).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from . import buffers

__all__ = ["backward", "forward"]

BLOCK = 8  # output rows (input rows for grad_x) per task; one read of a source row serves 8
_FM = {"contract", "reassoc", "nsz", "arcp"}  # reassoc: lets the dot products of grad_coef vectorise


def forward(x: torch.Tensor, coef: torch.Tensor, d: np.ndarray) -> torch.Tensor:
    """``y [T, B, O]`` from ``x [T, B, I]``, ``coef [O, I, J]`` (one float dtype) and ``d [O, I]``."""
    T, B, _ = x.shape
    O, _, J = coef.shape
    front, back = _pads(d, J)
    xp = _rows(x, front, back)
    y = buffers.empty((O, T * B), x.dtype)
    if y.numel():
        _forward_kernel(xp.numpy(), coef.contiguous().numpy(), d, y.numpy(), B, front * B)
    return _unrows(y, T, B)


def backward(
    gy: torch.Tensor, x: torch.Tensor, coef: torch.Tensor, d: np.ndarray, need_x: bool, need_coef: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    r"""``(grad_x [T, B, I], grad_coef [O, I, J])`` for ``grad_y [T, B, O]``, ``None`` where not needed:

    .. math::

        \frac{\partial L}{\partial \mathrm{coef}[o, i, j]} = \sum_{t, b} x[t, b, i]\; g[t + d_{\min}[o, i] + j, b, o],
        \qquad
        \frac{\partial L}{\partial x[t, b, i]} = \sum_{o, j} \mathrm{coef}[o, i, j]\; g[t + d_{\min}[o, i] + j, b, o]
    """
    T, B, I = x.shape
    O, _, J = coef.shape
    front, back = _pads(d, J)
    gyp = _rows(gy, back, front) if need_x or need_coef else None  # grad_x reads it shifted, grad_coef not
    gx = gc = None
    if need_x:
        gx_rows = buffers.empty((I, T * B), gy.dtype)
        if gx_rows.numel():
            _grad_x_kernel(gyp.numpy(), coef.contiguous().numpy(), d, gx_rows.numpy(), B, back * B)
        gx = _unrows(gx_rows, T, B)
    if need_coef:
        xp = _rows(x, front, back)
        gc = torch.zeros((O, I, J), dtype=gy.dtype)
        if T * B and gc.numel():
            _grad_coef_kernel(gyp.numpy(), xp.numpy(), d, gc.numpy(), B, front * B, back * B, T * B)
    return gx, gc


# --------------------------------------------------------------------------- kernels
@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _forward_kernel(xp, coef, dmin, y, B, front):
    # y[o, m] = sum_p coef[o, p] * xp[i_p, m + front - (dmin[o, i_p] + j_p) * B], p = i * J + j;
    # front, back: the zero padding of the rows, in elements
    I = xp.shape[0]
    O, N = y.shape
    J = coef.shape[2]
    P = I * J
    cf = coef.reshape(O, P)
    for blk in numba.prange((O + BLOCK - 1) // BLOCK):
        o0 = blk * BLOCK
        o1 = min(O, o0 + BLOCK)
        for o in range(o0, o1):
            y[o, :] = 0
        for p in range(0, P - P % 6, 6):
            i0, i1, i2, i3, i4, i5 = p // J, (p + 1) // J, (p + 2) // J, (p + 3) // J, (p + 4) // J, (p + 5) // J
            for o in range(o0, o1):
                yr = y[o]
                x0 = _src(xp, i0, front - (dmin[o, i0] + p - i0 * J) * B, N)
                x1 = _src(xp, i1, front - (dmin[o, i1] + p + 1 - i1 * J) * B, N)
                x2 = _src(xp, i2, front - (dmin[o, i2] + p + 2 - i2 * J) * B, N)
                x3 = _src(xp, i3, front - (dmin[o, i3] + p + 3 - i3 * J) * B, N)
                x4 = _src(xp, i4, front - (dmin[o, i4] + p + 4 - i4 * J) * B, N)
                x5 = _src(xp, i5, front - (dmin[o, i5] + p + 5 - i5 * J) * B, N)
                c0, c1, c2, c3, c4, c5 = cf[o, p], cf[o, p + 1], cf[o, p + 2], cf[o, p + 3], cf[o, p + 4], cf[o, p + 5]
                for m in range(N):
                    yr[m] += c0 * x0[m] + c1 * x1[m] + c2 * x2[m] + c3 * x3[m] + c4 * x4[m] + c5 * x5[m]
        for p in range(P - P % 6, P):
            i0 = p // J
            for o in range(o0, o1):
                yr = y[o]
                x0 = _src(xp, i0, front - (dmin[o, i0] + p - i0 * J) * B, N)
                c0 = cf[o, p]
                for m in range(N):
                    yr[m] += c0 * x0[m]


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _grad_x_kernel(gyp, coef, dmin, gx, B, back):
    # gx[i, m] = sum_q coef[o_q, i, j_q] * gyp[o_q, m + back + (dmin[o_q, i] + j_q) * B], q = o * J + j
    O = gyp.shape[0]
    I, N = gx.shape
    J = coef.shape[2]
    Q = O * J
    for blk in numba.prange((I + BLOCK - 1) // BLOCK):
        i0 = blk * BLOCK
        i1 = min(I, i0 + BLOCK)
        for i in range(i0, i1):
            gx[i, :] = 0
        for q in range(0, Q - Q % 6, 6):
            o0, o1, o2, o3, o4, o5 = q // J, (q + 1) // J, (q + 2) // J, (q + 3) // J, (q + 4) // J, (q + 5) // J
            j0, j1, j2 = q - o0 * J, q + 1 - o1 * J, q + 2 - o2 * J
            j3, j4, j5 = q + 3 - o3 * J, q + 4 - o4 * J, q + 5 - o5 * J
            for i in range(i0, i1):
                xr = gx[i]
                g0 = _src(gyp, o0, back + (dmin[o0, i] + j0) * B, N)
                g1 = _src(gyp, o1, back + (dmin[o1, i] + j1) * B, N)
                g2 = _src(gyp, o2, back + (dmin[o2, i] + j2) * B, N)
                g3 = _src(gyp, o3, back + (dmin[o3, i] + j3) * B, N)
                g4 = _src(gyp, o4, back + (dmin[o4, i] + j4) * B, N)
                g5 = _src(gyp, o5, back + (dmin[o5, i] + j5) * B, N)
                c0, c1, c2 = coef[o0, i, j0], coef[o1, i, j1], coef[o2, i, j2]
                c3, c4, c5 = coef[o3, i, j3], coef[o4, i, j4], coef[o5, i, j5]
                for m in range(N):
                    xr[m] += c0 * g0[m] + c1 * g1[m] + c2 * g2[m] + c3 * g3[m] + c4 * g4[m] + c5 * g5[m]
        for q in range(Q - Q % 6, Q):
            o0 = q // J
            j0 = q - o0 * J
            for i in range(i0, i1):
                xr = gx[i]
                g0 = _src(gyp, o0, back + (dmin[o0, i] + j0) * B, N)
                c0 = coef[o0, i, j0]
                for m in range(N):
                    xr[m] += c0 * g0[m]


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _grad_coef_kernel(gy, xp, dmin, gc, B, front, gy0, N):
    # gc[o, p] = sum_{m < N} gy[o, gy0 + m] * xp[i_p, m + front - (dmin[o, i_p] + j_p) * B], p = i * J + j
    O = gy.shape[0]
    I = xp.shape[0]
    J = gc.shape[2]
    P = I * J
    g = gc.reshape(O, P)
    zero = gy.dtype.type(0)
    for blk in numba.prange((O + BLOCK - 1) // BLOCK):
        o0 = blk * BLOCK
        o1 = min(O, o0 + BLOCK)
        for p in range(0, P - P % 6, 6):
            i0, i1, i2, i3, i4, i5 = p // J, (p + 1) // J, (p + 2) // J, (p + 3) // J, (p + 4) // J, (p + 5) // J
            for o in range(o0, o1):
                gr = _src(gy, o, gy0, N)
                x0 = _src(xp, i0, front - (dmin[o, i0] + p - i0 * J) * B, N)
                x1 = _src(xp, i1, front - (dmin[o, i1] + p + 1 - i1 * J) * B, N)
                x2 = _src(xp, i2, front - (dmin[o, i2] + p + 2 - i2 * J) * B, N)
                x3 = _src(xp, i3, front - (dmin[o, i3] + p + 3 - i3 * J) * B, N)
                x4 = _src(xp, i4, front - (dmin[o, i4] + p + 4 - i4 * J) * B, N)
                x5 = _src(xp, i5, front - (dmin[o, i5] + p + 5 - i5 * J) * B, N)
                a0 = a1 = a2 = a3 = a4 = a5 = zero
                for m in range(N):
                    v = gr[m]
                    a0 += v * x0[m]
                    a1 += v * x1[m]
                    a2 += v * x2[m]
                    a3 += v * x3[m]
                    a4 += v * x4[m]
                    a5 += v * x5[m]
                g[o, p], g[o, p + 1], g[o, p + 2], g[o, p + 3], g[o, p + 4], g[o, p + 5] = a0, a1, a2, a3, a4, a5
        for p in range(P - P % 6, P):
            i0 = p // J
            for o in range(o0, o1):
                gr = _src(gy, o, gy0, N)
                x0 = _src(xp, i0, front - (dmin[o, i0] + p - i0 * J) * B, N)
                a0 = zero
                for m in range(N):
                    a0 += gr[m] * x0[m]
                g[o, p] = a0


@numba.njit(inline="always", cache=True)
def _src(rows, r, start, n):
    """Row ``r`` of ``rows`` from ``start``, ``n`` long: a view, so the inner loops stay contiguous."""
    return rows[r, start : start + n]


# --------------------------------------------------------------------------- the rows layout
def _pads(dmin: np.ndarray, J: int) -> tuple[int, int]:
    """Zero steps needed before (the largest delay) and after (the most negative delay) the input."""
    if dmin.size == 0:
        return 0, 0
    return max(int(dmin.max()) + J - 1, 0), max(-int(dmin.min()), 0)


def _rows(x: torch.Tensor, front: int, back: int) -> torch.Tensor:
    """``[T, B, C]`` -> zero-padded channel rows ``[C, (front + T + back) * B]`` (a pooled buffer).

    Done in numba, not as a torch copy: a torch parallel region right before a numba kernel leaves
    torch's OpenMP threads spinning while the kernel runs (measured: 3x slower kernels here,
    unless ``OMP_WAIT_POLICY=PASSIVE``).
    """
    T, B, C = x.shape
    rows = buffers.empty((C, (front + T + back) * B), x.dtype)
    _to_rows(x.contiguous().view(T * B, C).numpy(), rows.numpy(), front * B)
    return rows


def _unrows(rows: torch.Tensor, T: int, B: int) -> torch.Tensor:
    """Channel rows ``[C, T*B]`` -> time-major ``[T, B, C]``."""
    out = buffers.empty((T * B, rows.shape[0]), rows.dtype)
    _from_rows(rows.numpy(), out.numpy())
    return out.view(T, B, rows.shape[0])


@numba.njit(parallel=True, cache=True, nogil=True)
def _to_rows(x, rows, front):
    # x: [M, C] -> rows[c, front + m] = x[m, c], and zeros outside [front, front + M). Tiles of 64
    # steps of m, so that reads and writes both stream whole cache lines; the last task zeroes the
    # pads (one parallel region, not two).
    M, C = x.shape
    n = (M + 63) // 64
    for t in numba.prange(n + 1):
        if t == n:
            for c in range(C):
                rows[c, :front] = 0
                rows[c, front + M :] = 0
        else:
            for c in range(C):
                r = rows[c]
                for m in range(t * 64, min(M, t * 64 + 64)):
                    r[front + m] = x[m, c]


@numba.njit(parallel=True, cache=True, nogil=True)
def _from_rows(rows, out):
    # rows: [C, M] -> out: [M, C], in tiles so that both sides stream through cache lines
    C, M = rows.shape
    for m0 in numba.prange((M + 63) // 64):
        for m in range(m0 * 64, min(M, m0 * 64 + 64)):
            for c in range(C):
                out[m, c] = rows[c, m]
