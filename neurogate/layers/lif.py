r"""``LIF``: a layer of leaky integrate-and-fire neurons over time-major input.

Wraps :func:`neurogate.functional.lif_scan` (equations there). The membrane decay per step is
:math:`\beta` (``decay``), or :math:`\beta = e^{-\Delta t / \tau}` when ``tau`` is given (exact
integration of :math:`\tau \dot v = -v + R I` over one step ``dt``, the convention NIR export uses).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..errors import ValueRangeError
from ..functional import saved_membrane as _saved
from ..functional.lif import _resolve, lif_scan

__all__ = ["LIF", "LIFState"]


class LIFState(NamedTuple):
    """State carried between calls: the post-reset membrane ``v`` of shape ``[B, ...]``."""

    v: torch.Tensor


class LIF(nn.Module):
    """Multi-step LIF neurons: ``[T, B, ...]`` input current -> ``[T, B, ...]`` spikes.

    Stateless across calls: every call starts from ``v = 0`` unless a :class:`LIFState` is
    passed. ``step`` runs one time step for streaming and agrees exactly with the multi-step call.

    Args:
        decay: membrane decay per step :math:`\\beta \\in [0, 1]` (ignored when ``tau`` is given).
        tau: membrane time constant in units of ``dt``; sets :math:`\\beta = e^{-dt/\\tau}`.
        dt: the step length in the units of ``tau``.
        threshold: firing threshold :math:`\\vartheta`.
        reset: ``"subtract"``, ``"zero"`` or ``"none"``.
        surrogate, alpha: surrogate gradient (:mod:`neurogate.surrogate`).
        decay_input: scale the input by :math:`1 - \\beta` (SpikingJelly's convention).
        detach_reset: no gradient through the spike inside the reset term.
        learn_decay: make :math:`\\beta` a parameter, stored as its logit so it stays in (0, 1).
        learn_threshold: make :math:`\\vartheta` a parameter.
        shape: neuron shape of the parameters (``()`` shares one value; ``(N,)`` gives each of
            ``N`` neurons its own).
        backend: engine override (``None``, ``"reference"``, ``"cpu"``, ``"triton"``).
        saved_membrane: ``"float"`` (exact), ``"fp8"`` (keep a 1-byte code of the membrane for
            the backward pass instead of a float: 4x less memory, approximate surrogate gradients)
            or ``"recompute"`` (exact; keep the input and recompute the membrane: faster on a GPU).
            See :mod:`neurogate.functional.saved_membrane`. Applies to the plain multi-step call.

    Example:
        >>> import torch, neurogate as ng
        >>> lif = ng.LIF(tau=5.0, learn_decay=True, shape=(128,))
        >>> spikes = lif(torch.randn(100, 32, 128))            # [T, B, N]
        >>> s_t, state = lif.step(torch.randn(32, 128))         # one step, streaming
    """

    def __init__(
        self,
        decay: float = 0.9,
        *,
        tau: float | None = None,
        dt: float = 1.0,
        threshold: float = 1.0,
        reset: str = "subtract",
        surrogate: str = "atan",
        alpha: float | None = None,
        decay_input: bool = False,
        detach_reset: bool = False,
        learn_decay: bool = False,
        learn_threshold: bool = False,
        shape: tuple[int, ...] = (),
        backend: str | None = None,
        saved_membrane: str = "float",
    ) -> None:
        super().__init__()
        _saved.check_mode(saved_membrane)
        if tau is not None:
            if not (math.isfinite(tau) and tau > 0 and dt > 0):
                raise ValueRangeError(f"tau={tau} and dt={dt} must be > 0")
            decay = math.exp(-dt / tau)
        if not 0.0 <= decay <= 1.0:
            raise ValueRangeError(f"decay={decay} must be in [0, 1] (or give tau=)")
        if learn_decay and not 0.0 < decay < 1.0:
            raise ValueRangeError(f"learn_decay needs 0 < decay < 1 (stored as a logit); got {decay}")
        self._params = _resolve(reset, surrogate, alpha, decay_input, detach_reset)
        self.reset, self.surrogate, self.decay_input, self.detach_reset = (
            reset, surrogate, decay_input, detach_reset,
        )
        self.alpha = self._params.alpha
        self.backend = backend
        self.saved_membrane = saved_membrane
        self.shape = tuple(shape)
        d = torch.full(self.shape, float(decay))
        if learn_decay:
            self.decay_logit = nn.Parameter(torch.logit(d))
        else:
            self.register_buffer("decay_value", d)
        th = torch.full(self.shape, float(threshold))
        if learn_threshold:
            self.threshold = nn.Parameter(th)
        else:
            self.register_buffer("threshold", th)

    @property
    def decay(self) -> torch.Tensor:
        """:math:`\\beta` as a tensor of ``shape`` (differentiable when learned)."""
        if hasattr(self, "decay_logit"):
            return torch.sigmoid(self.decay_logit)
        return self.decay_value

    @property
    def tau(self) -> torch.Tensor:
        """:math:`\\tau = -dt / \\ln \\beta` in steps (for export and inspection)."""
        return -1.0 / torch.log(self.decay.detach())

    def _scan(self, x: torch.Tensor, state: LIFState | None):
        p = self._params
        return lif_scan(
            x,
            decay=self.decay,
            threshold=self.threshold,
            reset=self.reset,
            v0=None if state is None else state.v,
            surrogate=self.surrogate,
            alpha=p.alpha,
            decay_input=p.decay_input,
            detach_reset=p.detach_reset,
            backend=self.backend,
            return_state=True,
        )

    def forward(self, x: torch.Tensor, state: LIFState | None = None, *, return_state: bool = False):
        """Spikes ``[T, B, ...]`` (and the final :class:`LIFState` with ``return_state``)."""
        if not return_state:
            return lif_scan(
                x, decay=self.decay, threshold=self.threshold, reset=self.reset,
                v0=None if state is None else state.v, surrogate=self.surrogate, alpha=self.alpha,
                decay_input=self.decay_input, detach_reset=self.detach_reset, backend=self.backend,
                saved_membrane=getattr(self, "saved_membrane", "float"),  # modules pickled before it existed
            )
        spikes, v, _ = self._scan(x, state)
        return spikes, LIFState(v)

    def trace(self, x: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(spikes, v_trace)``: spikes and the pre-reset membrane at every step."""
        spikes, _, v_trace = self._scan(x, state)
        return spikes, v_trace

    def step(self, x_t: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, LIFState]:
        """One time step: ``x_t: [B, ...]`` -> ``(spikes_t, state)``; equals the multi-step call."""
        spikes, v, _ = self._scan(x_t.unsqueeze(0), state)
        return spikes[0], LIFState(v)

    def extra_repr(self) -> str:
        learned = [n for n in ("decay_logit", "threshold") if isinstance(getattr(self, n, None), nn.Parameter)]
        return (
            f"shape={self.shape}, reset={self.reset!r}, surrogate={self.surrogate!r}, alpha={self.alpha}, "
            f"decay_input={self.decay_input}, detach_reset={self.detach_reset}, learned={learned}"
            + (f", saved_membrane={mode!r}" if (mode := getattr(self, "saved_membrane", "float")) != "float" else "")
        )
