r"""The event engine of sparse delay taps: work per non-zero input only (:mod:`neurogate.cpu.delay`).

``E O ceil(J/8)`` 8-lane multiply-adds for ``E`` non-zero inputs. Spiking input is sparse: the
non-zero entries ``(t, b, i, v)`` of ``x`` are gathered once (:func:`neurogate.cpu.delay.events`),
and each event adds its synapses' taps into the output,

.. math::

    y[t + d_{\min}[o, i] + j, b, o] \mathrel{+}= v\, \mathrm{coef}[o, i, j]
    \quad \text{for all } o, j,

while ``grad_coef`` is the same walk reading instead of writing:
:math:`\mathrm{gcoef}[o, i, j] \mathrel{+}= v\, g[t + d_{\min}[o, i] + j, b, o]`. (``grad_x`` is
dense, as ``g`` is: the dense engine computes it.)

Layout. Work is split over blocks of ``OB`` outputs (no write races, no reductions, a result
independent of the thread count). For each batch entry, a block's outputs live in a zero-padded
scratch ``z [OB, W]`` (time contiguous, ``W`` covers every shifted tap), so the ``J`` taps of
synapse ``(o, i)`` are ``J`` consecutive floats of row ``o`` and one event updates each row with
one 8-lane vector multiply-add; the block's coefficients are laid out ``[I, OB, J8]`` (padded with
zero taps to ``J8``, a multiple of 8) by the kernel itself, once per call. ``z`` and ``y`` (or
``g``) ``[T, B, O]`` are exchanged through 8 x 8 register transposes (:func:`_transpose_lanes`;
measured 3x faster than element by element).

Walk. Within a block, the events of each batch entry are walked channel by channel, so that
consecutive events share their coefficients (in L1), in passes over the block's outputs of up to
4 events of one channel (:func:`_events_lanes`): the gradient keeps a pass's sum in a register
(measured 1.4x faster than one event per pass); the forward pass groups only events whose tap
windows do not overlap, since a load overlapping the store just before it waits for it.

Measured at SHD scale (T=100, B=64, 140 -> 256, 6 taps, one thread, 5 % input density): about
0.8 ns per (event, output) forward and 0.55 ns for the gradient, transposes included, about 3
times the dense engine's cost per (step, batch entry, synapse) at 6 taps, so events pay below about
40 % input density (below 7 % for one tap, where the dense engine is 13 times cheaper; the switch:
:func:`neurogate.cpu.delay.event_max_density`).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from . import buffers

__all__ = ["LANES", "forward", "grad_coef", "pooled"]

LANES = 8  # taps per vector multiply-add (8 floats: one AVX2 register)
EVENT_OUTPUTS = (16, 64)  # the fewest and most outputs per task (2 tasks per thread)
_FM = {"contract", "reassoc", "nsz", "arcp"}


def forward(ptr: np.ndarray, step: np.ndarray, val: np.ndarray, coef: torch.Tensor, d: np.ndarray, B: int,
            T: int) -> torch.Tensor:
    """``y [T, B, O]`` from the events of ``x`` (``ptr, step, val``), ``coef [O, I, J]`` and ``d [O, I]``."""
    y = buffers.empty((T, B, coef.shape[0]), coef.dtype)
    if y.numel():
        _walk(ptr, step, val, coef.contiguous().numpy(), d, y.view(-1).numpy(), T, B, False)
    return y


def grad_coef(ptr: np.ndarray, step: np.ndarray, val: np.ndarray, gy: torch.Tensor, d: np.ndarray,
              J: int) -> torch.Tensor:
    """``grad_coef [O, I, J]`` from the events of ``x`` and ``grad_y [T, B, O]``."""
    T, B, O = gy.shape
    gc = torch.empty((O, d.shape[1], J), dtype=gy.dtype)
    if gc.numel():
        _walk(ptr, step, val, gc.numpy(), d, gy.contiguous().view(-1).numpy(), T, B, True)
    return gc


def _walk(ptr, step, val, taps: np.ndarray, d: np.ndarray, dense: np.ndarray, T: int, B: int, grad: bool) -> None:
    """Picks the layout of :func:`_event_taps` for delays ``d [O, I]`` and ``J`` taps over ``T`` steps.

    Outputs go in blocks of ``OB``; output ``o0 + k`` of a block is row ``k`` of the scratch
    ``z [OB, W]``, time ``s`` at column ``front + s``; ``front`` makes negative delays land at
    column >= 0, ``W`` leaves room for the last padded tap. ``J8`` is ``J`` rounded up to whole
    vectors of ``LANES`` taps (``chunks``: a tuple, so that the tap loop's length is a
    compile-time constant).
    """
    O, I, J = taps.shape
    J8 = LANES * max(1, math.ceil(J / LANES))
    lo, hi = (int(d.min()), int(d.max())) if d.size else (0, 0)
    front = max(-lo, 0)
    W = front + T + max(hi, 0) + J8
    OB = min(EVENT_OUTPUTS[1], max(EVENT_OUTPUTS[0], -(-O // (2 * numba.get_num_threads()))))
    nblk = -(-O // OB)
    scratch = pooled((nblk, I * OB * J8), torch.float32 if taps.dtype == np.float32 else torch.float64).numpy()
    _event_taps(ptr, step, val, taps, d, dense, T, B, front, W, OB, (0,) * (J8 // LANES), scratch, grad)


def pooled(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor from the buffer pool (int32 as a view of a float32 buffer): the event
    engine's per-step arrays are megabytes, whose page faults on a fresh allocation cost more than
    filling them."""
    if dtype == torch.int32:
        return buffers.empty(shape, torch.float32).view(torch.int32)
    return buffers.empty(shape, dtype)


