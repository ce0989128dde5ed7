"""Fused Triton engine for :func:`neurogate.functional.lif_scan` (contract: :mod:`..functional.lif_op`).

The equations are the module docstring of :mod:`neurogate.functional.lif`; the backward recurrence
and the surrogate closed forms are those of the numba engine :mod:`neurogate.cpu.lif`, operation
for operation, so the two engines agree to rounding.

Layout: one program owns ``BLOCK`` contiguous neurons of the flat ``[T, M]`` problem and loops over
time inside the kernel (forward: ``t = 0 .. T-1``, backward: ``t = T-1 .. 0``), keeping the membrane,
the carried gradient and the per-neuron accumulators in registers. Each ``[T, M]`` tensor is read or
written once per pass, so both passes are bound by memory bandwidth. The reset mode, surrogate,
``decay_input``, ``detach_reset``, ``store_trace`` and the presence of optional gradients are
``tl.constexpr``: each combination compiles its own branch-free kernel.

What the forward keeps for the backward (``saved_membrane``, :mod:`..functional.saved_membrane`):
the float membrane ``h``; or its 1-byte fp8 code, written by the forward kernel and decoded on
load by the backward kernel (:mod:`.fp8`, ``FP8``); or, for ``"recompute"``, only checkpoints of the
membrane every ``CKPT`` steps, from which :mod:`.lif_recompute`'s backward kernel recomputes ``h``.

Precision: the state dtype (membrane, ``h``, the arithmetic) is float32 for float16/bfloat16/float32
inputs and float64 for float64 inputs; half inputs are converted on load and spikes are stored in
the input dtype. Kernels are compiled with ``enable_fp_fusion=False``: otherwise the GPU compiler
contracts ``decay * v + x`` into one FMA, which rounds once where PyTorch's eager reference rounds
twice, and a spike whose ``h`` is within a rounding step of the threshold could flip. With fusion
off the forward pass equals the reference bit for bit (verified under the interpreter, which
evaluates with numpy; on a GPU, ``benchmarks/gpu_lif.py`` checks it). Backward differs from the
reference only in summation order and, on a GPU, in the surrogates' ``exp`` (``ex2.approx``) and
float32 division (``div.full.f32``, within 2 ulp): well inside float32 tolerance. Under the
interpreter it equals the numba engine bit for bit except for ``exp`` (numpy's against numba's).

Address arithmetic is int64 throughout (offsets start from an int64 ``program_id`` and advance by
row strides), so ``T * M`` may exceed ``2**31``. Gradients arrive in any layout (``spikes.sum()``
gives a stride-0 expand): their strides are passed to the kernel instead of copying them.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import triton
import triton.language as tl

from ..surrogate import surrogate_constants
from ..errors import ConfigError
from . import fp8

__all__ = ["backward", "forward"]


# --------------------------------------------------------------------------- kernels
@triton.jit
def _post_reset(h, s, th, RESET: tl.constexpr):
    """:math:`v_t` from :math:`h_t` and :math:`S_t` (reset ids as in ``functional.lif.RESETS``)."""
    if RESET == 0:
        v = h - s * th
    elif RESET == 1:
        v = h * (1.0 - s)
    else:
        v = h
    return v


@triton.jit
def _surrogate(u, k0, k1, SURROGATE: tl.constexpr):
    """:math:`\\sigma'(u)` from ``(k0, k1) = surrogate_constants(id, alpha)``, as in ``cpu.lif_kernels._sg``."""
    if SURROGATE == 0:  # atan
        z = k1 * u
        sg = k0 / (1.0 + z * z)
    elif SURROGATE == 1:  # fast sigmoid
        z = 1.0 + k1 * tl.abs(u)
        sg = 1.0 / (z * z)
    elif SURROGATE == 2:  # sigmoid
        e = 1.0 / (1.0 + tl.exp(-k1 * u))
        sg = k0 * e * (1.0 - e)
    elif SURROGATE == 3:  # triangle
        sg = k0 * tl.maximum(1.0 - k1 * tl.abs(u), 0.0)
    elif SURROGATE == 4:  # rectangular
        sg = tl.where(tl.abs(u) < k1, k0, 0.0 * k0)
    else:  # erf
        z = k1 * u
        sg = k0 * tl.exp(-(z * z))
    return sg


@triton.jit
def _forward_kernel(
    x_ptr, v0_ptr, decay_ptr, thr_ptr,  # x: [T, M] input dtype; the rest: [M] state dtype
    s_ptr, vT_ptr, h_ptr, bad_ptr,  # spikes [T, M], v_final [M], h [T, M] or unused, [grid] int64
    ck_ptr,  # checkpoints [cdiv(T, CKPT), M]: v_{cK-1} (v0 for c = 0) entering each block of CKPT steps
    T, M, stride_xt, s_v0, s_d, s_th,  # s_*: 0 for a broadcast scalar, 1 for per-neuron values
    RESET: tl.constexpr, DECAY_INPUT: tl.constexpr, STORE_TRACE: tl.constexpr, BLOCK: tl.constexpr,
    PREFETCH: tl.constexpr, CKPT: tl.constexpr,  # CKPT: 0 for none
    FP8: tl.constexpr,  # store h as the 1-byte code of h - threshold (.fp8), h_ptr being uint8
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    v = tl.load(v0_ptr + offs * s_v0, mask=mask, other=0.0)
    d = tl.load(decay_ptr + offs * s_d, mask=mask, other=0.0)
    th = tl.load(thr_ptr + offs * s_th, mask=mask, other=0.0)
    c = 1.0 - d  # the reference rounds (1 - decay) on its own before multiplying, as here
    n_bad = tl.zeros([BLOCK], dtype=tl.int32)
    x_off = offs
    o_off = offs
    x_next = tl.load(x_ptr + x_off, mask=mask, other=0.0)
    for t in range(T):
        if CKPT > 0:  # a masked-off store moves no bytes: written once every CKPT steps
            tl.store(ck_ptr + tl.cast(t // CKPT, tl.int64) * M + offs, v, mask=mask & (t % CKPT == 0))
        if PREFETCH:  # issue step t+1's load before step t's stores: two loads in flight
            xv = x_next.to(v.dtype)
            # (the last step re-reads its own row rather than run past the end)
            x_next = tl.load(x_ptr + x_off + stride_xt * tl.minimum(1, T - 1 - t), mask=mask, other=0.0)
        else:
            xv = tl.load(x_ptr + x_off, mask=mask, other=0.0).to(v.dtype)
        if DECAY_INPUT:
            h = d * v + c * xv
        else:
            h = d * v + xv
        s = (h >= th).to(v.dtype)  # H(0) = 1
        tl.store(s_ptr + o_off, s.to(s_ptr.dtype.element_ty), mask=mask)
        if STORE_TRACE:
            if FP8:
                tl.store(h_ptr + o_off, fp8.encode(h - th), mask=mask)
            else:
                tl.store(h_ptr + o_off, h, mask=mask)
        n_bad += ((xv != xv) | (tl.abs(xv) == float("inf"))).to(tl.int32)  # NaN or inf
        v = _post_reset(h, s, th, RESET)
        x_off += stride_xt
        o_off += M
    tl.store(vT_ptr + offs, v.to(vT_ptr.dtype.element_ty), mask=mask)
    tl.store(bad_ptr + pid, tl.sum(n_bad.to(tl.int64), axis=0))


@triton.jit
def _load_h(ptrs, mask, th, FP8: tl.constexpr):
    """A row of the saved membrane: floats, or fp8 codes decoded to :math:`\\hat h` (.fp8)."""
    if FP8:
        h = fp8.decode(tl.load(ptrs, mask=mask, other=0), th)
    else:
        h = tl.load(ptrs, mask=mask, other=0.0)
    return h


@triton.jit
def _backward_step(
    ht, vp, xv, g_s, g_h, g_v, d, th, k0, k1, acc_d, acc_th,
    RESET: tl.constexpr, SURROGATE: tl.constexpr, DECAY_INPUT: tl.constexpr,
    DETACH_RESET: tl.constexpr, HAS_GH: tl.constexpr,
):
    """One reverse step: dL/dh_t, then dL/dx_t, dL/dv_{t-1} and the parameter accumulators.

    ``g_v`` is dL/dv_t (post-reset), ``vp`` is v_{t-1} (recomputed from h_{t-1}, or v0).
    """
    s = (ht >= th).to(ht.dtype)
    sg = _surrogate(ht - th, k0, k1, SURROGATE)
    if RESET == 0:
        if DETACH_RESET:
            g_st = g_s
        else:
            g_st = g_s - g_v * th
        acc_th -= g_v * s
        g_vh = g_v
    elif RESET == 1:
        if DETACH_RESET:
            g_st = g_s
        else:
            g_st = g_s - g_v * ht
        g_vh = g_v * (1.0 - s)
    else:
        g_st = g_s
        g_vh = g_v
    dh = g_st * sg
    if HAS_GH:  # same rounding order as the numba engine: (g_h + g_st * sg) + g_vh
        dh = g_h + dh
    dh = dh + g_vh
    acc_th -= g_st * sg
    if DECAY_INPUT:
        gx = (1.0 - d) * dh
        acc_d += dh * (vp - xv)
    else:
        gx = dh
        acc_d += dh * vp
    return gx, d * dh, acc_d, acc_th


@triton.jit
def _backward_kernel(
    gs_ptr, gvT_ptr, gh_ptr, h_ptr, x_ptr, v0_ptr, decay_ptr, thr_ptr, k_ptr,
    gx_ptr, gv0_ptr, gd_ptr, gth_ptr,
    T, M, s_gs_t, s_gs_m, s_gvT, s_gh_t, s_gh_m, s_x_t, s_x_m, s_v0, s_d, s_th,
    RESET: tl.constexpr, SURROGATE: tl.constexpr, DECAY_INPUT: tl.constexpr,
    DETACH_RESET: tl.constexpr, HAS_GVT: tl.constexpr, HAS_GH: tl.constexpr, BLOCK: tl.constexpr,
    FP8: tl.constexpr,  # h_ptr holds fp8 codes (uint8), decoded on load
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    d = tl.load(decay_ptr + offs * s_d, mask=mask, other=0.0)
    th = tl.load(thr_ptr + offs * s_th, mask=mask, other=0.0)
    k0 = tl.load(k_ptr)
    k1 = tl.load(k_ptr + 1)
    if HAS_GVT:
        g_v = tl.load(gvT_ptr + offs * s_gvT, mask=mask, other=0.0).to(d.dtype)
    else:
        g_v = tl.zeros([BLOCK], dtype=d.dtype)
    acc_d = tl.zeros([BLOCK], dtype=d.dtype)
    acc_th = tl.zeros([BLOCK], dtype=d.dtype)
    last = T - 1
    row = tl.cast(last, tl.int64)  # (T - 1) * stride may pass 2**31
    # Row offsets of step t, walked backwards.
    o_off = offs + row * M
    gs_off = offs * s_gs_m + row * s_gs_t
    gh_off = offs * s_gh_m + row * s_gh_t
    x_off = offs * s_x_m + row * s_x_t
    xv = d  # placeholders for _backward_step's unused arguments (dead code once specialised)
    g_h = d
    ht = _load_h(h_ptr + o_off, mask, th, FP8)
    for _ in range(last):  # t = T-1 .. 1; step 0 is peeled below because v_{-1} is v0
        hp = _load_h(h_ptr + o_off - M, mask, th, FP8)
        vp = _post_reset(hp, (hp >= th).to(hp.dtype), th, RESET)
        g_s = tl.load(gs_ptr + gs_off, mask=mask, other=0.0).to(d.dtype)
        if HAS_GH:
            g_h = tl.load(gh_ptr + gh_off, mask=mask, other=0.0).to(d.dtype)
        if DECAY_INPUT:
            xv = tl.load(x_ptr + x_off, mask=mask, other=0.0).to(d.dtype)
        gx, g_v, acc_d, acc_th = _backward_step(
            ht, vp, xv, g_s, g_h, g_v, d, th, k0, k1, acc_d, acc_th,
            RESET, SURROGATE, DECAY_INPUT, DETACH_RESET, HAS_GH,
        )
        tl.store(gx_ptr + o_off, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        ht = hp
        o_off -= M
        gs_off -= s_gs_t
        gh_off -= s_gh_t
        x_off -= s_x_t
    vp = tl.load(v0_ptr + offs * s_v0, mask=mask, other=0.0)
    g_s = tl.load(gs_ptr + gs_off, mask=mask, other=0.0).to(d.dtype)
    if HAS_GH:
        g_h = tl.load(gh_ptr + gh_off, mask=mask, other=0.0).to(d.dtype)
    if DECAY_INPUT:
        xv = tl.load(x_ptr + x_off, mask=mask, other=0.0).to(d.dtype)
    gx, g_v, acc_d, acc_th = _backward_step(
        ht, vp, xv, g_s, g_h, g_v, d, th, k0, k1, acc_d, acc_th,
        RESET, SURROGATE, DECAY_INPUT, DETACH_RESET, HAS_GH,
    )
    tl.store(gx_ptr + o_off, gx.to(gx_ptr.dtype.element_ty), mask=mask)
    tl.store(gv0_ptr + offs, g_v.to(gv0_ptr.dtype.element_ty), mask=mask)
    tl.store(gd_ptr + offs, acc_d.to(gd_ptr.dtype.element_ty), mask=mask)
    tl.store(gth_ptr + offs, acc_th.to(gth_ptr.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------- host side
def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _interpreted() -> bool:
    # triton.jit returns an InterpretedFunction when TRITON_INTERPRET=1 was set at decoration time.
    return type(_forward_kernel).__name__ == "InterpretedFunction"


def _kernel_out_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel writes rounded values in, before the host converts to ``dtype``.

    Triton's interpreter (3.9) truncates float32 -> bfloat16 where the GPU rounds to nearest even,
    so under the interpreter bfloat16 results are written in float32 and rounded by PyTorch.
    """
    return torch.float32 if dtype == torch.bfloat16 and _interpreted() else dtype


