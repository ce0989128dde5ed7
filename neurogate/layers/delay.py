r"""``DelayedLinear``: a dense layer whose every synapse has a learnable delay (DCLS).

Equations, the delay convention and the engines are in :mod:`neurogate.functional.delay`. In
short: synapse :math:`(o, i)` has a weight :math:`w` and a real position :math:`P`; training
spreads it over the :math:`K` = ``max_delay`` taps with a normalised Gaussian of width
:math:`\sigma = \mathrm{SIG} + 0.27`; at inference it has one integer delay
:math:`d = \lfloor (K-1)/2 \rfloor - \mathrm{round}(P) \in [0, K-1]`, and

.. math::

    y[t, b, o] = \sum_i w[o, i]\, x[t - d[o, i], b, i] \;(+\, \mathrm{bias}[o]),
    \qquad x[s] = 0 \text{ for } s < 0

(causal: output step :math:`t` only sees input steps :math:`\le t`; the output keeps :math:`T`).

Training protocol of the paper (Hammouamri et al. 2024), and the hooks that implement it:

* after every ``optimizer.step()``: :func:`clamp_positions` (``P`` back into its range, in
  place, as the paper's code does; the forward pass also clamps, so a missed call cannot put a
  Gaussian outside the kernel, but a parameter left outside gets no gradient);
* at the start of every epoch: :func:`schedule_sigma` with the epoch index (0-based) and
  ``final_epoch`` (the paper: a quarter of the epochs): ``SIG`` goes from ``sigma_init`` (default
  ``K // 2``) geometrically to ``0.23`` at ``final_epoch`` and stays there;
* evaluation: ``model.eval()`` uses the rounded integer delays (the paper's inference);
  :meth:`DelayedLinear.round_delays` snaps the positions for good and keeps the integer path in
  training too (fine-tuning weights with frozen delays).

Under ``torch.compile`` use ``dynamic=False``: sigma is a Python constant of the graph (it sets
the number of taps), so each new sigma of the schedule compiles once more.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, ValueRangeError
from ..functional.delay import (
    DELAY_BACKENDS,
    SIG_FLOOR,
    SIGMA_OFFSET,
    _check_max_delay,
    delayed_linear,
    delayed_linear_integer,
    position_range,
    positions_to_delays,
)

__all__ = ["DelayedLinear", "clamp_positions", "delay_layers", "schedule_sigma"]


class DelayedLinear(nn.Module):
    """``[T, B, in_features]`` -> ``[T, B, out_features]`` with a learnable delay per synapse.

    Args:
        in_features, out_features: sizes.
        max_delay: :math:`K`, the number of taps: delays ``0 .. K-1`` steps (the paper's SHD
            recipe: ``K = 25`` at 10 ms bins).
        sigma_init: the schedule's start ``SIG`` (default ``K // 2``, the paper's); the Gaussian's
            standard deviation is ``SIG + 0.27``.
        bias: add a learnable bias (off by default: the paper follows each layer by BatchNorm).
        tol: truncation tolerance of the sparse training engine
            (:func:`neurogate.functional.delay.truncation_bound`).
        backend: ``None`` (pick by device and sigma), ``"reference"`` or ``"cpu"``.

    Attributes:
        weight, P: ``[out, in]`` parameters (``P`` drawn uniformly over its range, like the paper).
        SIG: the schedule's scalar buffer (saved with the state dict, so a resumed run continues).
        integer_delays: use the integer path in training too (set by :meth:`round_delays`).

    Example:
        >>> layer = DelayedLinear(140, 256, max_delay=25)
        >>> y = layer(torch.rand(100, 64, 140))            # Gaussian kernel, sigma = 12.27
        >>> layer.sigma_schedule(epoch=30, final_epoch=37)  # once per epoch, or schedule_sigma(model, ...)
        >>> W, d = layer.export_weights()                   # [256, 140] float, [256, 140] int64
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        max_delay: int,
        *,
        sigma_init: float | None = None,
        bias: bool = False,
        tol: float = 1e-6,
        backend: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueRangeError(f"{name} must be an int >= 1; got {v!r}")
        K = _check_max_delay(max_delay)
        sig0 = float(K // 2 if sigma_init is None else sigma_init)
        if not (math.isfinite(sig0) and sig0 >= 0):
            raise ValueRangeError(
                f"sigma_init must be a finite float >= 0 (SIG; sigma = SIG + 0.27); got {sigma_init!r}"
            )
        if not 0 < tol < 1:
            raise ValueRangeError(f"tol must be in (0, 1); got {tol}")
        if backend is not None and backend not in DELAY_BACKENDS:
            raise ConfigError(f"backend={backend!r} is unknown; use one of: {', '.join(DELAY_BACKENDS)} or None")
        self.in_features, self.out_features, self.max_delay = in_features, out_features, K
        self.sigma_init, self.tol, self.backend = sig0, float(tol), backend
        self.integer_delays = False
        self._sig = sig0
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.P = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.bias = nn.Parameter(torch.empty(out_features, **kw)) if bias else None
        self.register_buffer("SIG", torch.tensor(sig0, **kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights as ``nn.Linear`` (Kaiming uniform, fan-in ``in_features``); ``P`` uniform over its range."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        lo, hi = position_range(self.max_delay)
        with torch.no_grad():
            self.P.uniform_(lo, hi)
            self.SIG.fill_(self.sigma_init)
        self._sig = self.sigma_init
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian kernel in training; one rounded integer delay per synapse in eval mode."""
        if self.integer_delays or not self.training:
            return delayed_linear_integer(
                x, self.weight, self.delays, self.max_delay, self.bias, backend=self.backend
            )
        return delayed_linear(
            x, self.weight, self.P, self.sigma, self.max_delay, self.bias, tol=self.tol, backend=self.backend
        )

    @property
    def sigma(self) -> float:
        """The Gaussian's standard deviation: ``|SIG| + 0.27`` (a Python float: it sets the tap count)."""
        # Under torch.compile: the value set by sigma_schedule / load_state_dict (a guarded constant:
        # a new sigma recompiles, as the tap count may change with it).
        if not torch.compiler.is_compiling():
            self._sig = abs(float(self.SIG))
        return self._sig + SIGMA_OFFSET

    @property
    def delays(self) -> torch.Tensor:
        """Integer delays ``[out, in]`` (int64, steps): ``(K - 1) // 2 - round(clamp(P))``."""
        return positions_to_delays(self.P, self.max_delay)

    # ------------------------------------------------------------------ training hooks
    def clamp_positions(self) -> None:
        """Clamp ``P`` in place to its range; call after every optimiser step (the paper's code does)."""
        lo, hi = position_range(self.max_delay)
        with torch.no_grad():
            self.P.clamp_(lo, hi)

    def sigma_schedule(self, epoch: int, final_epoch: int) -> float:
        """Set ``SIG`` for ``epoch`` (0-based) and return it: the paper's exponential decay.

        ``SIG = sigma_init * (0.23 / sigma_init) ** (min(epoch, final_epoch) / final_epoch)``,
        i.e. multiplied by ``(0.23 / sigma_init) ** (1 / final_epoch)`` each epoch until it reaches
        the floor 0.23 (sigma 0.5) at ``final_epoch``. Closed form, so resuming at any epoch is exact.
        """
        if isinstance(final_epoch, bool) or not isinstance(final_epoch, int) or final_epoch < 1:
            raise ValueRangeError(f"final_epoch must be an int >= 1 (the paper: epochs // 4); got {final_epoch!r}")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueRangeError(f"epoch must be an int >= 0; got {epoch!r}")
        s0 = self.sigma_init
        sig = s0
        if s0 > SIG_FLOOR:
            sig = max(SIG_FLOOR, s0 * (SIG_FLOOR / s0) ** (min(epoch, final_epoch) / final_epoch))
        self.SIG.fill_(sig)
        self._sig = sig
        return sig

    def round_delays(self) -> None:
        """Round ``P`` to integers in place and use the integer path from now on (train mode too)."""
        self.clamp_positions()
        with torch.no_grad():
            self.P.round_()
        self.integer_delays = True

    # ------------------------------------------------------------------ export
    def export_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [out, in], delays [out, in] int64)``: ``y[t, o] = sum_i W[o, i] x[t - delays[o, i], i]``
        (plus ``self.bias``), the integer-delay layer that eval mode runs; for NIR Affine + Delay."""
        return self.weight.detach().clone(), self.delays

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, max_delay={self.max_delay}, sigma={self.sigma:.3g}, "
            f"bias={self.bias is not None}" + (", integer_delays=True" if self.integer_delays else "")
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        expect = {"weight": self.weight.shape, "P": self.P.shape, "SIG": self.SIG.shape}
        if self.bias is not None:
            expect["bias"] = self.bias.shape
        for name, shape in expect.items():
            t = state_dict.get(prefix + name)
            if not isinstance(t, torch.Tensor):
                continue
            if t.shape != shape:
                raise CheckpointError(
                    f"{prefix}{name} has shape {tuple(t.shape)} in the checkpoint; this DelayedLinear "
                    f"({self.in_features} -> {self.out_features}, max_delay={self.max_delay}) expects "
                    f"{tuple(shape)}: build the layer with the checkpoint's sizes"
                )
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                n = int((~torch.isfinite(t)).sum())
                raise CheckpointError(
                    f"{prefix}{name} holds {n} NaN/inf value(s) in the checkpoint (training diverged "
                    f"or the file is corrupt); load an earlier checkpoint"
                )
        sig = state_dict.get(prefix + "SIG")
        if isinstance(sig, torch.Tensor) and sig.numel() == 1 and float(sig) < 0:
            raise CheckpointError(f"{prefix}SIG is {float(sig)} in the checkpoint; it must be >= 0")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._sig = abs(float(self.SIG))


# ---------------------------------------------------------------------- model-wide hooks
def delay_layers(model: nn.Module) -> list[DelayedLinear]:
    """Every :class:`DelayedLinear` in ``model`` (itself included), in ``modules()`` order."""
    return [m for m in model.modules() if isinstance(m, DelayedLinear)]


def schedule_sigma(model: nn.Module, epoch: int, final_epoch: int) -> list[float]:
    """Call :meth:`DelayedLinear.sigma_schedule` on every delay layer; the trainer's per-epoch hook.

    Example:
        >>> for epoch in range(epochs):
        ...     schedule_sigma(model, epoch, final_epoch=epochs // 4)
        ...     train_one_epoch(model)   # with clamp_positions(model) after each optimiser step
    """
    return [m.sigma_schedule(epoch, final_epoch) for m in delay_layers(model)]


def clamp_positions(model: nn.Module) -> int:
    """Clamp the positions of every delay layer in place (after each optimiser step); returns the count."""
    layers = delay_layers(model)
    for m in layers:
        m.clamp_positions()
    return len(layers)