# --------------------------------------------------------------------------- kernels
def _events_lanes(gather: bool):
    """An intrinsic over ``N`` events ``(ts[n], vs[n])`` (tuples) of one channel and one output, 8 taps:

    * ``gather``: ``c[q : q + 8] += sum_n vs[n] * z[s + ts[n] : s + ts[n] + 8]``, the sum kept in a
      register (one load and one store of ``c`` for ``N`` events), added in the order of ``n``;
    * else: ``z[s + ts[n] : s + ts[n] + 8] += vs[n] * c[q : q + 8]`` for ``n = 0, 1, ...`` (one load
      of ``c``); the windows should not overlap (caller): a load that overlaps the store just before
      it waits for it, measured 2x slower than one event per pass.

    numba leaves LLVM's SLP vectoriser off, so eight scalar statements would stay scalar (and a loop
    of 8 is below the loop vectoriser's trip count). Both arrays 1-D, C-contiguous, of one float
    dtype; indices unchecked and used as given (the caller keeps them in bounds and >= 0).
    """

    @intrinsic
    def lanes(typingctx, c, q, z, s, ts, vs):
        if not (
            isinstance(c, types.Array) and isinstance(z, types.Array) and c.ndim == z.ndim == 1
            and c.layout == z.layout == "C" and c.dtype == z.dtype and isinstance(c.dtype, types.Float)
            and isinstance(ts, types.UniTuple) and isinstance(vs, types.UniTuple) and len(ts) == len(vs)
        ):
            return None

        def codegen(context, builder, signature, args):
            cty, qty, zty, sty, tsty, vsty = signature.args
            vty = ir.VectorType(context.get_value_type(cty.dtype), LANES)
            align = cty.dtype.bitwidth // 8
            cptr = context.make_array(cty)(context, builder, args[0]).data
            zptr = context.make_array(zty)(context, builder, args[2]).data
            s0 = context.cast(builder, args[3], sty, types.intp)
            cp = builder.bitcast(builder.gep(cptr, [context.cast(builder, args[1], qty, types.intp)]), vty.as_pointer())
            cv = builder.load(cp, align=align)
            undef = ir.Constant(vty, ir.Undefined)
            splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
            for n in range(len(tsty)):
                t = context.cast(builder, builder.extract_value(args[4], n), tsty.dtype, types.intp)
                v = context.cast(builder, builder.extract_value(args[5], n), vsty.dtype, cty.dtype)
                vv = builder.shuffle_vector(builder.insert_element(undef, v, ir.Constant(ir.IntType(32), 0)), undef,
                                            splat_mask)
                zp = builder.bitcast(builder.gep(zptr, [builder.add(s0, t)]), vty.as_pointer())
                zv = builder.load(zp, align=align)
                if gather:
                    cv = builder.fadd(cv, builder.fmul(vv, zv, flags=("contract",)), flags=("contract",))
                else:
                    builder.store(builder.fadd(zv, builder.fmul(vv, cv, flags=("contract",)), flags=("contract",)), zp,
                                  align=align)
            if gather:
                builder.store(cv, cp, align=align)
            return context.get_dummy_value()

        return types.void(c, q, z, s, ts, vs), codegen

    return lanes


