r"""Surrogate gradients: the derivative used in place of the Heaviside step's in the backward pass.

A spike is :math:`S = H(u)` with :math:`u = v - \vartheta` and :math:`H(0) = 1`. The forward pass is
always the exact step; the backward pass uses a smooth :math:`\sigma'(u; \alpha)`. Each surrogate is
defined once here: a name, an integer id, a default :math:`\alpha` and the closed-form derivative.
Every engine (reference, numba, Triton) evaluates the derivative selected by ``(id, alpha)``;
``tests/test_surrogate.py`` checks each engine's formula against :meth:`Surrogate.derivative`.

=================  ==  =======  =============================================================
name               id  alpha    :math:`\sigma'(u; \alpha)`
=================  ==  =======  =============================================================
``atan``           0   2.0      :math:`\frac{\alpha/2}{1 + (\pi \alpha u / 2)^2}`  (snnTorch, SpikingJelly)
``fast_sigmoid``   1   25.0     :math:`\frac{1}{(1 + \alpha |u|)^2}`  (SuperSpike, Zenke & Ganguli 2018)
``sigmoid``        2   4.0      :math:`\alpha\, \mathrm{sig}(\alpha u)\,(1 - \mathrm{sig}(\alpha u))`
``triangle``       3   1.0      :math:`\alpha \max(0, 1 - \alpha |u|)`
``rectangular``    4   1.0      :math:`\alpha\, [\,|u| < 1/(2\alpha)\,]`  (straight-through window)
``erf``            5   2.0      :math:`\frac{\alpha}{\sqrt{\pi}} e^{-\alpha^2 u^2}`
=================  ==  =======  =============================================================

Example:
    >>> import torch, neurogate as ng
    >>> u = torch.linspace(-1, 1, 5, requires_grad=True)
    >>> s = ng.surrogate.spike(u, "atan")          # exact Heaviside forward
    >>> s.sum().backward()                            # u.grad holds the atan surrogate
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .errors import ConfigError

__all__ = ["Surrogate", "SURROGATES", "resolve", "spike", "surrogate_constants"]


@dataclass(frozen=True)
class Surrogate:
    """One surrogate gradient: ``derivative(u, alpha)`` is :math:`\\sigma'(u; \\alpha)`."""

    name: str
    id: int
    default_alpha: float
    derivative: Callable[[torch.Tensor, float], torch.Tensor]

    def __call__(self, u: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
        return self.derivative(u, self.default_alpha if alpha is None else alpha)


def _atan(u: torch.Tensor, a: float) -> torch.Tensor:
    return (a / 2) / (1 + (math.pi * a / 2 * u) ** 2)


def _fast_sigmoid(u: torch.Tensor, a: float) -> torch.Tensor:
    return 1 / (1 + a * u.abs()) ** 2


def _sigmoid(u: torch.Tensor, a: float) -> torch.Tensor:
    sg = torch.sigmoid(a * u)
    return a * sg * (1 - sg)


def _triangle(u: torch.Tensor, a: float) -> torch.Tensor:
    return a * torch.clamp(1 - a * u.abs(), min=0)


def _rectangular(u: torch.Tensor, a: float) -> torch.Tensor:
    return a * (u.abs() < 1 / (2 * a)).to(u.dtype)


def _erf(u: torch.Tensor, a: float) -> torch.Tensor:
    return a / math.sqrt(math.pi) * torch.exp(-((a * u) ** 2))


SURROGATES: dict[str, Surrogate] = {
    s.name: s
    for s in (
        Surrogate("atan", 0, 2.0, _atan),
        Surrogate("fast_sigmoid", 1, 25.0, _fast_sigmoid),
        Surrogate("sigmoid", 2, 4.0, _sigmoid),
        Surrogate("triangle", 3, 1.0, _triangle),
        Surrogate("rectangular", 4, 1.0, _rectangular),
        Surrogate("erf", 5, 2.0, _erf),
    )
}
_ALIASES = {"superspike": "fast_sigmoid", "straight_through": "rectangular"}
BY_ID: dict[int, Surrogate] = {s.id: s for s in SURROGATES.values()}


def resolve(name: str | Surrogate, alpha: float | None = None) -> tuple[Surrogate, float]:
    """Return the surrogate called ``name`` and the alpha to use (its default when ``None``)."""
    if isinstance(name, Surrogate):
        sg = name
    else:
        key = _ALIASES.get(str(name).lower(), str(name).lower())
        if key not in SURROGATES:
            valid = ", ".join(sorted(SURROGATES) + sorted(_ALIASES))
            raise ConfigError(f"surrogate={name!r} is unknown; use one of: {valid}")
        sg = SURROGATES[key]
    a = sg.default_alpha if alpha is None else float(alpha)
    if not (math.isfinite(a) and a > 0):
        raise ConfigError(f"alpha={alpha!r} for surrogate {sg.name!r} must be a finite number > 0")
    return sg, a


class _Spike(torch.autograd.Function):
    """Heaviside forward, :math:`\\sigma'(u; \\alpha)` backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, sid: int, alpha: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.sid, ctx.alpha = sid, alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad * BY_ID[ctx.sid].derivative(u, ctx.alpha), None, None


def spike(u: torch.Tensor, surrogate: str | Surrogate = "atan", alpha: float | None = None) -> torch.Tensor:
    """:math:`H(u)` (with :math:`H(0)=1`) whose gradient is the named surrogate's derivative."""
    sg, a = resolve(surrogate, alpha)
    return _Spike.apply(u, sg.id, a)


def surrogate_constants(sid: int, alpha: float) -> tuple[float, float]:
    """``(k0, k1)`` of the fused engines' closed forms, which equal :meth:`Surrogate.derivative`."""
    a = float(alpha)
    return {
        0: (a / 2, math.pi * a / 2),  # atan: k0 / (1 + (k1 u)^2)
        1: (1.0, a),  # fast sigmoid: 1 / (1 + k1 |u|)^2
        2: (a, a),  # sigmoid: k0 sig(k1 u) (1 - sig(k1 u))
        3: (a, a),  # triangle: k0 max(0, 1 - k1 |u|)
        4: (a, 1 / (2 * a)),  # rectangular: k0 [|u| < k1]
        5: (a / math.sqrt(math.pi), a),  # erf: k0 exp(-(k1 u)^2)
    }[sid]
