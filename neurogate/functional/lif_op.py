"""``torch.ops.neurogate.lif_scan``: the fused LIF engines as a compile-safe custom operator.

The forward and backward passes are two ``torch.library`` custom operators with fake (shape-only)
implementations, joined by a registered autograd formula, so ``torch.compile(fullgraph=True)``
sees them as opaque nodes and never breaks the graph. Both dispatch to an *engine module*
(:mod:`neurogate.cpu.lif` or :mod:`neurogate.cuda.lif`) with this contract, on flat
``[T, M]`` tensors (``M`` = batch x neurons):

``forward(x, v0, decay, threshold, *, reset, decay_input, store_trace) -> (spikes, v_final, h, bad)``
    ``x`` is ``[T, M]`` with any strides; ``v0``, ``decay`` and ``threshold`` are ``[M]`` with
    stride 0 (a broadcast scalar) or 1. ``h`` is the pre-reset membrane ``[T, M]`` in the state
    dtype (float32 for half inputs), or ``[0, M]`` when ``store_trace`` is False; ``bad`` counts
    the non-finite inputs seen by the kernel (an int, or a tensor of partial counts).
``backward(grad_s, grad_vT, grad_h, h, x, v0, decay, threshold, *, alpha, reset, surrogate,
decay_input, detach_reset) -> (grad_x, grad_v0, grad_decay, grad_threshold)``
    ``grad_vT``/``grad_h`` may be ``None``; ``x`` is only given with ``decay_input``. Spikes are
    recomputed from ``h`` (``h >= threshold``), so ``h`` is the only ``[T, M]`` tensor kept for
    backward.

Eager calls on plain tensors skip the ``torch.library`` machinery: :func:`lif_scan_op` runs the
same engine functions through a plain :class:`torch.autograd.Function` (or, when no gradient is
needed, calls the engine directly). The custom operator's Python dispatch (schema handling,
autograd wrapper, dynamo guards) cost about 270 us per forward + backward (measured on a 2-core
CPU with a 32-element layer: 390 us through the operator against 120 us of engine work), which is
more than a whole small layer's scan; with the other per-call trimming (cached float parameters
and surrogate resolution, one-pass parameter validation, warm pooled outputs) a small layer's
``lif_scan`` forward + backward went from 540 us to about 250 us. The eager function also takes
``decay`` and ``threshold`` in their compact shapes, so that the CPU engine can return their
gradients already summed when they are scalars (``reduce_params``, which lets its backward kernel
keep them in registers). Whenever anything may be tracing (``torch.compile``, ``torch.export``,
fake tensors, functorch transforms, tensor subclasses, torch function or dispatch modes), the
custom operator is used, so compiled graphs are unchanged.
"""

from __future__ import annotations

import importlib
import os

import torch
from torch.autograd.function import once_differentiable

from ..cpu import buffers
from ..errors import ConfigError, ValueRangeError
from . import saved_membrane

__all__ = ["lif_scan_op"]

_ENGINES = {"cpu": "neurogate.cpu.lif", "triton": "neurogate.cuda.lif"}
# Engines with a fused recompute path (saved_membrane="recompute"); the others run their forward
# again in the backward to get h.
_RECOMPUTE = {"triton": "neurogate.cuda.lif_recompute"}
_LOADED: dict[str, object] = {}


def _engine(name: str, table: dict[str, str] = _ENGINES):
    mod = _LOADED.get(table[name])
    if mod is None:
        mod = _LOADED[table[name]] = importlib.import_module(table[name])
    return mod


def _recompute(name: str):
    return _engine(name, _RECOMPUTE)


def _fused_fp8(name: str, dtype: torch.dtype) -> bool:
    """Whether engine ``name`` codes (and decodes) the fp8 saved membrane inside its kernels."""
    return _state_dtype(dtype) == torch.float32 and getattr(_engine(name), "FUSED_FP8", False)


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _forward(x, v0, decay, threshold, reset, decay_input, store_trace, backend, **kw):
    """The engine's forward pass, raising on non-finite input (shared by both paths)."""
    spikes, v_final, h, bad = _engine(backend).forward(
        x, v0, decay, threshold, reset=reset, decay_input=decay_input, store_trace=store_trace, **kw,
    )
    _raise_if_bad(bad, x.device)
    return spikes, v_final, h