_gather_lanes, _scatter_lanes = _events_lanes(True), _events_lanes(False)


@intrinsic
def _transpose_lanes(typingctx, dst, p, dstride, src, q, sstride):
    """``dst[p + c dstride + a] = src[q + a sstride + c]`` for ``a, c < 8``: an 8 x 8 tile transposed
    in registers (8 vector loads, 24 shuffles, 8 vector stores instead of 64 scalar moves).

    Arrays and indices as for :func:`_events_lanes`.
    """
    if not (
        isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.ndim == src.ndim == 1
        and dst.layout == src.layout == "C" and dst.dtype == src.dtype and isinstance(dst.dtype, types.Float)
    ):
        return None

    def codegen(context, builder, signature, args):
        dty, pty, psty, sty, qty, qsty = signature.args
        vty = ir.VectorType(context.get_value_type(dty.dtype), LANES)
        align = dty.dtype.bitwidth // 8
        dptr = context.make_array(dty)(context, builder, args[0]).data
        sptr = context.make_array(sty)(context, builder, args[3]).data
        p0 = context.cast(builder, args[1], pty, types.intp)
        ps = context.cast(builder, args[2], psty, types.intp)
        q0 = context.cast(builder, args[4], qty, types.intp)
        qs = context.cast(builder, args[5], qsty, types.intp)

        def at(base, start, stride, k):
            idx = builder.add(start, builder.mul(stride, ir.Constant(start.type, k)))
            return builder.bitcast(builder.gep(base, [idx]), vty.as_pointer())

        def mix(a, b, mask):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), LANES), mask))

        r = [builder.load(at(sptr, q0, qs, k), align=align) for k in range(LANES)]  # rows a = k
        lo, hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]  # unpacklo / unpackhi, per 128 bits
        ev, od = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]  # even / odd pairs, per 128 bits
        first, second = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]  # 128-bit halves
        pairs = [(mix(r[a], r[a + 1], lo), mix(r[a], r[a + 1], hi)) for a in range(0, LANES, 2)]
        quads = []  # quads[h][c]: rows 4h ... 4h + 3 of columns c (low half) and c + 4 (high half)
        for (l0, h0), (l1, h1) in (pairs[0:2], pairs[2:4]):
            quads.append([mix(l0, l1, ev), mix(l0, l1, od), mix(h0, h1, ev), mix(h0, h1, od)])
        cols = [mix(quads[0][c], quads[1][c], first) for c in range(4)]
        cols += [mix(quads[0][c], quads[1][c], second) for c in range(4)]
        for k in range(LANES):
            builder.store(cols[k], at(dptr, p0, ps, k), align=align)
        return context.get_dummy_value()

    return types.void(dst, p, dstride, src, q, sstride), codegen


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _event_taps(ptr, step, val, taps, d, dense, T, B, front, W, OB, chunks, scratch, grad):
    # The event engine's one walk (layout: _walk), for every event (t, b, i, v) (delay.events),
    # output o and tap j < J8:
    #   grad=False: dense = y, taps = coef:   y[t + d[o, i] + j, b, o] += v * coef[o, i, j]
    #   grad=True:  dense = g, taps = gcoef:  gcoef[o, i, j] += v * g[t + d[o, i] + j, b, o]
    # (g zero outside [0, T)). Per block of OB outputs: the block's taps as c [I, OB, J8] (zero
    # taps from J to J8), so that consecutive outputs of one channel are consecutive vectors, and
    # off[i, k] = k W + front + d[o0 + k, i], where tap 0 of an event at step 0 lands in z.
    O, I, J = taps.shape
    J8 = len(chunks) * LANES
    U = numba.uint64  # unsigned indices: no negative-index wraparound code in the inner loop
    nblk = (O + OB - 1) // OB
    zs = np.zeros((nblk, OB * W), dense.dtype)  # grad: the pads stay zero
    offs = np.empty((nblk, I * OB), np.int32)
    for blk in numba.prange(nblk):
        o0 = blk * OB
        n = min(O, o0 + OB) - o0
        z, off, c = zs[blk], offs[blk], scratch[blk]
        for k in range(n):
            for i in range(I):
                off[i * OB + k] = k * W + front + d[o0 + k, i]
                q = (i * OB + k) * J8
                for j in range(J8):
                    c[q + j] = taps[o0 + k, i, j] if j < J and not grad else 0
        for b in range(B):
            if grad:
                _tile_copy(z, dense, T, B * O, b * O + o0, n, W, front, True)
            else:
                z[:] = 0
            for i in range(I):
                row = U(i * OB)
                e, e1 = ptr[b * I + i], ptr[b * I + i + 1]
                while e < e1:  # the channel's events in groups of 4, 2, 1 (forward: not overlapping)
                    m = _group_size(step, e, e1, 0 if grad else J8)
                    if m == 4:
                        ts, vs = (U(step[e]), U(step[e + 1]), U(step[e + 2]), U(step[e + 3])), val[e : e + 4]
                        _events_pass(c, z, off, row, n, chunks, ts, (vs[0], vs[1], vs[2], vs[3]), grad)
                    elif m == 2:
                        ts2 = (U(step[e]), U(step[e + 1]))
                        _events_pass(c, z, off, row, n, chunks, ts2, (val[e], val[e + 1]), grad)
                    else:
                        _events_pass(c, z, off, row, n, chunks, (U(step[e]),), (val[e],), grad)
                    e += m
            if not grad:
                _tile_copy(z, dense, T, B * O, b * O + o0, n, W, front, False)
        if grad:
            for k in range(n):
                for i in range(I):
                    for j in range(J):
                        taps[o0 + k, i, j] = c[(i * OB + k) * J8 + j]


