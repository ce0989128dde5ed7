r"""Learnable synaptic delays (DCLS, Hammouamri et al. 2024): the specification and its engines.

Every synapse :math:`(o, i)` has a weight :math:`w` and a real position :math:`P`. Over
:math:`K` = ``max_delay`` taps the training kernel is a normalised Gaussian centred on
:math:`P + \lfloor K/2 \rfloor` (the paper's equation, the DCLS package's ``gauss`` version):

.. math::

    k[o, i, m] = w \frac{g_m}{\sum_{n=0}^{K-1} g_n + \epsilon}, \qquad
    g_m = \exp\!\Big(-\tfrac12 \Big(\frac{m - (P + \lfloor K/2 \rfloor)}{\sigma}\Big)^2\Big),
    \qquad \epsilon = 10^{-7}

and the layer is a causal convolution over time (``conv1d`` is a correlation; the input is
left-padded with :math:`K - 1` zero steps, so the output keeps the input's length :math:`T`):

.. math::

    y[t, b, o] = \sum_i \sum_{m=0}^{K-1} k[o, i, m]\; x[t - (K - 1 - m), b, i],
    \qquad x[s] = 0 \text{ for } s < 0

Tap :math:`m` therefore delays by :math:`d = K - 1 - m` steps, and a synapse whose kernel is one
tap at :math:`P + \lfloor K/2 \rfloor` has the integer delay

.. math::

    d = K - 1 - \lfloor K/2 \rfloor - P = \lfloor (K-1)/2 \rfloor - P
    \quad (= \lfloor K/2 \rfloor - P \text{ for the paper's odd } K)

so that **output step t sees input step t - d** (causal: never a later step). :math:`P` is clamped
to :math:`[-\lfloor K/2 \rfloor, \lfloor (K-1)/2 \rfloor]`, i.e. :math:`d \in [0, K-1]` (for odd
:math:`K` exactly the paper's :math:`[-\lfloor K/2\rfloor, \lfloor K/2\rfloor]`; for even :math:`K`
the DCLS package's clamp would also allow a centre one tap past the kernel's end).
:math:`\sigma` here is the Gaussian's standard deviation; the DCLS package and the paper's code
store ``SIG`` and use :math:`\sigma = |\mathrm{SIG}| + 0.27` (``SIGMA_OFFSET``), so the schedule's
floor ``SIG = 0.23`` is :math:`\sigma = 0.5`. At inference each position is rounded and each
synapse uses one integer delay :math:`d = \lfloor (K-1)/2 \rfloor - \mathrm{round}(P)`.

Engines. ``"reference"``: the dense kernel ``[O, I, K]`` and ``conv1d`` (this file, the truth).
``"cpu"``: :func:`delay_taps`, the custom operator ``torch.ops.neurogate.delay_taps`` over sparse
taps (numba, :mod:`neurogate.cpu.delay`; event-driven over the non-zero inputs when the input is
sparse, as spikes are, dense over the input otherwise): one tap per synapse for integer delays, and for the
Gaussian only the :math:`2r` taps :math:`m \in [\lfloor c \rfloor - r + 1, \lfloor c \rfloor + r]`
around the centre :math:`c`, renormalised over those taps. Every tap left out is at least
:math:`r` from :math:`c`, and some kept tap is within :math:`1/2` of it, so the truncated kernel
:math:`\tilde k` satisfies (:func:`truncation_bound`)

.. math::

    \|\tilde k - k\|_1 \le 2 |w| \frac{E}{G_W} \le |w|\, \delta(\sigma, r), \qquad
    \delta(\sigma, r) = \frac{4 \exp\big(-(4 r^2 - 1) / (8 \sigma^2)\big)}{1 - \exp(-r / \sigma^2)}

(:math:`E` the left-out mass, bounded by two geometric tails; :math:`G_W \ge e^{-1/(8\sigma^2)}`
the kept mass). At :math:`\sigma = 0.5`: :math:`r = 2` (4 taps) gives :math:`\delta = 2.2 \cdot
10^{-3}` (measured worst case over centres: :math:`5.9 \cdot 10^{-4}`, far from fp32-exact); :math:`r = 3`
(6 taps) gives :math:`\delta = 1.0 \cdot 10^{-7}` (measured :math:`2.7 \cdot 10^{-8}`). The engine picks the
smallest :math:`r` with
:math:`\delta \le` ``tol`` (default :math:`10^{-6}`), and ``backend=None`` uses it only where it
pays (:math:`2r \le K/2`, i.e. late in the sigma schedule); otherwise the dense reference runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DTypeError, ShapeError, ValueRangeError

__all__ = [
    "DELAY_BACKENDS",
    "SIGMA_OFFSET",
    "SIG_FLOOR",
    "delay_conv",
    "delay_taps",
    "delayed_linear",
    "delayed_linear_integer",
    "delays_to_positions",
    "gaussian_delay_kernel",
    "gaussian_taps",
    "integer_delay_kernel",
    "position_range",
    "positions_to_delays",
    "truncation_bound",
    "truncation_radius",
]

EPS = 1e-7  # the DCLS normalisation's epsilon
SIGMA_OFFSET = 0.27  # sigma = |SIG| + SIGMA_OFFSET in the DCLS package's gauss kernel
SIG_FLOOR = 0.23  # where the paper's schedule stops: sigma = 0.5
DELAY_BACKENDS = ("reference", "cpu")
TAPS_FRACTION = 0.5  # backend=None runs the sparse taps when 2r <= TAPS_FRACTION * K


# --------------------------------------------------------------------------- conventions
def position_range(max_delay: int) -> tuple[int, int]:
    """The clamp range of :math:`P`: ``(-(K // 2), (K - 1) // 2)``, i.e. delays ``0 .. K-1``."""
    return -(max_delay // 2), (max_delay - 1) // 2


def positions_to_delays(P: torch.Tensor, max_delay: int) -> torch.Tensor:
    """Integer delays ``(K - 1) // 2 - round(clamp(P))`` (``int64``, in ``[0, K - 1]``)."""
    lo, hi = position_range(max_delay)
    return ((max_delay - 1) // 2 - torch.round(P.detach().clamp(lo, hi))).to(torch.int64)


def delays_to_positions(delays: torch.Tensor, max_delay: int) -> torch.Tensor:
    """The positions :math:`P` whose rounded delays are ``delays`` (the inverse map)."""
    return ((max_delay - 1) // 2 - delays).to(torch.get_default_dtype())


# --------------------------------------------------------------------------- reference engine
def gaussian_delay_kernel(weight: torch.Tensor, P: torch.Tensor, sigma: float, max_delay: int) -> torch.Tensor:
    """The dense DCLS kernel ``k [O, I, K]`` (module docstring); ``P`` is used as given (clamp first)."""
    m = torch.arange(max_delay, dtype=weight.dtype, device=weight.device)
    g = torch.exp(-0.5 * ((m - (P + max_delay // 2).unsqueeze(-1)) / sigma) ** 2)
    return weight.unsqueeze(-1) * g / (g.sum(-1, keepdim=True) + EPS)


def integer_delay_kernel(weight: torch.Tensor, delays: torch.Tensor, max_delay: int) -> torch.Tensor:
    """The dense kernel of integer delays: ``k[o, i, K - 1 - d[o, i]] = w[o, i]``, zero elsewhere."""
    k = weight.new_zeros((*weight.shape, max_delay))
    return k.scatter(-1, (max_delay - 1 - delays).unsqueeze(-1), weight.unsqueeze(-1))


def delay_conv(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The reference engine: ``y[t] = sum_m k[:, :, m] @ x[t - (K - 1 - m)]``, causal, length ``T``.

    ``x [T, B, I]``, ``kernel [O, I, K]`` -> ``[T, B, O]``: time-major input permuted to
    ``[B, I, T]``, left-padded with ``K - 1`` zero steps, ``conv1d`` (a correlation).
    """
    xb = F.pad(x.permute(1, 2, 0), (kernel.shape[-1] - 1, 0))
    return F.conv1d(xb, kernel, bias).permute(2, 0, 1)


# --------------------------------------------------------------------------- truncated Gaussian
def truncation_bound(sigma: float, r: int) -> float:
    r""":math:`\delta(\sigma, r)`: bounds :math:`\|\tilde k - k\|_1 / |w|` for the 2r-tap window."""
    s2 = float(sigma) ** 2
    return 4.0 * math.exp(-(4.0 * r * r - 1.0) / (8.0 * s2)) / -math.expm1(-r / s2)


def truncation_radius(sigma: float, tol: float) -> int:
    """The smallest ``r >= 1`` with ``truncation_bound(sigma, r) <= tol``."""
    r = max(1, int(sigma * math.sqrt(2.0 * math.log(4.0 / tol))))
    while r > 1 and truncation_bound(sigma, r - 1) <= tol:
        r -= 1
    while truncation_bound(sigma, r) > tol:
        r += 1
    return r


def gaussian_taps(
    weight: torch.Tensor, P: torch.Tensor, sigma: float, max_delay: int, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The truncated kernel as sparse taps: ``(coef [O, I, J], dmin [O, I])``, tap ``j`` of delay
    ``dmin + j``. ``J = 2r`` kernel taps around each centre (taps past the kernel's ends get 0),
    or, when ``2r >= K``, all ``K`` taps (the exact kernel)."""
    K = max_delay
    if 2 * r >= K:
        k = gaussian_delay_kernel(weight, P, sigma, K)
        return k.flip(-1), torch.zeros(P.shape, dtype=torch.int64, device=P.device)
    c = P + K // 2
    f = torch.floor(c.detach())
    m = f.unsqueeze(-1) + r - torch.arange(2 * r, dtype=c.dtype, device=c.device)
    valid = (m >= 0) & (m <= K - 1)
    g = torch.where(valid, torch.exp(-0.5 * ((m - c.unsqueeze(-1)) / sigma) ** 2), 0.0)
    coef = weight.unsqueeze(-1) * g / (g.sum(-1, keepdim=True) + EPS)
    return coef, (K - 1 - r - f).to(torch.int64)


# --------------------------------------------------------------------------- the sparse-tap operator
@torch.library.custom_op("neurogate::delay_events", mutates_args=())
def _delay_events(x: torch.Tensor, max_density: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..cpu import delay as engine

    return engine.events(x, max_density)


@_delay_events.register_fake
def _(x, max_density):
    T, B, I = x.shape
    cap = max(0, int(max_density * T * B * I))
    vdt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return x.new_empty(B * I + 1, dtype=torch.int64), x.new_empty(cap, dtype=torch.int32), x.new_empty(cap, dtype=vdt)


@torch.library.custom_op("neurogate::delay_taps", mutates_args=())
def _delay_taps(
    x: torch.Tensor, coef: torch.Tensor, dmin: torch.Tensor, ptr: torch.Tensor, step: torch.Tensor, val: torch.Tensor
) -> torch.Tensor:
    from ..cpu import delay as engine

    return engine.forward(x, coef, dmin, ptr, step, val)


@_delay_taps.register_fake
def _(x, coef, dmin, ptr, step, val):
    return x.new_empty((x.shape[0], x.shape[1], coef.shape[0]))


@torch.library.custom_op("neurogate::delay_taps_backward", mutates_args=())
def _delay_taps_backward(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    coef: torch.Tensor,
    dmin: torch.Tensor,
    ptr: torch.Tensor,
    step: torch.Tensor,
    val: torch.Tensor,
    need_x: bool,
    need_coef: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    from ..cpu import delay as engine

    gx, gc = engine.backward(grad_y, x, coef, dmin, ptr, step, val, need_x, need_coef)
    return (x.new_empty(0) if gx is None else gx), (coef.new_empty(0) if gc is None else gc)


@_delay_taps_backward.register_fake
def _(grad_y, x, coef, dmin, ptr, step, val, need_x, need_coef):
    gx = torch.empty_like(x) if need_x else x.new_empty(0)
    return gx, (torch.empty_like(coef) if need_coef else coef.new_empty(0))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)  # x, coef, dmin and the events: gathered once, reused here


def _backward(ctx, grad_y):
    x, coef, dmin, ptr, step, val = ctx.saved_tensors
    need_x, need_coef = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    gx, gc = _delay_taps_backward(grad_y, x, coef, dmin, ptr, step, val, need_x, need_coef)
    return (gx if need_x else None), (gc if need_coef else None), None, None, None, None


_delay_taps.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("neurogate::gaussian_taps", mutates_args=())
def _gaussian_taps_op(
    weight: torch.Tensor, P: torch.Tensor, sigma: float, max_delay: int, r: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`gaussian_taps` of ``P.clamp(*position_range(K))``, fused (numba): one parallel pass over
    the synapses each way instead of a dozen torch operations between the engine's kernels.

    Returns ``(coef, dmin, window)``: ``window`` is the normalised Gaussian :math:`g_j / S`
    (``coef = weight * window``), an internal output without gradient, saved so that the backward
    pass needs no exponential."""
    from ..cpu import delay as engine

    return engine.gaussian_taps(weight, P, sigma, max_delay, r, EPS)


@_gaussian_taps_op.register_fake
def _(weight, P, sigma, max_delay, r):
    J = min(max_delay, 2 * r)
    return (weight.new_empty((*weight.shape, J)), weight.new_empty(weight.shape, dtype=torch.int64),
            weight.new_empty((*weight.shape, J)))


@torch.library.custom_op("neurogate::gaussian_taps_backward", mutates_args=())
def _gaussian_taps_backward(
    grad_coef: torch.Tensor, weight: torch.Tensor, P: torch.Tensor, window: torch.Tensor, sigma: float,
    max_delay: int, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    from ..cpu import delay as engine

    return engine.gaussian_taps_backward(grad_coef, weight, P, window, sigma, max_delay, r)


@_gaussian_taps_backward.register_fake
def _(grad_coef, weight, P, window, sigma, max_delay, r):
    return torch.empty_like(weight), torch.empty_like(P)


def _taps_setup_context(ctx, inputs, output):
    weight, P, ctx.sigma, ctx.max_delay, ctx.r = inputs
    ctx.save_for_backward(weight, P, output[2])
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.set_materialize_grads(False)  # no zero-filled gradients for dmin and window, which have none


def _taps_backward(ctx, grad_coef, _grad_dmin, _grad_window):
    if grad_coef is None:
        return None, None, None, None, None
    weight, P, window = ctx.saved_tensors
    gw, gP = _gaussian_taps_backward(grad_coef, weight, P, window, ctx.sigma, ctx.max_delay, ctx.r)
    return (gw if ctx.needs_input_grad[0] else None), (gP if ctx.needs_input_grad[1] else None), None, None, None


_gaussian_taps_op.register_autograd(_taps_backward, setup_context=_taps_setup_context)


def delay_taps(x: torch.Tensor, coef: torch.Tensor, dmin: torch.Tensor) -> torch.Tensor:
    r"""Sparse delay taps (CPU engine): :math:`y[t,b,o] = \sum_{i,j} \mathrm{coef}[o,i,j]\,
    x[t - d_{\min}[o,i] - j, b, i]` with :math:`x[s] = 0` outside :math:`[0, T)`.

    Differentiable in ``x`` and ``coef`` (not ``dmin``); the input gradient is computed only when
    ``x`` requires it (a first layer on data does not). Two ``torch.library`` custom operators with
    fake implementations, so it runs under ``torch.compile``: ``neurogate::delay_events`` gathers
    the non-zero inputs once, when they are few enough for the event engine to pay
    (:func:`neurogate.cpu.delay.event_max_density`), and ``neurogate::delay_taps`` runs the event
    or the dense engine on them, saving the events for its backward pass
    (:mod:`neurogate.cpu.delay`). Negative delays read later steps: keep their ``coef`` at zero
    for a causal layer.

    Example:
        >>> y = delay_taps(torch.rand(100, 8, 3), torch.ones(4, 3, 1), torch.randint(0, 25, (4, 3)))
    """
    if coef.dim() != 3 or dmin.shape != coef.shape[:2]:
        raise ShapeError(
            f"coef must be [O, I, J] and dmin [O, I]; got coef {tuple(coef.shape)} and dmin {tuple(dmin.shape)}"
        )
    _check_x(x, coef.shape[1])
    if x.device.type != "cpu":
        raise ConfigError(f"delay_taps runs on CPU tensors; x is on {x.device} (use backend='reference')")
    if dmin.dtype not in (torch.int64, torch.int32):
        raise DTypeError(f"dmin must be an integer tensor; got dtype {dmin.dtype}")
    from ..cpu.delay import event_max_density

    ptr, step, val = _delay_events(x.detach(), event_max_density(coef.shape[2]))
    return _delay_taps(x, coef.to(x.dtype), dmin.to(torch.int64), ptr, step, val)


# --------------------------------------------------------------------------- public primitives
def delayed_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    P: torch.Tensor,
    sigma: float,
    max_delay: int,
    bias: torch.Tensor | None = None,
    *,
    tol: float = 1e-6,
    backend: str | None = None,
) -> torch.Tensor:
    r"""DCLS delays with the Gaussian training kernel: ``x [T, B, I]`` -> ``[T, B, O]``.

    Args:
        x: time-major input.
        weight, P: ``[O, I]`` weights and positions; ``P`` is clamped to :func:`position_range`
            here (gradient passes inside the range; clamp the parameter itself after each
            optimiser step, as the paper's code does, so it never sticks outside).
        sigma: the Gaussian's standard deviation :math:`\sigma` (``SIG + SIGMA_OFFSET``).
        max_delay: :math:`K`, the number of taps (delays ``0 .. K-1``).
        bias: ``[O]`` or ``None``.
        tol: the truncation tolerance of the sparse engine (:func:`truncation_bound`).
        backend: ``None`` (sparse taps on CPU where they pay, else the reference), ``"reference"``
            (dense conv1d) or ``"cpu"`` (sparse taps always; all ``K`` taps when ``2r >= K``).

    Example:
        >>> w, P = torch.randn(16, 8), torch.zeros(16, 8)
        >>> y = delayed_linear(torch.rand(50, 4, 8), w, P, sigma=0.5, max_delay=25)
    """
    K = _check_max_delay(max_delay)
    _check_x(x, weight.shape[-1])
    _check_params(weight, P, "P")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueRangeError(f"sigma must be a finite float > 0; got {sigma!r}")
    if not 0 < tol < 1:
        raise ValueRangeError(f"tol must be in (0, 1); got {tol}")
    r = truncation_radius(sigma, tol)
    engine = _pick_backend(backend, x, 2 * r <= TAPS_FRACTION * K)
    if engine == "reference":
        Pc = P.clamp(*position_range(K))
        y = delay_conv(x, gaussian_delay_kernel(weight, Pc, sigma, K).to(x.dtype))
    else:
        coef, dmin, _ = _gaussian_taps_op(weight, P, float(sigma), K, r)  # gaussian_taps of the clamped P
        y = delay_taps(x, coef, dmin)
    return y if bias is None else y + bias


def delayed_linear_integer(
    x: torch.Tensor,
    weight: torch.Tensor,
    delays: torch.Tensor,
    max_delay: int | None = None,
    bias: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """One integer delay per synapse: ``y[t, :, o] = sum_i w[o, i] x[t - d[o, i], :, i] (+ bias)``.

    ``delays [O, I]`` integer in ``[0, max_delay - 1]`` (``max_delay`` defaults to
    ``delays.max() + 1``). Differentiable in ``x``, ``weight`` and ``bias``. ``backend``: ``None``
    (sparse taps on CPU, dense conv1d elsewhere), ``"reference"`` or ``"cpu"``.

    Example:
        >>> y = delayed_linear_integer(torch.rand(50, 4, 8), torch.randn(16, 8), torch.randint(0, 25, (16, 8)))
    """
    _check_x(x, weight.shape[-1])
    _check_params(weight, delays, "delays")
    if delays.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise DTypeError(f"delays must be an integer tensor; got dtype {delays.dtype} (use positions_to_delays)")
    if max_delay is None:
        max_delay = int(delays.max()) + 1 if delays.numel() else 1
    K = _check_max_delay(max_delay)
    if delays.numel() and not torch.compiler.is_compiling():
        dmin, dmax = int(delays.min()), int(delays.max())
        if dmin < 0 or dmax > K - 1:
            raise ValueRangeError(f"delays must be in [0, {K - 1}] (max_delay={K}); got min {dmin}, max {dmax}")
    d = delays.to(torch.int64)
    if _pick_backend(backend, x, True) == "reference":
        y = delay_conv(x, integer_delay_kernel(weight.to(x.dtype), d, K))
    else:
        y = delay_taps(x, weight.unsqueeze(-1), d)
    return y if bias is None else y + bias


# --------------------------------------------------------------------------- validation
def _check_max_delay(max_delay) -> int:
    if isinstance(max_delay, bool) or not isinstance(max_delay, int) or max_delay < 1:
        raise ValueRangeError(
            f"max_delay must be an int >= 1 (the number of taps: delays 0 .. max_delay-1); got {max_delay!r}"
        )
    return max_delay


def _check_x(x, in_features: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"x must be a torch.Tensor of shape [T, B, in_features]; got {type(x).__name__}")
    if x.dim() != 3:
        raise ShapeError(
            f"x must be time-major [T, B, in_features] (3-D); got shape {tuple(x.shape)}"
            + (" (add a batch dimension with x.unsqueeze(1))" if x.dim() == 2 else "")
        )
    if x.shape[-1] != in_features:
        raise ShapeError(
            f"x has {x.shape[-1]} features in its last dimension; this layer expects in_features="
            f"{in_features} (x must be [T, B, {in_features}])"
        )
    if x.is_complex() or not x.is_floating_point():
        raise DTypeError(f"x must be a floating-point tensor; got dtype {x.dtype} (use x.float())")


def _check_params(weight: torch.Tensor, other: torch.Tensor, name: str) -> None:
    if weight.dim() != 2 or other.shape != weight.shape:
        raise ShapeError(
            f"weight and {name} must both be [out_features, in_features]; got {tuple(weight.shape)} "
            f"and {tuple(other.shape)}"
        )


def _pick_backend(backend: str | None, x: torch.Tensor, taps_pay: bool) -> str:
    if backend is None:
        return "cpu" if x.device.type == "cpu" and taps_pay else "reference"
    if backend not in DELAY_BACKENDS:
        raise ConfigError(f"backend={backend!r} is unknown; use one of: {', '.join(DELAY_BACKENDS)} or None")
    if backend == "cpu" and x.device.type != "cpu":
        raise ConfigError(f"backend='cpu' runs on CPU tensors; x is on {x.device} (use backend='reference')")
    return backend
