r"""The leaky integrate-and-fire scan: the specification and the dispatch to the fused engines.

Discrete-time LIF over time-major input :math:`x \in \mathbb{R}^{T \times B \times \dots}`
(one step is one ``dt``; parameters are per step, not per second):

.. math::

    h_t &= \beta\, v_{t-1} + c\, x_t, \qquad c = 1 - \beta \text{ if decay\_input else } 1 \\
    S_t &= H(h_t - \vartheta), \qquad H(0) = 1 \\
    v_t &= \begin{cases} h_t - S_t \vartheta & \text{reset="subtract"} \\
                         h_t (1 - S_t)       & \text{reset="zero"} \\
                         h_t                 & \text{reset="none"} \end{cases}

with :math:`v_{-1} = v_0` (zero by default), :math:`\beta` = ``decay`` and :math:`\vartheta` =
``threshold``. The backward pass replaces :math:`H'` by the surrogate :math:`\sigma'(h_t -
\vartheta; \alpha)` (:mod:`neurogate.surrogate`). With ``detach_reset`` the spike inside the reset
term is treated as a constant (no surrogate path through the reset; the reset still depends on
:math:`\vartheta`). ``decay`` and ``threshold`` may be tensors broadcastable to one sample's neuron
shape ``x.shape[2:]``; gradients reach ``x``, ``v0``, ``decay`` and ``threshold`` in every engine.

``v_trace[t]`` is :math:`h_t` (after integration, before the reset: what the threshold sees);
``v_final`` is :math:`v_{T-1}` (after the reset: the state to resume from).

Engines: ``"reference"`` (this file, plain PyTorch, the truth), ``"cpu"`` (fused numba kernels,
:mod:`neurogate.cpu.lif`) and ``"triton"`` (:mod:`neurogate.cuda.lif`). ``backend=None`` picks cpu
for CPU tensors and triton for CUDA tensors. The fused engines run as the custom operator
``torch.ops.neurogate.lif_scan`` (:mod:`neurogate.functional.lif_op`), so models using them compile
with ``torch.compile(fullgraph=True)``.

Later neuron models reuse this layout: a refractory counter or a synaptic-current (CuBa) state is
one more per-neuron state carried through the same time loop, and layers whose input depends on the
previous step's spikes (recurrence) call :func:`lif_step` inside their own loop.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import NamedTuple

import torch

from .. import surrogate as _sg
from ..errors import ConfigError, DTypeError, ShapeError, ValueRangeError
from . import saved_membrane as _saved

__all__ = ["lif_scan", "lif_step", "lif_scan_reference", "RESETS", "BACKENDS", "LIFParams"]

RESETS: dict[str, int] = {"subtract": 0, "zero": 1, "none": 2}
BACKENDS = ("reference", "cpu", "triton")


class LIFParams(NamedTuple):
    """Resolved, validated LIF settings shared by every engine."""

    reset: int
    surrogate: int
    alpha: float
    decay_input: bool
    detach_reset: bool


# --------------------------------------------------------------------------- reference engine
def lif_step(
    x_t: torch.Tensor,
    v: torch.Tensor,
    decay: torch.Tensor | float,
    threshold: torch.Tensor | float,
    p: LIFParams,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One reference LIF step: returns ``(S_t, v_t, h_t)`` (see the module docstring)."""
    if p.decay_input:
        h = decay * v + (1 - decay) * x_t
    else:
        h = decay * v + x_t
    s = _sg._Spike.apply(h - threshold, p.surrogate, p.alpha)
    sr = s.detach() if p.detach_reset else s
    if p.reset == 0:
        v = h - sr * threshold
    elif p.reset == 1:
        v = h * (1 - sr)
    else:
        v = h
    return s, v, h