def _raise_if_bad(bad, device: torch.device) -> None:
    """Raise on the engine's count of non-finite inputs, when :func:`_check_finite` says to read it."""
    if _check_finite(device):
        n_bad = bad if isinstance(bad, int) else int(bad.sum())
        if n_bad:
            raise ValueRangeError(
                f"x contains {n_bad} NaN or inf value(s); check the layer that produced it"
            )


@torch.library.custom_op("neurogate::lif_scan", mutates_args=())
def _lif_scan(
    x: torch.Tensor,
    v0: torch.Tensor,
    decay: torch.Tensor,
    threshold: torch.Tensor,
    alpha: float,
    reset: int,
    surrogate: int,
    decay_input: bool,
    detach_reset: bool,
    store_trace: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _forward(x, v0, decay, threshold, reset, decay_input, store_trace, backend)


def _check_finite(device: torch.device) -> bool:
    """Whether to raise on non-finite input (the kernels count it in the same pass).

    ``NEUROGATE_CHECK_FINITE``: ``1`` always, ``0`` never, ``auto`` (default) on the CPU only:
    reading the count back from a GPU is a host sync per layer, which stalls the launch queue
    (measured: up to 2x slower small layers) and rules out CUDA graphs; set ``1`` to debug.
    """
    mode = os.environ.get("NEUROGATE_CHECK_FINITE", "auto")
    return mode == "1" or (mode == "auto" and device.type == "cpu")


@_lif_scan.register_fake
def _(x, v0, decay, threshold, alpha, reset, surrogate, decay_input, detach_reset, store_trace, backend):
    h_rows = x.shape[0] if store_trace else 0
    h = x.new_empty((h_rows, x.shape[1]), dtype=_state_dtype(x.dtype))
    return torch.empty_like(x), torch.empty_like(v0), h


@torch.library.custom_op("neurogate::lif_scan_backward", mutates_args=())
def _lif_scan_backward(
    grad_s: torch.Tensor,
    grad_vT: torch.Tensor | None,
    grad_h: torch.Tensor | None,
    h: torch.Tensor,
    x: torch.Tensor | None,
    v0: torch.Tensor,
    decay: torch.Tensor,
    threshold: torch.Tensor,
    alpha: float,
    reset: int,
    surrogate: int,
    decay_input: bool,
    detach_reset: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _engine(backend).backward(
        grad_s, grad_vT, grad_h, h, x, v0, decay, threshold,
        alpha=alpha, reset=reset, surrogate=surrogate,
        decay_input=decay_input, detach_reset=detach_reset,
    )


@_lif_scan_backward.register_fake
def _(grad_s, grad_vT, grad_h, h, x, v0, decay, threshold, *args):
    return (
        grad_s.new_empty(grad_s.shape),
        torch.empty_like(v0),
        torch.empty_like(decay),
        torch.empty_like(threshold),
    )


def _setup_context(ctx, inputs, output):
    x, v0, decay, threshold, alpha, reset, surrogate, decay_input, detach_reset, store_trace, backend = inputs
    _, _, h = output
    ctx.save_for_backward(h, x if decay_input else None, v0, decay, threshold)
    ctx.args = (alpha, reset, surrogate, decay_input, detach_reset, backend)
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_s, grad_vT, grad_h):
    h, x, v0, decay, threshold = ctx.saved_tensors
    if grad_s is None:  # only v_final or v_trace is used downstream
        grad_s = v0.new_zeros(()).expand(h.shape)
    gx, gv0, gd, gth = _lif_scan_backward(grad_s, grad_vT, grad_h, h, x, v0, decay, threshold, *ctx.args)
    return gx, gv0, gd, gth, None, None, None, None, None, None, None


_lif_scan.register_autograd(_backward, setup_context=_setup_context)


# --------------------------------------------------------------------------- eager fast path
def _flat(param: torch.Tensor, state_shape: torch.Size, m: int, backend: str = "") -> torch.Tensor:
    """A parameter broadcastable to ``state_shape`` as the operator's ``[M]`` (stride 0 when scalar).

    The CPU engine also takes a one-element tensor as a broadcast, which saves two view ops.
    """
    if backend == "cpu" and param.numel() == 1:
        return param.reshape(1)
    return param.expand(state_shape).reshape(m)


def _param_grad(g: torch.Tensor, param: torch.Tensor, state_shape: torch.Size) -> torch.Tensor:
    """The gradient of a compact parameter from the engine's ``[M]`` gradient (or 0-dim total)."""
    if g.dim() == 0:
        return g.reshape(param.shape)
    return g.view(state_shape).sum_to_size(param.shape)


class _EagerLIFScan(torch.autograd.Function):
    """The custom operator's forward and backward, without its dispatch overhead.

    Takes ``decay`` and ``threshold`` in their compact shapes (0-dim, or broadcastable to one
    sample's neurons) rather than as ``[M]`` views, so that the CPU engine can return their
    gradients already summed when they are scalars (``reduce_params``): the kernel then sums per
    vector lane instead of streaming per-neuron accumulators (see :func:`neurogate.cpu.lif.backward`).
    """

    @staticmethod
    def forward(ctx, x, v0, decay, threshold, p, store_trace, backend, state_shape, saved):  # type: ignore[override]
        m = x.shape[1]
        thr = _flat(threshold, state_shape, m, backend)
        dec = _flat(decay, state_shape, m, backend)
        every, fused_fp8 = 0, saved == "fp8" and _fused_fp8(backend, x.dtype)
        if saved == "recompute" and backend in _RECOMPUTE:  # a fused engine keeps checkpoints
            every = _recompute(backend).CHECKPOINT_EVERY
            spikes, v_final, kept, bad = _recompute(backend).forward(
                x, v0, dec, thr, reset=p.reset, decay_input=p.decay_input, checkpoint_every=every,
            )
            _raise_if_bad(bad, x.device)
            h = x.new_empty((0, m), dtype=_state_dtype(x.dtype))
        elif fused_fp8:  # the kernel writes the 1-byte code of h - threshold
            spikes, v_final, kept = _forward(x, v0, dec, thr, p.reset, p.decay_input, True, backend, fp8_code=True)
            h = x.new_empty((0, m), dtype=torch.float32)
        else:
            spikes, v_final, h = _forward(x, v0, dec, thr, p.reset, p.decay_input, store_trace, backend)
            kept = h
            if saved == "fp8":  # code h - threshold in torch; h (a scratch then) is not returned
                kept, h = saved_membrane.encode(h, thr), h.new_empty((0, m))
            elif saved == "recompute":  # keep x only: the backward runs this forward again
                kept = None
        ctx.save_for_backward(kept, x if p.decay_input or saved == "recompute" else None, v0, decay, threshold)
        ctx.p, ctx.backend, ctx.state_shape, ctx.saved, ctx.every = p, backend, state_shape, saved, every
        ctx.fused_fp8 = fused_fp8
        ctx.set_materialize_grads(False)
        return spikes, v_final, h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_s, grad_vT, grad_h):  # type: ignore[override]
        h, x, v0, decay, threshold = ctx.saved_tensors
        p, shape = ctx.p, ctx.state_shape
        m = x.shape[1] if h is None else h.shape[1]
        dec, thr = _flat(decay, shape, m, ctx.backend), _flat(threshold, shape, m, ctx.backend)
        if ctx.saved == "recompute" and h is not None:  # fused: the engine recomputes h per block
            if grad_s is None:
                grad_s = v0.new_zeros(()).expand(x.shape)
            gx, gv0, gd, gth = _recompute(ctx.backend).backward(
                grad_s, grad_vT, x, h, v0, dec, thr, alpha=p.alpha, reset=p.reset, surrogate=p.surrogate,
                decay_input=p.decay_input, detach_reset=p.detach_reset, checkpoint_every=ctx.every,
            )
            return _grads(ctx, gx, gv0, gd, gth)
        if ctx.saved == "recompute":  # any other engine: run its forward again for h
            _, _, h = _forward(x, v0, dec, thr, p.reset, p.decay_input, True, ctx.backend)
        if ctx.saved == "fp8" and not ctx.fused_fp8:  # (fused: the engine decodes the codes itself)
            # the exact backward, run on the decoded membrane (saved_membrane's docstring)
            dtype = _state_dtype(threshold.dtype)
            out = buffers.empty(tuple(h.shape), dtype) if h.device.type == "cpu" else torch.empty(
                h.shape, dtype=dtype, device=h.device)
            h = saved_membrane.decode(h, thr.to(dtype), out)
        extra = {"reduce_params": True} if ctx.backend == "cpu" else {}
        if grad_s is None and ctx.backend != "cpu":
            grad_s = v0.new_zeros(()).expand(h.shape)
        gx, gv0, gd, gth = _engine(ctx.backend).backward(
            grad_s, grad_vT, grad_h, h, x if p.decay_input else None, v0, dec, thr,
            alpha=p.alpha, reset=p.reset, surrogate=p.surrogate, decay_input=p.decay_input,
            detach_reset=p.detach_reset, **extra,
        )
        return _grads(ctx, gx, gv0, gd, gth)


