"""Fused numba engine for :func:`neurogate.functional.lif_scan` (contract: :mod:`..functional.lif_op`).

One forward kernel and one backward kernel, each a single pass over ``[T, M]``, parallel over
chunks of neurons (``prange``) with the inner loop over contiguous neurons so that it vectorises.
Reset mode, surrogate, ``decay_input`` and ``detach_reset`` are compile-time constants: a kernel
that branches on them in its inner loop does not vectorise (measured: 4x slower backward), so one
specialised kernel is compiled per combination on first use and cached on disk (``cache=True``).
All arithmetic stays in the tensor's dtype (typed constants, no float64 promotion) so the forward
pass equals the reference bit for bit.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np
import torch

__all__ = ["forward", "backward", "surrogate_constants"]

CHUNK = 512  # neurons per task: state arrays stay in L1, enough tasks for 2..64 threads


def surrogate_constants(sid: int, alpha: float) -> tuple[float, float]:
    """``(k0, k1)`` such that the kernels' closed forms equal :mod:`neurogate.surrogate`'s."""
    a = float(alpha)
    return {
        0: (a / 2, math.pi * a / 2),  # atan: k0 / (1 + (k1 u)^2)
        1: (1.0, a),  # fast sigmoid: 1 / (1 + k1 |u|)^2
        2: (a, a),  # sigmoid: k0 sig(k1 u) (1 - sig(k1 u))
        3: (a, a),  # triangle: k0 max(0, 1 - k1 |u|)
        4: (a, 1 / (2 * a)),  # rectangular: k0 [|u| < k1]
        5: (a / math.sqrt(math.pi), a),  # erf: k0 exp(-(k1 u)^2)
    }[sid]


@numba.njit(inline="always", cache=True)
def _sg(u, k0, k1, one, zero, sid):
    if sid == 0:
        z = k1 * u
        return k0 / (one + z * z)
    elif sid == 1:
        z = one + k1 * abs(u)
        return one / (z * z)
    elif sid == 2:
        e = one / (one + math.exp(-k1 * u))
        return k0 * e * (one - e)
    elif sid == 3:
        return k0 * max(zero, one - k1 * abs(u))
    elif sid == 4:
        return k0 if abs(u) < k1 else zero
    else:
        z = k1 * u
        return k0 * math.exp(-(z * z))


@lru_cache(maxsize=None)
def _forward_kernel(reset: int, decay_input: bool):
    @numba.njit(parallel=True, cache=True, nogil=True)
    def kernel(x, v0, decay, thr, s_out, v_out, h_out, store, one, zero, bad):
        T, M = x.shape
        for c in numba.prange((M + CHUNK - 1) // CHUNK):
            lo = c * CHUNK
            n = min(CHUNK, M - lo)
            v = np.empty(CHUNK, x.dtype)
            for j in range(n):
                v[j] = v0[lo + j]
            nbad = 0
            for t in range(T):
                th_row = t * store
                for j in range(n):
                    m = lo + j
                    xv = x[t, m]
                    d = decay[m]
                    th = thr[m]
                    if decay_input:
                        h = d * v[j] + (one - d) * xv
                    else:
                        h = d * v[j] + xv
                    s = one if h >= th else zero
                    s_out[t, m] = s
                    h_out[th_row, m] = h
                    nbad += (xv - xv) != zero  # inf - inf and NaN - NaN are NaN
                    if reset == 0:
                        v[j] = h - s * th
                    elif reset == 1:
                        v[j] = h * (one - s)
                    else:
                        v[j] = h
            for j in range(n):
                v_out[lo + j] = v[j]
            bad[c] = nbad

    return kernel


@lru_cache(maxsize=None)
def _backward_kernel(reset: int, sid: int, decay_input: bool, detach: bool):
    @numba.njit(parallel=True, cache=True, nogil=True)
    def kernel(gs, gvT, gh, has_gh, h, x, v0, decay, thr, gx, gv0, gd, gth, k0, k1, one, zero):
        T, M = h.shape
        for c in numba.prange((M + CHUNK - 1) // CHUNK):
            lo = c * CHUNK
            n = min(CHUNK, M - lo)
            gv = np.empty(CHUNK, h.dtype)  # dL/dv_t (post-reset), carried backwards in time
            hn = np.empty(CHUNK, h.dtype)  # h_t, read one step ahead
            acc_d = np.zeros(CHUNK, h.dtype)
            acc_th = np.zeros(CHUNK, h.dtype)
            for j in range(n):
                gv[j] = gvT[lo + j]
                hn[j] = h[T - 1, lo + j] if T > 0 else zero
            for t in range(T - 1, -1, -1):
                tg = t * has_gh
                for j in range(n):
                    m = lo + j
                    d = decay[m]
                    th = thr[m]
                    ht = hn[j]
                    s = one if ht >= th else zero
                    sg = _sg(ht - th, k0, k1, one, zero, sid)
                    g_v = gv[j]
                    if reset == 0:
                        gst = gs[t, m] if detach else gs[t, m] - g_v * th
                        acc_th[j] -= g_v * s
                        dh = gh[tg, m] + gst * sg + g_v
                    elif reset == 1:
                        gst = gs[t, m] if detach else gs[t, m] - g_v * ht
                        dh = gh[tg, m] + gst * sg + g_v * (one - s)
                    else:
                        gst = gs[t, m]
                        dh = gh[tg, m] + gst * sg + g_v
                    acc_th[j] -= gst * sg
                    if t > 0:
                        hp = h[t - 1, m]
                        sp = one if hp >= th else zero
                        if reset == 0:
                            vp = hp - sp * th
                        elif reset == 1:
                            vp = hp * (one - sp)
                        else:
                            vp = hp
                    else:
                        hp = zero
                        vp = v0[m]
                    hn[j] = hp
                    if decay_input:
                        gx[t, m] = (one - d) * dh
                        acc_d[j] += dh * (vp - x[t, m])
                    else:
                        gx[t, m] = dh
                        acc_d[j] += dh * vp
                    gv[j] = d * dh
            for j in range(n):
                gv0[lo + j] = gv[j]
                gd[lo + j] = acc_d[j]
                gth[lo + j] = acc_th[j]

    return kernel


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def forward(x, v0, decay, threshold, *, reset: int, decay_input: bool, store_trace: bool):
    """Fused forward pass on flat ``[T, M]`` CPU tensors; see :mod:`..functional.lif_op`."""
    out_dtype = x.dtype
    cdt = _compute_dtype(out_dtype)
    x, v0, decay, threshold = (t.to(cdt).contiguous() for t in (x, v0, decay, threshold))
    T, M = x.shape
    spikes = torch.empty((T, M), dtype=cdt)
    v_final = torch.empty(M, dtype=cdt)
    h = torch.empty((T if store_trace else 1, M), dtype=cdt)
    bad = np.zeros(max(1, -(-M // CHUNK)), dtype=np.int64)
    one = _np(torch.ones((), dtype=cdt)).item()
    typ = np.float32 if cdt == torch.float32 else np.float64
    _forward_kernel(reset, decay_input)(
        _np(x), _np(v0), _np(decay), _np(threshold), _np(spikes), _np(v_final), _np(h),
        1 if store_trace else 0, typ(one), typ(0), bad,
    )
    if not store_trace:
        h = h[:0]
    return spikes.to(out_dtype), v_final.to(out_dtype), h, int(bad.sum())


def backward(grad_s, grad_vT, grad_h, h, x, v0, decay, threshold, *, alpha: float, reset: int,
             surrogate: int, decay_input: bool, detach_reset: bool):
    """Fused backward pass on flat ``[T, M]`` CPU tensors; see :mod:`..functional.lif_op`."""
    out_dtype = v0.dtype
    cdt = h.dtype
    typ = np.float32 if cdt == torch.float32 else np.float64
    T, M = h.shape
    # Gradients arrive in any layout (sum() gives a stride-0 expand): read them as they are.
    gs = grad_s.to(cdt)
    gs = gs.reshape(T, M) if gs.dim() != 2 else gs
    gvT = torch.zeros(M, dtype=cdt) if grad_vT is None else grad_vT.to(cdt).contiguous()
    has_gh = grad_h is not None and grad_h.numel() > 0
    gh = grad_h.to(cdt).reshape(T, M) if has_gh else torch.zeros((1, M), dtype=cdt)
    xs = x.to(cdt).contiguous() if decay_input else torch.zeros((1, 1), dtype=cdt)
    v0, decay, threshold = (t.to(cdt).contiguous() for t in (v0, decay, threshold))
    gx = torch.empty((T, M), dtype=cdt)
    gv0, gd, gth = (torch.empty(M, dtype=cdt) for _ in range(3))
    k0, k1 = surrogate_constants(surrogate, alpha)
    _backward_kernel(reset, surrogate, decay_input, detach_reset)(
        _np(gs), _np(gvT), _np(gh), 1 if has_gh else 0, _np(h), _np(xs), _np(v0), _np(decay),
        _np(threshold), _np(gx), _np(gv0), _np(gd), _np(gth), typ(k0), typ(k1), typ(1), typ(0),
    )
    return gx.to(out_dtype), gv0.to(out_dtype), gd.to(out_dtype), gth.to(out_dtype)