def lif_scan_reference(
    x: torch.Tensor,
    v0: torch.Tensor,
    decay: torch.Tensor,
    threshold: torch.Tensor,
    p: LIFParams,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The specification: a plain loop of :func:`lif_step`, differentiated by autograd.

    Iterates ``x.unbind(0)`` (indexing ``x[t]`` would make autograd scatter a full-size gradient
    per step). Returns ``(spikes, v_final, v_trace)``.
    """
    v = v0
    spikes, trace = [], []
    for x_t in x.unbind(0):
        s, v, h = lif_step(x_t, v, decay, threshold, p)
        spikes.append(s)
        trace.append(h)
    if not spikes:
        return x.new_empty(x.shape), v0, x.new_empty(x.shape)
    return torch.stack(spikes), v, torch.stack(trace)


# --------------------------------------------------------------------------- validation
def _as_param(name: str, value, x: torch.Tensor, shape: torch.Size, lo=None, hi=None) -> torch.Tensor:
    """A float or tensor parameter as a tensor of x's dtype broadcastable to ``shape``."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or not value.is_floating_point():
            raise DTypeError(f"{name} must be a floating-point tensor; got dtype {value.dtype}")
        if len(value.shape) > len(shape) or _broadcast(value.shape, shape) != shape:
            if _broadcast(value.shape, shape) is None:
                raise ShapeError(
                    f"{name} has shape {tuple(value.shape)}, which does not broadcast to one sample's "
                    f"neuron shape x.shape[2:] = {tuple(shape)}; give a scalar or a tensor of that shape"
                )
            raise ShapeError(
                f"{name} has shape {tuple(value.shape)}, larger than one sample's neuron shape "
                f"x.shape[2:] = {tuple(shape)}; parameters are shared over time and batch"
            )
        if (
            not torch.compiler.is_compiling()
            and value.device.type == "cpu"
            and not _fast_params_ok(value, lo, hi)
        ):
            _check_range(name, value, lo, hi)
        return value.to(device=x.device, dtype=x.dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DTypeError(f"{name} must be a float or a tensor; got {type(value).__name__}")
    v = float(value)
    if torch.compiler.is_compiling():
        _check_range(name, torch.tensor(v), lo, hi)
        return x.new_full((), v)
    # Checked in plain Python (five torch reductions cost about 20 us per call). A value inside
    # the (float32-exact) bounds and below float32's overflow is valid in any dtype; anything
    # else gets the torch check, which sees the value as a default-dtype tensor holds it.
    if not (abs(v) < 3e38 and (lo is None or lo <= v <= hi)):
        _check_range(name, torch.tensor(v), lo, hi)
    return _constant(v, x)


def _broadcast(a: torch.Size, b: torch.Size) -> torch.Size | None:
    """``torch.broadcast_shapes(a, b)``, or ``None`` when they do not broadcast."""
    if a == b:
        return a
    try:
        return torch.broadcast_shapes(a, b)
    except RuntimeError:
        return None


def _no_modes() -> bool:
    """No fake-tensor / dispatch / torch-function mode and no functorch transform is active."""
    return not (
        torch._C._len_torch_dispatch_stack()
        or torch._C._len_torch_function_stack()
        or torch._C._functorch.maybe_current_level() is not None
    )


def _fast_params_ok(value: torch.Tensor, lo, hi) -> bool:
    """True when a CPU parameter is surely valid; False sends it to the full (raising) check."""
    if (
        type(value) is not torch.Tensor
        or value.numel() > 1 << 20
        or value.dtype not in (torch.float32, torch.float64)
        or not _no_modes()
    ):
        return False
    from ..cpu.lif import params_ok  # numba: imported on first use only

    return bool(params_ok(value, lo, hi))


_CONSTANTS: dict[tuple, torch.Tensor] = {}


def _constant(v: float, x: torch.Tensor) -> torch.Tensor:
    """A 0-dim tensor holding ``v`` in x's dtype, cached across calls on the CPU.

    A float parameter (``decay=0.9``) otherwise costs a tensor and a fill per call. Not cached
    while tracing or under any tensor mode (the graph or mode makes its own constant), in inference
    mode (an inference tensor could not be saved for backward by a later training call), or off the
    CPU (``new_full`` launches a
    fill on the current stream, which keeps stream ordering trivially right;
    ``torch.tensor(value, device="cuda")`` would copy from pageable host memory, which
    synchronises the stream).
    """
    if (
        x.device.type != "cpu"
        or type(x) is not torch.Tensor
        or torch.compiler.is_compiling()
        or torch.is_inference_mode_enabled()
        or not _no_modes()
    ):
        return x.new_full((), v)
    key = (v, math.copysign(1.0, v), x.dtype)  # -0.0 and 0.0 compare equal
    t = _CONSTANTS.get(key)
    if t is None:
        if len(_CONSTANTS) >= 1024:  # e.g. a decay annealed over many values
            _CONSTANTS.clear()
        t = _CONSTANTS[key] = x.new_full((), v)
    return t


def _check_range(name: str, value: torch.Tensor, lo, hi) -> None:
    bad = ~torch.isfinite(value)
    if lo is not None:
        bad |= value < lo
    if hi is not None:
        bad |= value > hi
    if bool(bad.any()):
        where = value[bad].flatten()[:3].tolist()
        need = "finite" if lo is None else f"in [{lo}, {hi}]"
        raise ValueRangeError(f"{name} must be {need}; got {where if value.ndim else value.item()}")


def _resolve(reset: str, surrogate, alpha, decay_input: bool, detach_reset: bool) -> LIFParams:
    if torch.compiler.is_compiling():
        return _resolve_uncached(reset, surrogate, alpha, decay_input, detach_reset)
    try:
        return _resolve_cached(reset, surrogate, alpha, decay_input, detach_reset)
    except TypeError:  # an unhashable argument: resolve (and report) it uncached
        return _resolve_uncached(reset, surrogate, alpha, decay_input, detach_reset)


def _resolve_uncached(reset: str, surrogate, alpha, decay_input: bool, detach_reset: bool) -> LIFParams:
    if reset not in RESETS:
        raise ConfigError(f"reset={reset!r} is unknown; use one of: {', '.join(RESETS)}")
    sg, a = _sg.resolve(surrogate, alpha)
    return LIFParams(RESETS[reset], sg.id, a, bool(decay_input), bool(detach_reset))


_resolve_cached = lru_cache(maxsize=256)(_resolve_uncached)


def check_input(x) -> None:
    """Raise a neurogate error unless ``x`` is a floating tensor of shape ``[T, B, ...]``."""
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"x must be a torch.Tensor of shape [T, B, ...]; got {type(x).__name__}")
    if x.dim() < 2:
        raise ShapeError(
            f"x must be time-major [T, B, ...] with at least 2 dimensions; got shape {tuple(x.shape)}"
            " (add a batch dimension with x.unsqueeze(1))"
        )
    if x.is_complex() or not x.is_floating_point():
        raise DTypeError(f"x must be a floating-point tensor; got dtype {x.dtype} (use x.float())")


_BY_DEVICE = {"cpu": "cpu", "cuda": "triton"}


def _pick_backend(backend: str | None, x: torch.Tensor) -> str:
    if backend is None:
        return _BY_DEVICE.get(x.device.type, "reference")
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} is unknown; use one of: {', '.join(BACKENDS)} or None")
    if backend == "cpu" and x.device.type != "cpu":
        raise ConfigError(f"backend='cpu' runs on CPU tensors; x is on {x.device} (use backend='triton')")
    if backend == "triton" and x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ConfigError(
            f"backend='triton' needs CUDA tensors; x is on {x.device} "
            "(use backend='cpu', or set TRITON_INTERPRET=1 to run Triton's interpreter on the CPU)"
        )
    return backend


