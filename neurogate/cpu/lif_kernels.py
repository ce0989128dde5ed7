"""The numba kernels of the fused LIF engine :mod:`neurogate.cpu.lif` (which plans and calls them).


One forward kernel and one backward kernel, each a single pass over ``[T, M]``, parallel over
chunks of neurons (``prange``) with the inner loop over contiguous neurons so that it vectorises
(16-lane AVX-512 code on this machine, no gathers: checked in the generated assembly). The design
below was measured at (T, B, N) = (25, 128, 4096), float32, 2 threads, where the memory-bound floor
is ``copy_``/``fill_`` of the same bytes: 4.8 ms forward (read x, write spikes and h), 3.3 ms
backward (read h, write grad_x). The previous design ran its kernels in 7.6 ms (1.7x) and 8.4 ms
(2.8x); this one in about 1.0x and 1.3x of the floor measured alongside.

Specialisation. Reset mode, surrogate, whether the spike gradient is one value per step (a
``sum()`` or ``mean()`` loss: stride 0), whether ``h`` is stored, and whether decay and threshold
are broadcast scalars are compile-time constants: a kernel that branches on them in its inner loop
does not vectorise (measured: 4x slower backward), and a runtime flag that multiplies by 0 or 1
still reads the unused operand every step. ``decay_input``, the trace gradient and
``detach_reset`` are runtime values: the first two guard loads of rows that are absent otherwise
(a branch on a loop-invariant flag; measured at the three benchmark shapes: no slower than
compiling them in, within noise; the generated code was not inspected). Keeping them at
runtime matters for the compile cost, which is paid once per combination on first use and then
cached on disk (``cache=True``): with all six flags compiled in, the backward had 288 variants,
each taking 5.9 s to compile cold, and the cold-cache LIF tests took 9 minutes; now 72 variants of
5.3 s (forward: 12 of 3 s), and a fresh process with a warm cache pays about 1.3 s on its first call.

Chunks. A chunk of neurons walks all ``T`` steps; each step reads and writes one contiguous row
segment per array. Segment length sets the speed: the hardware prefetcher ramps up anew on every
segment, so the old 512-neuron (2 KB) segments held even a plain copy to half of the bandwidth
(a copy with that access pattern: 11 ms; with 8192-neuron segments 6.4 ms; unchunked 5.2 ms).
Chunks are therefore as long as the thread count allows, up to :data:`.lif.MAX_CHUNK` neurons (128 KB
rows, so that a chunk's per-neuron state stays in L2).

Registers, not arrays. With long chunks the per-neuron state (membrane, dL/dv, parameter-gradient
accumulators, expanded parameters) lives in L2 rather than L1, and streaming it every step made the
kernels compute/L2 bound rather than memory bound. So: (1) broadcast-scalar decay and threshold
are held in registers (``scalar`` variants); (2) the forward and the backward take two steps per
pass, so the state is loaded and stored once per pass, and the backward compares each
``h`` row with the threshold once for both its own spike and the reset the next step sees; (3)
with scalar parameters the backward sums their gradients per vector lane (``reassoc``) and writes
one total per chunk instead of two ``[M]`` accumulators (see :func:`.lif.backward`'s
``reduce_params``); (4) the backward selects where the forward multiplies by the spike (another
7%: 0.92 against 1.01 ms at (100, 32, 1024), 4.06 against 4.13 ms at (25, 128, 4096)).
Measured (medians of interleaved runs on a loaded 2-core machine, so ratios rather than absolute
times): backward at (T, M) = (100, 32768) on one thread, per-neuron accumulators 3.3 ms, scalar
sums in registers 2.3 ms, a copy of the same rows 1.1 ms; on two threads, one step per pass
1.94 ms, two steps 1.43 ms, against a 1.23 ms copy. Four steps per pass were another 7% at
(25, 128, 4096) (6.3 against 6.8 ms, copy 4.5 ms) but took 8.6 s to compile per variant against
5.3 s for two steps (2.5 s with the single-step loop alone), so two it is. Forward at
(100, 32, 1024), two threads: parameters from arrays 2.15 ms, in registers 1.57 ms, two steps per
pass 1.36 ms, against 1.62 ms for ``copy_`` + ``fill_``; four steps were no faster than two.

Non-finite input is detected with a vectorised flag per chunk and counted exactly only when the
flag is set. All forward arithmetic stays in the tensor's dtype (typed constants, no float64
promotion, no FMA contraction) so the forward pass equals the reference bit for bit; the backward
kernel allows reassociation (gradients agree to fp32 rounding).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np

__all__ = ["backward_kernel", "forward_kernel", "params_all_ok"]


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


@numba.njit(inline="always", cache=True)
def _post(h, s, th, one, reset):
    """The membrane after the reset, from the pre-reset ``h`` and the spike ``s``."""
    if reset == 0:
        return h - s * th
    elif reset == 1:
        return h * (one - s)
    return h


@numba.njit(inline="always", cache=True)
def _expand(src, lo, hi):
    """``src[lo:hi]`` of an ``[M]`` array, or a chunk-long copy of a one-element (broadcast) array."""
    if src.shape[0] == 1 and hi - lo != 1:
        out = np.empty(hi - lo, src.dtype)
        out[:] = src[0]
        return out
    return src[lo:hi]


@numba.njit(inline="always", cache=True)
def _fill(dst, src, lo):
    """``dst[:] = src[lo:lo + len(dst)]``, broadcasting a one-element ``src``."""
    if src.shape[0] == 1:
        dst[:] = src[0]
    else:
        dst[:] = src[lo:lo + dst.shape[0]]


@numba.njit(inline="always", cache=True)
def _fstep(xv, v, d, th, one, zero, reset, di):
    """One step forwards: ``(h_t, S_t, v_t)`` from ``x_t`` and ``v_{t-1}``."""
    # decay_input: (1 - decay) x, exactly as the reference computes it
    h = d * v + ((one - d) * xv if di else xv)
    s = one if h >= th else zero
    return h, s, _post(h, s, th, one, reset)


@lru_cache(maxsize=None)
def forward_kernel(reset: int, store: bool, scalar: bool):
    @numba.njit(parallel=True, cache=True, nogil=True)
    def kernel(x, v0, decay, thr, s_out, v_out, h_out, bad, di, one, zero, chunk):
        # store: write h (else h_out is a dummy); scalar: decay and thr are one-element
        # broadcasts, held in registers.
        T, M = x.shape
        for c in numba.prange((M + chunk - 1) // chunk):
            lo = c * chunk
            hi = min(lo + chunk, M)
            n = hi - lo
            # Row slices indexed by the loop counter j >= 0: with a possibly negative index
            # (lo + j) numba's wraparound check turns every access into a gather.
            v = v_out[lo:hi]  # the state, in place in the output
            _fill(v, v0, lo)
            d0 = decay[0]
            t0 = thr[0]
            d = decay[0:1] if scalar else _expand(decay, lo, hi)
            th = thr[0:1] if scalar else _expand(thr, lo, hi)
            nonfinite = False
            t = 0
            # Two steps per pass: the state and parameters are loaded once for both.
            while t + 2 <= T:
                xa = x[t, lo:hi]
                xb = x[t + 1, lo:hi]
                sa = s_out[t, lo:hi]
                sb = s_out[t + 1, lo:hi]
                ha = h_out[t if store else 0, lo:hi]
                hb = h_out[t + 1 if store else 0, lo:hi]
                for j in range(n):
                    dj = d0 if scalar else d[j]
                    tj = t0 if scalar else th[j]
                    x0 = xa[j]
                    x1 = xb[j]
                    h0, s0, vj = _fstep(x0, v[j], dj, tj, one, zero, reset, di)
                    h1, s1, vj = _fstep(x1, vj, dj, tj, one, zero, reset, di)
                    sa[j] = s0
                    sb[j] = s1
                    if store:
                        ha[j] = h0
                        hb[j] = h1
                    v[j] = vj
                    nonfinite |= ((x0 - x0) != zero) | ((x1 - x1) != zero)  # inf - inf, NaN - NaN
                t += 2
            if t < T:
                xa = x[t, lo:hi]
                sa = s_out[t, lo:hi]
                ha = h_out[t if store else 0, lo:hi]
                for j in range(n):
                    x0 = xa[j]
                    h0, s0, vj = _fstep(x0, v[j], d0 if scalar else d[j], t0 if scalar else th[j],
                                        one, zero, reset, di)
                    sa[j] = s0
                    if store:
                        ha[j] = h0
                    v[j] = vj
                    nonfinite |= (x0 - x0) != zero
            nbad = 0
            if nonfinite:  # rare: count exactly
                for t in range(T):
                    xa = x[t, lo:hi]
                    for j in range(n):
                        nbad += (xa[j] - xa[j]) != zero
            bad[c] = nbad

    return kernel


@numba.njit(inline="always", cache=True)
def _bstep(ht, fired, g_s, g_h, g_v, th, nd, k0, k1, one, zero, reset, sid, has_gh):
    """One step backwards: ``(dL/dh_t, dL/dthreshold contribution)`` given ``dL/dv_t = g_v``.

    ``fired`` is the spike as a boolean: the backward pass selects where the forward multiplies
    by ``S_t`` (a select instead of a multiply; the two differ only in the sign of zeros and
    for non-finite operands, which gradients do not see).
    """
    sg = _sg(ht - th, k0, k1, one, zero, sid)
    if reset == 0:
        q = (g_s - nd * g_v * th) * sg
        dth = -(q + (g_v if fired else zero))
        dh = q + g_v
    elif reset == 1:
        q = (g_s - nd * g_v * ht) * sg
        dth = -q
        dh = q + (zero if fired else g_v)
    else:
        q = g_s * sg
        dth = -q
        dh = q + g_v
    if has_gh:
        dh = g_h + dh
    return dh, dth


@numba.njit(inline="always", cache=True)
def _post_b(h, fired, th, zero, reset):
    """:func:`_post` for the backward pass, from the spike as a boolean (see :func:`_bstep`)."""
    if reset == 0:
        return h - th if fired else h
    elif reset == 1:
        return zero if fired else h
    return h


@lru_cache(maxsize=None)
def backward_kernel(reset: int, sid: int, const_grad: bool, scalar: bool):
    # reassoc (+ nsz): lets the scalar variant's parameter-gradient sums vectorise (one partial
    # sum per lane, reduced once per row) and lets LLVM regroup the gradient arithmetic; fp32
    # rounding of gradients only. Spikes are recomputed with the forward's exact comparison.
    @numba.njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc", "nsz"})
    def kernel(gs, gvT, gh, h, x, v0, decay, thr, gx, gv0, gd, gth, has_gh, di, nd, k0, k1, one, zero,
               chunk):
        # const_grad: dL/dS_t is the same for every neuron (gs is [T, 1]); has_gh: gh is
        # [T, M] (else a dummy); di (decay_input): x is [T, M] (else a dummy). scalar: decay and
        # thr are one-element broadcasts, held in registers, and gd / gth receive one total per
        # chunk; else gd / gth are [M] and accumulate per neuron.
        T, M = h.shape
        for c in numba.prange((M + chunk - 1) // chunk):
            lo = c * chunk
            hi = min(lo + chunk, M)
            n = hi - lo
            d0 = decay[0]
            t0 = thr[0]
            d = decay[0:1] if scalar else _expand(decay, lo, hi)
            th = thr[0:1] if scalar else _expand(thr, lo, hi)
            # The carried state lives in the outputs: dL/dv_t (post-reset) in gv0, per-neuron
            # parameter gradients in gd and gth.
            gv = gv0[lo:hi]
            _fill(gv, gvT, lo)
            ad = gd[lo:hi]
            at = gth[lo:hi]
            if not scalar:
                ad[:] = zero
                at[:] = zero
            sum_d = zero
            sum_th = zero
            t = T - 1
            # Two steps per pass (t and t-1, rows t .. t-2): dL/dv and the parameter gradients
            # stay in registers for both steps, and each h row is compared with the threshold
            # once for the spike of its own step and the reset seen by the next.
            while t >= 2:
                r0 = h[t, lo:hi]
                r1 = h[t - 1, lo:hi]
                r2 = h[t - 2, lo:hi]
                o0 = gx[t, lo:hi]
                o1 = gx[t - 1, lo:hi]
                q0 = gs[t, 0:1] if const_grad else gs[t, lo:hi]
                q1 = gs[t - 1, 0:1] if const_grad else gs[t - 1, lo:hi]
                e0 = gh[t if has_gh else 0, lo:hi]
                e1 = gh[t - 1 if has_gh else 0, lo:hi]
                w0 = x[t if di else 0, lo:hi]
                w1 = x[t - 1 if di else 0, lo:hi]
                row_d = zero
                row_th = zero
                for j in range(n):
                    tj = t0 if scalar else th[j]
                    dj = d0 if scalar else d[j]
                    ha = r0[j]
                    hb = r1[j]
                    hc = r2[j]
                    sa = ha >= tj
                    sb = hb >= tj
                    # v_{t-1} (post-reset) for both steps, minus x_t with decay_input
                    va = _post_b(hb, sb, tj, zero, reset)
                    vb = _post_b(hc, hc >= tj, tj, zero, reset)
                    if di:
                        va = va - w0[j]
                        vb = vb - w1[j]
                    dh, acc_th = _bstep(ha, sa, q0[0] if const_grad else q0[j], e0[j] if has_gh else zero,
                                        gv[j], tj, nd, k0, k1, one, zero, reset, sid, has_gh)
                    o0[j] = (one - dj) * dh if di else dh
                    acc_d = dh * va
                    dh, dth = _bstep(hb, sb, q1[0] if const_grad else q1[j], e1[j] if has_gh else zero,
                                     dj * dh, tj, nd, k0, k1, one, zero, reset, sid, has_gh)
                    o1[j] = (one - dj) * dh if di else dh
                    acc_d += dh * vb
                    acc_th += dth
                    gv[j] = dj * dh
                    if scalar:
                        row_d += acc_d
                        row_th += acc_th
                    else:
                        ad[j] += acc_d
                        at[j] += acc_th
                sum_d += row_d
                sum_th += row_th
                t -= 2
            # The last (up to two) steps one at a time; step 0 reads v0.
            while t >= 0:
                hr = h[t, lo:hi]
                o = gx[t, lo:hi]
                first = t == 0
                if first:
                    _fill(o, v0, lo)  # v_{-1} = v0, parked in grad_x's row 0 (read before written)
                    hp = o
                else:
                    hp = h[t - 1, lo:hi]
                q = gs[t, 0:1] if const_grad else gs[t, lo:hi]
                e = gh[t if has_gh else 0, lo:hi]
                w = x[t if di else 0, lo:hi]
                row_d = zero
                row_th = zero
                for j in range(n):
                    ht = hr[j]
                    tj = t0 if scalar else th[j]
                    dj = d0 if scalar else d[j]
                    vp = hp[j]
                    if not first:
                        vp = _post_b(vp, vp >= tj, tj, zero, reset)
                    if di:
                        vp = vp - w[j]
                    dh, dth = _bstep(ht, ht >= tj, q[0] if const_grad else q[j],
                                     e[j] if has_gh else zero, gv[j], tj, nd, k0, k1, one, zero, reset, sid, has_gh)
                    o[j] = (one - dj) * dh if di else dh
                    gv[j] = dj * dh
                    if scalar:
                        row_d += dh * vp
                        row_th += dth
                    else:
                        ad[j] += dh * vp
                        at[j] += dth
                sum_d += row_d
                sum_th += row_th
                t -= 1
            if scalar:
                gd[c] = sum_d
                gth[c] = sum_th

    return kernel


@numba.njit(cache=True, nogil=True)
def params_all_ok(a, lo, hi, bounded):
    bad = False
    for i in range(a.shape[0]):
        v = a[i]
        bad |= (v - v) != 0  # NaN or inf
        if bounded:
            bad |= (v < lo) | (v > hi)
    return not bad
