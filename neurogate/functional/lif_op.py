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

What the backward keeps is chosen by ``saved_membrane`` (:mod:`.saved_membrane`), in both paths
(:func:`_scan_forward` and :func:`_scan_backward`): ``h``; its fp8 code, made by the engine when it
sets ``FUSED_FP8`` (``forward(..., fp8_code=True)``, ``backward`` decoding a float8 ``h``) and by
torch otherwise; or, for ``"recompute"``, ``x`` and the checkpoints of an engine listed in
``_RECOMPUTE`` (``forward(..., checkpoint_every=K)`` and that module's ``backward``), else ``x``
alone, the forward being run again.

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
from ..errors import ValueRangeError
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


def _empty_h(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty((0, x.shape[1]), dtype=_state_dtype(x.dtype))


def _scan_forward(x, v0, decay, threshold, reset, decay_input, store_trace, backend, saved):
    """``(spikes, v_final, h, kept)``: the forward pass and what the backward keeps besides ``h``.

    ``saved`` (:mod:`.saved_membrane`): ``"float"`` keeps ``h`` itself (``kept`` is empty);
    ``"fp8"`` keeps its 1-byte code (made in the kernels where the engine can, else by torch);
    ``"recompute"`` keeps the checkpoints of an engine with a fused recompute path, else nothing
    (the caller keeps ``x``). ``h`` is empty unless ``saved == "float"`` and ``store_trace``.
    """
    if saved == "recompute" and backend in _RECOMPUTE:  # the engine's forward keeps checkpoints instead of h
        checkpoint_every = _recompute(backend).CHECKPOINT_EVERY
        spikes, v_final, kept = _forward(x, v0, decay, threshold, reset, decay_input, False, backend,
                                         checkpoint_every=checkpoint_every)
        return spikes, v_final, _empty_h(x), kept
    if saved == "fp8" and _fused_fp8(backend, x.dtype):
        spikes, v_final, kept = _forward(x, v0, decay, threshold, reset, decay_input, True, backend, fp8_code=True)
        return spikes, v_final, _empty_h(x), kept
    spikes, v_final, h = _forward(
        x, v0, decay, threshold, reset, decay_input, saved == "fp8" or (store_trace and saved == "float"), backend,
    )
    if saved == "fp8":  # h is a scratch: coded in place
        return spikes, v_final, _empty_h(x), saved_membrane.encode(h, threshold)
    return spikes, v_final, h, _empty_h(x)


def _kept_shape(x: torch.Tensor, backend: str, saved: str) -> tuple[tuple[int, int], torch.dtype]:
    """Shape and dtype of :func:`_scan_forward`'s ``kept`` (for the fake implementation)."""
    T, M = x.shape
    if saved == "fp8":
        return (T, M), torch.float8_e4m3fn
    if saved == "recompute" and backend in _RECOMPUTE:
        K = _recompute(backend).CHECKPOINT_EVERY
        return (-(-T // K), M), _state_dtype(x.dtype)
    return (0, M), _state_dtype(x.dtype)


def _scan_backward(grad_s, grad_vT, grad_h, h, kept, x, v0, decay, threshold, *, alpha, reset, surrogate,
                   decay_input, detach_reset, backend, saved, **extra):
    """``(grad_x, grad_v0, grad_decay, grad_threshold)`` from what :func:`_scan_forward` kept.

    ``x`` is needed with ``decay_input`` or ``saved == "recompute"``; ``extra`` goes to the engine
    (the CPU engine's ``reduce_params``).
    """
    args = dict(alpha=alpha, reset=reset, surrogate=surrogate, decay_input=decay_input, detach_reset=detach_reset)
    if saved == "recompute" and backend in _RECOMPUTE:  # fused: the engine recomputes h per block
        mod = _recompute(backend)
        if grad_s is None:
            grad_s = v0.new_zeros(()).expand(x.shape)
        return mod.backward(grad_s, grad_vT, x, kept, v0, decay, threshold, **args,
                            checkpoint_every=mod.CHECKPOINT_EVERY)
    if saved == "recompute":  # any other engine: run its forward again for h
        _, _, h = _forward(x, v0, decay, threshold, reset, decay_input, True, backend)
    elif saved == "fp8" and _fused_fp8(backend, threshold.dtype):
        h = kept  # the engine decodes the codes itself
    elif saved == "fp8":  # the exact backward, run on the decoded membrane (saved_membrane's docstring)
        dtype = _state_dtype(threshold.dtype)
        out = buffers.empty(tuple(kept.shape), dtype) if kept.device.type == "cpu" else torch.empty(
            kept.shape, dtype=dtype, device=kept.device)
        h = saved_membrane.decode(kept, threshold.to(dtype), out)
    if grad_s is None and backend != "cpu":
        grad_s = v0.new_zeros(()).expand(h.shape)
    return _engine(backend).backward(grad_s, grad_vT, grad_h, h, x if decay_input else None, v0, decay, threshold,
                                     **args, **extra)


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
    saved: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _scan_forward(x, v0, decay, threshold, reset, decay_input, store_trace, backend, saved)


def _check_finite(device: torch.device) -> bool:
    """Whether to raise on non-finite input (the kernels count it in the same pass).

    ``NEUROGATE_CHECK_FINITE``: ``1`` always, ``0`` never, ``auto`` (default) on the CPU only:
    reading the count back from a GPU is a host sync per layer, which stalls the launch queue
    (measured: up to 2x slower small layers) and rules out CUDA graphs; set ``1`` to debug.
    """
    mode = os.environ.get("NEUROGATE_CHECK_FINITE", "auto")
    return mode == "1" or (mode == "auto" and device.type == "cpu")


@_lif_scan.register_fake
def _(x, v0, decay, threshold, alpha, reset, surrogate, decay_input, detach_reset, store_trace, backend, saved):
    h_rows = x.shape[0] if store_trace and saved == "float" else 0
    h = x.new_empty((h_rows, x.shape[1]), dtype=_state_dtype(x.dtype))
    shape, dtype = _kept_shape(x, backend, saved)
    return torch.empty_like(x), torch.empty_like(v0), h, x.new_empty(shape, dtype=dtype)


@torch.library.custom_op("neurogate::lif_scan_backward", mutates_args=())
def _lif_scan_backward(
    grad_s: torch.Tensor,
    grad_vT: torch.Tensor | None,
    grad_h: torch.Tensor | None,
    h: torch.Tensor,
    kept: torch.Tensor,
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
    saved: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _scan_backward(
        grad_s, grad_vT, grad_h, h, kept, x, v0, decay, threshold, alpha=alpha, reset=reset,
        surrogate=surrogate, decay_input=decay_input, detach_reset=detach_reset, backend=backend, saved=saved,
    )


@_lif_scan_backward.register_fake
def _(grad_s, grad_vT, grad_h, h, kept, x, v0, decay, threshold, *args):
    return (
        grad_s.new_empty(grad_s.shape),
        torch.empty_like(v0),
        torch.empty_like(decay),
        torch.empty_like(threshold),
    )


def _setup_context(ctx, inputs, output):
    x, v0, decay, threshold, alpha, reset, surrogate, decay_input, detach_reset, store_trace, backend, saved = inputs
    _, _, h, kept = output
    keep_x = decay_input or saved == "recompute"
    ctx.save_for_backward(h, kept, x if keep_x else None, v0, decay, threshold)
    ctx.args = (alpha, reset, surrogate, decay_input, detach_reset, backend, saved)
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_s, grad_vT, grad_h, grad_kept):
    h, kept, x, v0, decay, threshold = ctx.saved_tensors
    if grad_s is None:  # only v_final or v_trace is used downstream (then saved is "float")
        grad_s = v0.new_zeros(()).expand(h.shape if h.shape[0] else x.shape)
    gx, gv0, gd, gth = _lif_scan_backward(grad_s, grad_vT, grad_h, h, kept, x, v0, decay, threshold, *ctx.args)
    return gx, gv0, gd, gth, None, None, None, None, None, None, None, None


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
        spikes, v_final, h, kept = _scan_forward(
            x, v0, _flat(decay, state_shape, m, backend), _flat(threshold, state_shape, m, backend),
            p.reset, p.decay_input, store_trace, backend, saved,
        )
        keep_x = p.decay_input or saved == "recompute"
        ctx.save_for_backward(h if saved == "float" else kept, x if keep_x else None, v0, decay, threshold)
        ctx.p, ctx.backend, ctx.state_shape, ctx.saved = p, backend, state_shape, saved
        ctx.set_materialize_grads(False)
        return spikes, v_final, h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_s, grad_vT, grad_h):  # type: ignore[override]
        kept, x, v0, decay, threshold = ctx.saved_tensors
        p, shape, backend = ctx.p, ctx.state_shape, ctx.backend
        m = shape.numel()
        gx, gv0, gd, gth = _scan_backward(
            grad_s, grad_vT, grad_h, kept, kept, x, v0, _flat(decay, shape, m, backend),
            _flat(threshold, shape, m, backend), alpha=p.alpha, reset=p.reset, surrogate=p.surrogate,
            decay_input=p.decay_input, detach_reset=p.detach_reset, backend=backend, saved=ctx.saved,
            **({"reduce_params": True} if backend == "cpu" else {}),
        )
        return _grads(ctx, gx, gv0, gd, gth, decay, threshold)


def _grads(ctx, gx, gv0, gd, gth, decay, threshold) -> tuple:
    """:meth:`_EagerLIFScan.backward`'s return: the engine's gradients for the inputs that need one."""
    need, shape = ctx.needs_input_grad, ctx.state_shape
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
    if _plain_eager(x, v0, decay, threshold):
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
    spikes, v_final, h, _ = torch.ops.neurogate.lif_scan(
        x, _flat(v0, state_shape, m), _flat(decay, state_shape, m), _flat(threshold, state_shape, m),
        p.alpha, p.reset, p.surrogate, p.decay_input, p.detach_reset, store_trace, backend, saved,
    )
    return spikes, v_final, h