_OP = []


def _lif_scan_op():
    """:func:`.lif_op.lif_scan_op`, imported on first use (it registers the custom operators)."""
    if _OP:
        return _OP[0]
    from .lif_op import lif_scan_op

    if not torch.compiler.is_compiling():  # no side effects while dynamo traces
        _OP.append(lif_scan_op)
    return lif_scan_op


# --------------------------------------------------------------------------- public primitive
def lif_scan(
    x: torch.Tensor,
    *,
    decay: torch.Tensor | float,
    threshold: torch.Tensor | float = 1.0,
    reset: str = "subtract",
    v0: torch.Tensor | None = None,
    surrogate: str = "atan",
    alpha: float | None = None,
    decay_input: bool = False,
    detach_reset: bool = False,
    backend: str | None = None,
    return_state: bool = False,
    saved_membrane: str = "float",
):
    """Run LIF neurons over time-major input ``x: [T, B, ...]`` (equations in the module docstring).

    Args:
        x: input current per step, ``[T, B, *neurons]``, floating point.
        decay: :math:`\\beta \\in [0, 1]`, a float or a tensor broadcastable to ``x.shape[2:]``.
        threshold: :math:`\\vartheta`, a float or a tensor broadcastable to ``x.shape[2:]``.
        reset: ``"subtract"``, ``"zero"`` or ``"none"``.
        v0: initial membrane, broadcastable to ``x.shape[1:]`` (zeros when ``None``).
        surrogate, alpha: the surrogate gradient (:mod:`neurogate.surrogate`); alpha ``None`` is
            the surrogate's default.
        decay_input: scale the input by :math:`1 - \\beta` (SpikingJelly's convention).
        detach_reset: no gradient through the spike inside the reset term.
        backend: ``None`` (by device), ``"reference"``, ``"cpu"`` or ``"triton"``.
        return_state: also return ``v_final`` (``[B, ...]``) and ``v_trace`` (``[T, B, ...]``).
        saved_membrane: what a fused engine keeps for the backward pass: ``"float"`` (exact, 4 B
            per element in float32), ``"fp8"`` (a 1-byte code of :math:`h_t - \vartheta`:
            exact spikes, approximate surrogate gradients, 4x less memory) or ``"recompute"``
            (exact: keeps ``x`` and recomputes the membrane in the backward; fewer bytes moved on
            a GPU, see :mod:`neurogate.cuda.lif_recompute`); see
            :mod:`neurogate.functional.saved_membrane`. With ``return_state`` the float trace is
            returned and kept.

    Returns:
        ``spikes`` (same shape and dtype as ``x``), or ``(spikes, v_final, v_trace)``.

    Example:
        >>> x = torch.rand(100, 32, 128)
        >>> s, v, trace = ng.functional.lif_scan(x, decay=0.9, return_state=True)
    """
    check_input(x)
    p = _resolve(reset, surrogate, alpha, decay_input, detach_reset)
    neuron_shape, state_shape = x.shape[2:], x.shape[1:]
    decay_t = _as_param("decay", decay, x, neuron_shape, 0.0, 1.0)
    thr_t = _as_param("threshold", threshold, x, neuron_shape)
    if v0 is None:
        v0_c = _constant(0.0, x)  # no [B, ...] zeros: engines read a broadcast
        v0_t = None
    else:
        if not isinstance(v0, torch.Tensor):
            raise DTypeError(f"v0 must be a tensor broadcastable to {tuple(state_shape)}; got {type(v0).__name__}")
        try:
            v0_t = v0_c = v0.to(x.dtype).expand(state_shape)
        except RuntimeError:
            raise ShapeError(
                f"v0 has shape {tuple(v0.shape)}, which does not broadcast to x.shape[1:] = {tuple(state_shape)}"
            ) from None
    engine = _pick_backend(backend, x)
    _saved.check_mode(saved_membrane)
    # With return_state the float trace exists anyway: it is returned, and kept.
    saved = "float" if return_state else saved_membrane
    if saved != "float" and engine == "reference":
        raise ConfigError(
            f"saved_membrane={saved!r} needs a fused engine (backend 'cpu' or 'triton'): the "
            "reference engine is differentiated by autograd, which keeps its own float tensors"
        )

    if engine == "reference":
        if not torch.compiler.is_compiling() and not bool(torch.isfinite(x).all()):
            raise ValueRangeError("x contains NaN or inf; check the layer that produced it")
        if v0_t is None:
            v0_t = v0_c.expand(state_shape)
        spikes, v_final, trace = lif_scan_reference(x, v0_t, decay_t, thr_t, p)
    else:
        T = x.shape[0]
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or v0_c.requires_grad or decay_t.requires_grad or thr_t.requires_grad
        )
        spikes, v_final, trace = _lif_scan_op()(
            x.reshape(T, state_shape.numel()),
            v0_c,
            decay_t,
            thr_t,
            p,
            state_shape=state_shape,
            store_trace=return_state or (needs_grad and saved != "recompute"),
            backend=engine,
            saved=saved if needs_grad else "float",
        )
        spikes = spikes.view(x.shape)
        if return_state:
            v_final = v_final.view(state_shape)
            trace = trace.view(x.shape)
    if return_state:
        return spikes, v_final, trace.to(x.dtype)
    return spikes