def _grads(ctx, gx, gv0, gd, gth) -> tuple:
    """:meth:`_EagerLIFScan.backward`'s return: the engine's gradients for the inputs that need one."""
    need, shape = ctx.needs_input_grad, ctx.state_shape
    decay, threshold = ctx.saved_tensors[3:5]
    return (
        gx if need[0] else None,
        gv0 if need[1] else None,
        _param_grad(gd, decay, shape) if need[2] else None,
        _param_grad(gth, threshold, shape) if need[3] else None,
        None, None, None, None, None,
    )


def _plain_eager(*tensors: torch.Tensor) -> bool:
    """True when nothing can be tracing these tensors: the eager fast path is then exact."""
    if (
        torch.compiler.is_compiling()
        or torch._C._len_torch_dispatch_stack()
        or torch._C._len_torch_function_stack()
        or torch._C._functorch.maybe_current_level() is not None
    ):
        return False
    return all(type(t) is torch.Tensor for t in tensors)


def lif_scan_op(x, v0, decay, threshold, p, *, state_shape, store_trace: bool, backend: str, saved: str = "float"):
    """Run the fused scan with resolved :class:`~neurogate.functional.lif.LIFParams`.

    ``x`` is ``[T, M]``; ``v0``, ``decay`` and ``threshold`` broadcast to ``state_shape``
    (``x``'s ``[B, ...]``, with ``M`` elements). Returns ``(spikes, v_final, h)`` with the
    operator's semantics, through the custom operator when tracing is possible and through the
    eager fast path otherwise (see the module docstring). ``saved``: what the backward keeps
    (:mod:`.saved_membrane`): ``"float"`` (``h``), ``"fp8"`` (a 1-byte code of it) or
    ``"recompute"`` (``x``, and checkpoints where the engine has a fused recompute path); with
    ``"fp8"`` or ``"recompute"``, ``h`` is returned empty.
    """
    m = x.shape[1]
    eager = _plain_eager(x, v0, decay, threshold)
    if saved != "float" and not eager:
        raise ConfigError(
            f"saved_membrane={saved!r} runs in eager mode only (not under torch.compile, torch.export, "
            "functorch transforms or tensor subclasses); use saved_membrane='float' there"
        )
    if eager:
        # v0's gradient is per element ([M]): only a constant v0 may stay one element.
        v0 = _flat(v0, state_shape, m, "" if v0.requires_grad else backend)
        if torch.is_grad_enabled() and (
            x.requires_grad or v0.requires_grad or decay.requires_grad or threshold.requires_grad
        ):
            return _EagerLIFScan.apply(x, v0, decay, threshold, p, store_trace, backend, state_shape, saved)
        return _forward(
            x, v0, _flat(decay, state_shape, m, backend), _flat(threshold, state_shape, m, backend),
            p.reset, p.decay_input, store_trace, backend,
        )
    return torch.ops.neurogate.lif_scan(
        x, _flat(v0, state_shape, m), _flat(decay, state_shape, m), _flat(threshold, state_shape, m),
        p.alpha, p.reset, p.surrogate, p.decay_input, p.detach_reset, store_trace, backend,
    )
