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
"""

from __future__ import annotations

import importlib
import os

import torch

from ..errors import ValueRangeError

__all__ = ["lif_scan_op"]

_ENGINES = {"cpu": "neurogate.cpu.lif", "triton": "neurogate.cuda.lif"}


def _engine(name: str):
    return importlib.import_module(_ENGINES[name])


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


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
    spikes, v_final, h, bad = _engine(backend).forward(
        x, v0, decay, threshold, reset=reset, decay_input=decay_input, store_trace=store_trace,
    )
    if _check_finite(x.device):
        n_bad = int(bad) if isinstance(bad, int) else int(bad.sum())
        if n_bad:
            raise ValueRangeError(
                f"x contains {n_bad} NaN or inf value(s); check the layer that produced it"
            )
    return spikes, v_final, h


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


def lif_scan_op(x, v0, decay, threshold, p, *, store_trace: bool, backend: str):
    """Call the custom operator with resolved :class:`~neurogate.functional.lif.LIFParams`."""
    return torch.ops.neurogate.lif_scan(
        x, v0, decay, threshold, p.alpha, p.reset, p.surrogate, p.decay_input, p.detach_reset,
        store_trace, backend,
    )
