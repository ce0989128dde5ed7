r"""Triton LIF scan that recomputes the membrane in its backward pass (``saved_membrane="recompute"``).

Why: on a GPU both fused passes are bound by memory traffic. Saving the pre-reset membrane
:math:`h_t` costs the forward a float write and the backward a float read per element; keeping the
input instead costs nothing in the forward (``x`` exists anyway) and one read of ``x`` in the
backward. Per element of a float32 layer with a dense spike gradient:

=============  ====================================  ===================================
mode           forward                               backward
=============  ====================================  ===================================
``"float"``    read x, write S, write h: 12 B        read grad_S and h, write grad_x: 12 B
recompute      read x, write S: 8 B (+ 4/K)          read grad_S and x, write grad_x: 12 B (+ 4/K)
=============  ====================================  ===================================

24 B against 20 B + 8/K, and for float16/bfloat16 inputs 16 B against 10 B + 8/K (``h`` is float32
for half inputs, ``x`` is not). The memory kept is ``x`` plus the checkpoints: the same as one
saved float32 membrane for a float32 layer whose input is kept anyway, half of it for half inputs.

How: the forward (:func:`neurogate.cuda.lif.forward` with ``checkpoint_every=K``) stores the
post-reset membrane entering every block of ``K`` steps, :math:`v_{cK-1}` (``v0`` for ``c = 0``).
The backward walks the blocks from the last to the first; for each it loads the ``[K, BLOCK]``
tiles of ``x`` and ``grad_S`` at once (``K`` rows in flight per program), recomputes
:math:`h_{cK} .. h_{cK+K-1}` from the checkpoint with the forward's exact operations (same order,
same rounding, FMA contraction off in both kernels, so the recomputed :math:`h` and spikes are
bit-identical to the forward's), then runs the backward recurrence of :mod:`neurogate.cuda.lif`
(:func:`~neurogate.cuda.lif._backward_step`, shared) over the block in reverse. Rows of a tile are
selected with compile-time masks (``K`` is a ``tl.constexpr`` and the block loops are unrolled),
so a row read is a register move once the compiler folds the constant selects.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import lif as _lif

__all__ = ["CHECKPOINT_EVERY", "backward"]

CHECKPOINT_EVERY = 8  # K, a power of two (a tile dimension): benchmarks/gpu_lif.py sweeps it


@triton.jit
def _row(tile, sel, k: tl.constexpr):
    """Row ``k`` of a ``[K, BLOCK]`` register tile (``sel`` = ``arange(0, K)[:, None]``)."""
    return tl.sum(tl.where(sel == k, tile, 0.0), axis=0)


@triton.jit
def _backward_recompute_kernel(
    gs_ptr, gvT_ptr, x_ptr, ck_ptr, decay_ptr, thr_ptr, k_ptr,
    gx_ptr, gv0_ptr, gd_ptr, gth_ptr,
    T, M, s_gs_t, s_gs_m, s_gvT, s_x_t, s_x_m, s_d, s_th,
    RESET: tl.constexpr, SURROGATE: tl.constexpr, DECAY_INPUT: tl.constexpr,
    DETACH_RESET: tl.constexpr, HAS_GVT: tl.constexpr, K: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    d = tl.load(decay_ptr + offs * s_d, mask=mask, other=0.0)
    th = tl.load(thr_ptr + offs * s_th, mask=mask, other=0.0)
    c = 1.0 - d  # as in the forward kernel
    k0 = tl.load(k_ptr)
    k1 = tl.load(k_ptr + 1)
    if HAS_GVT:
        g_v = tl.load(gvT_ptr + offs * s_gvT, mask=mask, other=0.0).to(d.dtype)
    else:
        g_v = tl.zeros([BLOCK], dtype=d.dtype)
    acc_d = tl.zeros([BLOCK], dtype=d.dtype)
    acc_th = tl.zeros([BLOCK], dtype=d.dtype)
    sel = tl.arange(0, K)[:, None]
    n_blocks = tl.cdiv(T, K)
    for i in range(n_blocks):
        blk = n_blocks - 1 - i
        t0 = blk * K
        rows = (t0 + tl.arange(0, K)).to(tl.int64)
        tmask = (rows < T)[:, None] & mask[None, :]
        xs = tl.load(x_ptr + rows[:, None] * s_x_t + (offs * s_x_m)[None, :], mask=tmask, other=0.0)
        xs = xs.to(d.dtype)
        gss = tl.load(gs_ptr + rows[:, None] * s_gs_t + (offs * s_gs_m)[None, :], mask=tmask, other=0.0)
        gss = gss.to(d.dtype)
        v_in = tl.load(ck_ptr + tl.cast(blk, tl.int64) * M + offs, mask=mask, other=0.0)
        # Recompute h over the block, as the forward kernel did.
        hs = tl.zeros([K, BLOCK], dtype=d.dtype)
        v = v_in
        for k in tl.static_range(K):
            xv = _row(xs, sel, k)
            if DECAY_INPUT:
                h = d * v + c * xv
            else:
                h = d * v + xv
            hs = tl.where(sel == k, h[None, :], hs)
            v = _lif._post_reset(h, (h >= th).to(h.dtype), th, RESET)
        # The backward recurrence over the block, last step first.
        gxs = tl.zeros([K, BLOCK], dtype=d.dtype)
        for kk in tl.static_range(K):
            k = K - 1 - kk
            ht = _row(hs, sel, k)
            if k > 0:
                hp = _row(hs, sel, k - 1)
                vp = _lif._post_reset(hp, (hp >= th).to(hp.dtype), th, RESET)
            else:
                vp = v_in
            if DECAY_INPUT:
                xv = _row(xs, sel, k)
            else:
                xv = d  # unused
            gx, g_v_k, acc_d_k, acc_th_k = _lif._backward_step(
                ht, vp, xv, _row(gss, sel, k), d, g_v, d, th, k0, k1, acc_d, acc_th,
                RESET, SURROGATE, DECAY_INPUT, DETACH_RESET, False,
            )
            live = t0 + k < T  # the last block may run past T: its extra steps change nothing
            g_v = tl.where(live, g_v_k, g_v)
            acc_d = tl.where(live, acc_d_k, acc_d)
            acc_th = tl.where(live, acc_th_k, acc_th)
            gxs = tl.where(sel == k, gx[None, :], gxs)
        tl.store(gx_ptr + rows[:, None] * M + offs[None, :], gxs.to(gx_ptr.dtype.element_ty), mask=tmask)
    tl.store(gv0_ptr + offs, g_v.to(gv0_ptr.dtype.element_ty), mask=mask)
    tl.store(gd_ptr + offs, acc_d.to(gd_ptr.dtype.element_ty), mask=mask)
    tl.store(gth_ptr + offs, acc_th.to(gth_ptr.dtype.element_ty), mask=mask)


def _config(m: int, device: torch.device, itemsize: int = 4) -> tuple[int, int]:
    """``(BLOCK, num_warps)`` for the backward kernel on inputs of ``itemsize`` bytes.

    Row reads of a tile are register moves only while each thread holds every row of its columns:
    Triton gives each thread 16-byte vectors along the neurons (4 float32 or 8 float16), so the
    warps must fit along one row, ``BLOCK >= 32 * num_warps * 16 / itemsize``; otherwise the layout
    spreads rows over threads and each row read becomes a cross-thread reduction (measured on an
    H100: float16 with BLOCK=512 and 4 warps ran 3.4x slower than the float mode). Four
    ``[K, BLOCK]`` register tiles per program bound the block at 512.
    """
    block, warps = _lif._config(m, device)
    if device.type == "cuda" and not _lif._interpreted():
        vec = max(1, 16 // itemsize)
        block = max(min(block, 512), 32 * vec)
        warps = max(1, min(warps, block // (32 * vec)))
    return block, warps


def backward(
    grad_s: torch.Tensor,
    grad_vT: torch.Tensor | None,
    x: torch.Tensor,
    checkpoints: torch.Tensor,
    v0: torch.Tensor,
    decay: torch.Tensor,
    threshold: torch.Tensor,
    *,
    alpha: float,
    reset: int,
    surrogate: int,
    decay_input: bool,
    detach_reset: bool,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(grad_x, grad_v0, grad_decay, grad_threshold)`` from ``x`` and the forward's checkpoints
    (taken every ``checkpoint_every`` steps: the value given to :func:`forward`)."""
    _lif._check_device(x)
    out_dtype = v0.dtype
    cdt = checkpoints.dtype
    T, M = x.shape
    dev = x.device
    K = int(checkpoint_every)
    if checkpoints.shape != (triton.cdiv(T, K), M):  # an engine bug, not a user error
        raise RuntimeError(f"checkpoints {tuple(checkpoints.shape)} do not match [T, M] = [{T}, {M}] every {K} steps")
    decay, threshold = (_lif._flat(t, cdt, M) for t in (decay, threshold))
    if T == 0 or M == 0:
        return _lif._no_work_grads(T, M, grad_vT, out_dtype, dev)
    gx, gv0, gd, gth = _lif._grad_buffers(T, M, out_dtype, dev)
    gs = _lif._as_2d(grad_s, T, M)
    has_gvT = grad_vT is not None
    gvT = grad_vT.reshape(M) if has_gvT else checkpoints
    k = _lif._surrogate_tensor(surrogate, float(alpha), cdt, dev)
    block, warps = _config(M, dev, x.element_size())
    _backward_recompute_kernel[(triton.cdiv(M, block),)](
        gs, gvT, x, checkpoints, decay, threshold, k, gx, gv0, gd, gth,
        T, M, gs.stride(0), gs.stride(1), gvT.stride(0) if has_gvT else 0,
        x.stride(0), x.stride(1), decay.stride(0), threshold.stride(0),
        RESET=reset, SURROGATE=surrogate, DECAY_INPUT=bool(decay_input),
        DETACH_RESET=bool(detach_reset), HAS_GVT=has_gvT, K=K, BLOCK=block,
        num_warps=warps, enable_fp_fusion=False,
    )
    return tuple(g.to(out_dtype) for g in (gx, gv0, gd, gth))
