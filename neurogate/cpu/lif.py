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
from contextlib import contextmanager
from functools import lru_cache

import numba
import numpy as np
import torch

from ..surrogate import surrogate_constants
from . import buffers

__all__ = ["forward", "backward"]

CHUNK = 512  # neurons per task: state arrays stay in L1, enough tasks for 2..64 threads


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
def _forward_kernel(reset: int):
    @numba.njit(parallel=True, cache=True, nogil=True)
    def kernel(x, v0, decay, thr, s_out, v_out, h_out, store, di, one, zero, bad):
        T, M = x.shape
        for c in numba.prange((M + CHUNK - 1) // CHUNK):
            lo = c * CHUNK
            hi = min(lo + CHUNK, M)
            n = hi - lo
            # Row slices indexed by the loop counter j >= 0: with a possibly negative index
            # (lo + j) numba's wraparound check turns every access into a gather.
            v = v0[lo:hi].copy()
            d = decay[lo:hi]
            th = thr[lo:hi]
            cin = one - di * d  # input scale: 1 - decay with decay_input (di = 1), else exactly 1
            nbad = 0
            for t in range(T):
                xr = x[t, lo:hi]
                sr = s_out[t, lo:hi]
                hr = h_out[t * store, lo:hi]
                for j in range(n):
                    xv = xr[j]
                    h = d[j] * v[j] + cin[j] * xv
                    s = one if h >= th[j] else zero
                    sr[j] = s
                    hr[j] = h
                    nbad += (xv - xv) != zero  # inf - inf and NaN - NaN are NaN
                    if reset == 0:
                        v[j] = h - s * th[j]
                    elif reset == 1:
                        v[j] = h * (one - s)
                    else:
                        v[j] = h
            v_out[lo:hi] = v
            bad[c] = nbad

    return kernel


@lru_cache(maxsize=None)
def _backward_kernel(reset: int, sid: int, const_grad: bool):
    @numba.njit(parallel=True, cache=True, nogil=True)
    def kernel(gs, gvT, gh, has_gh, h, x, has_x, v0, decay, thr, gx, gv0, gd, gth, di, nd, k0, k1, one, zero):
        # di = 1 with decay_input (then x is [T, M], has_x = 1; else a [1, M] zero row);
        # nd = 0 with detach_reset. Runtime scalars, not branches: the inner loop stays vectorised.
        T, M = h.shape
        for c in numba.prange((M + CHUNK - 1) // CHUNK):
            lo = c * CHUNK
            hi = min(lo + CHUNK, M)
            n = hi - lo
            d = decay[lo:hi]
            th = thr[lo:hi]
            cin = one - di * d
            gv = gvT[lo:hi].copy()  # dL/dv_t (post-reset), carried backwards in time
            acc_d = np.zeros(n, h.dtype)
            acc_th = np.zeros(n, h.dtype)
            for t in range(T - 1, -1, -1):
                hr = h[t, lo:hi]
                # v_{t-1} (post-reset) is rebuilt from h_{t-1}; at t = 0 it is v0.
                hp = h[t - 1, lo:hi] if t > 0 else v0[lo:hi]
                first = t == 0
                # const_grad: dL/dS_t is the same for every neuron (a sum() or mean() loss gives a
                # stride-0 gradient): read one value per step instead of materialising [T, M].
                gsr = gs[t, 0:1] if const_grad else gs[t, lo:hi]
                ghr = gh[t * has_gh, lo:hi]
                gxr = gx[t, lo:hi]
                xr = x[t * has_x, lo:hi]
                for j in range(n):
                    ht = hr[j]
                    s = one if ht >= th[j] else zero
                    sg = _sg(ht - th[j], k0, k1, one, zero, sid)
                    g_v = gv[j]
                    g_s = gsr[0] if const_grad else gsr[j]
                    if reset == 0:
                        gst = g_s - nd * g_v * th[j]
                        acc_th[j] -= g_v * s
                        dh = ghr[j] + gst * sg + g_v
                    elif reset == 1:
                        gst = g_s - nd * g_v * ht
                        dh = ghr[j] + gst * sg + g_v * (one - s)
                    else:
                        gst = g_s
                        dh = ghr[j] + gst * sg + g_v
                    acc_th[j] -= gst * sg
                    vp = hp[j]
                    if not first:
                        sp = one if vp >= th[j] else zero
                        if reset == 0:
                            vp = vp - sp * th[j]
                        elif reset == 1:
                            vp = vp * (one - sp)
                    gxr[j] = cin[j] * dh
                    acc_d[j] += dh * (vp - di * xr[j])
                    gv[j] = d[j] * dh
            gv0[lo:hi] = gv
            gd[lo:hi] = acc_d
            gth[lo:hi] = acc_th

    return kernel


@contextmanager
def _threads(m: int):
    """Run a kernel on ``min(torch.get_num_threads(), chunks)`` numba threads.

    Follows the user's ``torch.set_num_threads``, and keeps small layers (one chunk) on the
    calling thread: waking a thread pool costs more than their whole scan, and much more when
    torch's and numba's OpenMP pools compete for the same cores.
    """
    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS, -(-m // CHUNK)))
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


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
    spikes = buffers.empty((T, M), cdt)
    v_final = torch.empty(M, dtype=cdt)
    h = buffers.empty((T, M), cdt) if store_trace else torch.empty((1, M), dtype=cdt)
    bad = np.zeros(max(1, -(-M // CHUNK)), dtype=np.int64)
    typ = np.float32 if cdt == torch.float32 else np.float64
    with _threads(M):
        _forward_kernel(reset)(
            _np(x), _np(v0), _np(decay), _np(threshold), _np(spikes), _np(v_final), _np(h),
            1 if store_trace else 0, typ(decay_input), typ(1), typ(0), bad,
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
    gs = grad_s.to(cdt)
    const_grad = M > 0 and gs.stride(1) == 0
    gs = gs[:, :1].contiguous() if const_grad else gs.contiguous()
    gvT = torch.zeros(M, dtype=cdt) if grad_vT is None else grad_vT.to(cdt).contiguous()
    has_gh = grad_h is not None and grad_h.numel() > 0
    gh = grad_h.to(cdt).reshape(T, M) if has_gh else torch.zeros((1, M), dtype=cdt)
    xs = x.to(cdt).contiguous() if decay_input else torch.zeros((1, M), dtype=cdt)
    v0, decay, threshold = (t.to(cdt).contiguous() for t in (v0, decay, threshold))
    gx = buffers.empty((T, M), cdt)
    gv0, gd, gth = (torch.empty(M, dtype=cdt) for _ in range(3))
    k0, k1 = surrogate_constants(surrogate, alpha)
    with _threads(M):
        _backward_kernel(reset, surrogate, const_grad)(
            _np(gs), _np(gvT), _np(gh), 1 if has_gh else 0, _np(h), _np(xs), 1 if decay_input else 0,
            _np(v0), _np(decay), _np(threshold), _np(gx), _np(gv0), _np(gd), _np(gth),
            typ(decay_input), typ(not detach_reset), typ(k0), typ(k1), typ(1), typ(0),
        )
    return gx.to(out_dtype), gv0.to(out_dtype), gd.to(out_dtype), gth.to(out_dtype)