_PREFETCH = True  # benchmarks/gpu_lif.py's sweep times both
FUSED_FP8 = True  # forward(fp8_code=True) and backward on its codes (float32 state): see .fp8


@lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _config(m: int, device: torch.device) -> tuple[int, int]:
    """``(BLOCK, num_warps)`` for ``m`` neurons.

    On a GPU, 1024 neurons per program (8 per thread with 4 warps: 128-bit loads, several in
    flight) unless that leaves fewer than ~4 programs per SM, then smaller blocks for occupancy.
    The interpreter runs programs one after another, so there one large block is fastest.
    """
    if device.type != "cuda" or _interpreted():
        return min(1024, max(16, triton.next_power_of_2(m))), 4
    block = 1024
    target = 4 * _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    while block > 128 and triton.cdiv(m, block) < target:
        block //= 2
    return block, max(1, min(4, block // 128))


def _check_device(x: torch.Tensor) -> None:
    if x.device.type != "cuda" and not _interpreted():
        raise ConfigError(
            f"the Triton LIF engine needs CUDA tensors; x is on {x.device} (use backend='cpu', or "
            "set TRITON_INTERPRET=1 before triton is first imported to run Triton's interpreter)"
        )


@lru_cache(maxsize=64)
def _surrogate_tensor(sid: int, alpha: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # A tensor rather than two float arguments: Triton passes Python floats as float32, which
    # would round the constants of a float64 backward. Cached: one host-to-device copy per alpha.
    return torch.tensor(surrogate_constants(sid, alpha), dtype=dtype, device=device)


def forward(
    x: torch.Tensor,
    v0: torch.Tensor,
    decay: torch.Tensor,
    threshold: torch.Tensor,
    *,
    reset: int,
    decay_input: bool,
    store_trace: bool,
    checkpoint_every: int = 0,
    fp8_code: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Fused forward pass on flat ``[T, M]`` tensors; returns ``(spikes, v_final, h, n_bad)``.

    With ``fp8_code`` (float32 state only: see :data:`FUSED_FP8`), ``h`` is the
    ``float8_e4m3fn`` code of ``h - threshold`` (:mod:`.fp8`), written by the kernel.

    With ``checkpoint_every = K > 0`` (and ``store_trace`` False), ``h`` is replaced by the
    ``[cdiv(T, K), M]`` checkpoints of :mod:`.lif_recompute`: the post-reset membrane entering
    steps ``0, K, 2K, ...`` (row 0 is ``v0``).
    """
    _check_device(x)
    cdt = _state_dtype(x.dtype)
    T, M = x.shape
    dev = x.device
    x = x if x.stride(1) == 1 else x.contiguous()
    v0, decay, threshold = (_flat(t, cdt, M) for t in (v0, decay, threshold))
    spikes = torch.empty((T, M), dtype=x.dtype, device=dev)
    v_final = torch.empty(M, dtype=_kernel_out_dtype(x.dtype), device=dev)
    if checkpoint_every and checkpoint_every & (checkpoint_every - 1):
        raise ConfigError(
            f"checkpoint_every={checkpoint_every} must be a power of two: the recompute backward "
            "holds blocks of that many steps as Triton tiles (set lif_recompute.CHECKPOINT_EVERY to 4, 8 or 16)"
        )
    if fp8_code and cdt != torch.float32:
        raise ConfigError(f"the Triton engine codes float32 membranes in fp8; the state here is {cdt}")
    h = torch.empty((T if store_trace else 0, M), dtype=torch.uint8 if fp8_code else cdt, device=dev)
    ckpt = torch.empty((triton.cdiv(T, checkpoint_every) if checkpoint_every else 0, M), dtype=cdt, device=dev)
    out = ckpt if checkpoint_every else (h.view(torch.float8_e4m3fn) if fp8_code else h)
    if T == 0 or M == 0:
        return spikes, v0.to(x.dtype).clone(memory_format=torch.contiguous_format), out, 0
    block, warps = _config(M, dev)
    grid = (triton.cdiv(M, block),)
    bad = torch.empty(grid[0], dtype=torch.int64, device=dev)
    _forward_kernel[grid](
        x, v0, decay, threshold, spikes, v_final, h, bad, ckpt, T, M, x.stride(0),
        v0.stride(0), decay.stride(0), threshold.stride(0),
        RESET=reset, DECAY_INPUT=bool(decay_input), STORE_TRACE=bool(store_trace), BLOCK=block,
        PREFETCH=_PREFETCH, CKPT=int(checkpoint_every), FP8=bool(fp8_code), num_warps=warps,
        enable_fp_fusion=False,
    )
    return spikes, v_final.to(x.dtype), out, bad  # bad: per-program counts, read only if checked


def _flat(t: torch.Tensor, dtype: torch.dtype, M: int) -> torch.Tensor:
    """A ``[M]`` parameter as a 1-D tensor whose stride is 0 (a broadcast scalar) or 1.

    The custom op hands scalar parameters over as stride-0 expands; reading them through their
    stride avoids materialising ``M`` copies (three extra passes of ``4 M`` bytes per call).
    """
    t = t.to(dtype).reshape(M)
    return t if t.stride(0) in (0, 1) else t.contiguous()


def _as_2d(g: torch.Tensor, T: int, M: int) -> torch.Tensor:
    # reshape keeps a view (strides and all) whenever one exists, so stride-0 expands stay free.
    return g if g.dim() == 2 else g.reshape(T, M)


def _no_work_grads(T: int, M: int, grad_vT, out_dtype: torch.dtype, dev: torch.device) -> tuple:
    """The backward's result when ``T`` or ``M`` is 0 (no kernel launch)."""
    zeros = torch.zeros(M, dtype=out_dtype, device=dev)
    gv0 = zeros if grad_vT is None else grad_vT.reshape(M).to(out_dtype, copy=True)
    return torch.empty((T, M), dtype=out_dtype, device=dev), gv0, zeros.clone(), zeros.clone()


def _grad_buffers(T: int, M: int, out_dtype: torch.dtype, dev: torch.device) -> tuple[torch.Tensor, ...]:
    """``(grad_x [T, M], grad_v0, grad_decay, grad_threshold [M])`` for a backward kernel to fill."""
    kdt = _kernel_out_dtype(out_dtype)
    return (torch.empty((T, M), dtype=kdt, device=dev),) + tuple(
        torch.empty(M, dtype=kdt, device=dev) for _ in range(3))


def backward(
    grad_s: torch.Tensor,
    grad_vT: torch.Tensor | None,
    grad_h: torch.Tensor | None,
    h: torch.Tensor,
    x: torch.Tensor | None,
    v0: torch.Tensor,
    decay: torch.Tensor,
    threshold: torch.Tensor,
    *,
    alpha: float,
    reset: int,
    surrogate: int,
    decay_input: bool,
    detach_reset: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused backward pass; returns ``(grad_x, grad_v0, grad_decay, grad_threshold)``."""
    _check_device(h)
    out_dtype = v0.dtype
    code = h.dtype == torch.float8_e4m3fn  # the forward's fp8 codes: decoded in the kernel
    cdt = torch.float32 if code else h.dtype
    h = h.view(torch.uint8) if code else h
    T, M = h.shape
    dev = h.device
    v0, decay, threshold = (_flat(t, cdt, M) for t in (v0, decay, threshold))
    if T == 0 or M == 0:
        return _no_work_grads(T, M, grad_vT, out_dtype, dev)
    gx, gv0, gd, gth = _grad_buffers(T, M, out_dtype, dev)
    gs = _as_2d(grad_s, T, M)
    has_gvT = grad_vT is not None
    gvT = grad_vT.reshape(M) if has_gvT else h
    has_gh = grad_h is not None and grad_h.numel() > 0
    gh = _as_2d(grad_h, T, M) if has_gh else h
    xs = _as_2d(x, T, M) if decay_input else h
    k = _surrogate_tensor(surrogate, float(alpha), cdt, dev)
    block, warps = _config(M, dev)
    _backward_kernel[(triton.cdiv(M, block),)](
        gs, gvT, gh, h, xs, v0, decay, threshold, k, gx, gv0, gd, gth,
        T, M, gs.stride(0), gs.stride(1), gvT.stride(0) if has_gvT else 0,
        gh.stride(0), gh.stride(1), xs.stride(0), xs.stride(1),
        v0.stride(0), decay.stride(0), threshold.stride(0),
        RESET=reset, SURROGATE=surrogate, DECAY_INPUT=bool(decay_input),
        DETACH_RESET=bool(detach_reset), HAS_GVT=has_gvT, HAS_GH=has_gh, BLOCK=block, FP8=code,
        num_warps=warps, enable_fp_fusion=False,
    )
    return tuple(g.to(out_dtype) for g in (gx, gv0, gd, gth))  # no copies unless kdt differs