@numba.njit(inline="always", cache=True)
def _group_size(step, e, e1, gap):
    # 4, 2 or 1: how many events from e on go in one pass (successive steps >= gap apart)
    if e + 2 > e1 or step[e + 1] - step[e] < gap:
        return 1
    if e + 4 > e1 or step[e + 2] - step[e + 1] < gap or step[e + 3] - step[e + 2] < gap:
        return 2
    return 4


@numba.njit(inline="always", cache=True)
def _events_pass(c, z, off, row, n, chunks, ts, vs, grad):
    # the events (ts, vs) of one channel for outputs k = row ... row + n - 1 of the block (c [., J8], z)
    U = numba.uint64
    J8 = U(len(chunks) * LANES)
    for k in range(row, row + U(n)):
        s = U(off[k])
        for h in range(len(chunks)):
            if grad:
                _gather_lanes(c, k * J8 + U(h * LANES), z, s + U(h * LANES), ts, vs)
            else:
                _scatter_lanes(c, k * J8 + U(h * LANES), z, s + U(h * LANES), ts, vs)


@numba.njit(inline="always", cache=True)
def _tile_copy(z, dense, T, ts, c0, n, W, front, to_z):
    # z[k W + front + t] <-> dense[t ts + c0 + k] for t < T, k < n (to_z: dense -> z), through
    # 8 x 8 register transposes; the edges not covering a whole tile element by element
    T8, n8 = T - T % LANES, n - n % LANES
    for t0 in range(0, T8, LANES):
        for k0 in range(0, n8, LANES):
            if to_z:
                _transpose_lanes(z, k0 * W + front + t0, W, dense, t0 * ts + c0 + k0, ts)
            else:
                _transpose_lanes(dense, t0 * ts + c0 + k0, ts, z, k0 * W + front + t0, W)
    for t in range(T):
        for k in range(n8 if t < T8 else 0, n):
            if to_z:
                z[k * W + front + t] = dense[t * ts + c0 + k]
            else:
                dense[t * ts + c0 + k] = z[k * W + front + t]
