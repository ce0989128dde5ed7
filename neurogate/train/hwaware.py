r"""Hardware-aware training: synaptic weights see a crossbar device's non-idealities in training.

For every ``nn.Linear`` / ``nn.Conv*d`` (never a norm layer) a forward pre-hook replaces the
weight, in train mode only, by a sample of what a crossbar would hold. With the column scale
:math:`s_j = \max_i |W_{ij}|` (per output unit, as :func:`neurogate.hw.crossbar.lower` maps a
column) and :math:`G^\pm = g_{min} + \max(\pm W, 0)/s\,(g_{max}-g_{min})`,

.. math::

    \tilde W = \mathrm{Q}(W) + \frac{s}{g_{max} - g_{min}}\left(
        \sqrt{\sigma_p(G^+)^2 + \sigma_r^2 {G^+}^2}\,\xi^+ -
        \sqrt{\sigma_p(G^-)^2 + \sigma_r^2 {G^-}^2}\,\xi^-\right)

with :math:`\sigma_p` the device's programming noise, :math:`\sigma_r` its read noise, fresh
:math:`\xi^\pm \sim \mathcal N(0, 1)` every forward pass, and stuck-at faults (a fraction
``stuck_lrs`` of devices at :math:`g_{max}`, ``stuck_hrs`` at :math:`g_{min}`) resampled as well.
:math:`\mathrm{Q}` rounds :math:`|W|/s` to the device's levels with a straight-through gradient
(``quantise=True``). In eval mode the weight is exact. The noise is computed from the detached
weight, so gradients flow to :math:`W` as if the noise were an additive constant.

Example:
    >>> hwa = HardwareAware.attach(model, "crossbar:rram")   # doctest: +SKIP
    >>> model.train(); model(x)                              # noisy weights  # doctest: +SKIP
    >>> hwa.remove()                                         # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["HardwareAware", "parse_hw_aware", "perturbed_weight"]


def parse_hw_aware(spec: str, noise: float = 1.0) -> Any:
    """The crossbar :class:`~neurogate.hw.crossbar.Device` of a ``"crossbar:<preset>"`` string, its
    programming and read noise multiplied by ``noise``."""
    from ..hw.crossbar import PRESETS

    target, _, preset = str(spec).partition(":")
    if target != "crossbar" or preset not in PRESETS:
        raise ConfigError(f"hw_aware must be 'crossbar:<device>' with a device in {sorted(PRESETS)}, got {spec!r}")
    return PRESETS[preset].with_noise(noise)


def perturbed_weight(w: torch.Tensor, device: Any, *, quantise: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """One crossbar sample of ``w`` ``[out, in, ...]`` (see the module docstring)."""
    if device.noiseless and (not quantise or device.levels is None):
        return w
    wd = w.detach()
    scale = wd.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, *([1] * (w.dim() - 1)))
    frac = wd / scale
    target = wd
    if quantise and device.levels is not None:
        n = device.levels - 1
        target = torch.round(frac * n) / n * scale
    g_range = device.g_range
    g_pos = device.g_min + (target / scale).clamp_min(0) * g_range
    g_neg = device.g_min + (-target / scale).clamp_min(0) * g_range
    c0, c1, c2 = device.prog_coeffs

    def noisy(g: torch.Tensor) -> torch.Tensor:
        r = g / device.g_max
        sig = (device.g_max * (c0 + c1 * r + c2 * r * r)).clamp_min(0)
        sig = torch.sqrt(sig ** 2 + (device.read_noise * g) ** 2)
        g = (g + sig * torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)).clamp_min(0)
        if device.stuck_lrs or device.stuck_hrs:
            u = torch.rand(g.shape, generator=generator, device=g.device, dtype=g.dtype)
            g = torch.where(u < device.stuck_lrs, torch.full_like(g, device.g_max), g)
            g = torch.where((u >= device.stuck_lrs) & (u < device.stuck_lrs + device.stuck_hrs),
                            torch.full_like(g, device.g_min), g)
        return g

    sample = (noisy(g_pos) - noisy(g_neg)) * scale / g_range
    return w + (sample - wd)  # straight through: d sample / d w = 1


class HardwareAware:
    """Forward pre-hooks on a model's Linear/Conv layers that perturb their weights in train mode."""

    LAYERS = (nn.Linear, nn.modules.conv._ConvNd)

    def __init__(self, device: Any, quantise: bool = True) -> None:
        self.device, self.quantise = device, quantise
        self.handles: list[Any] = []

    @classmethod
    def attach(cls, model: nn.Module, spec: str | Any, quantise: bool = True) -> HardwareAware:
        hwa = cls(parse_hw_aware(spec) if isinstance(spec, str) else spec, quantise)
        for m in model.modules():
            if isinstance(m, cls.LAYERS) and isinstance(getattr(m, "weight", None), nn.Parameter):
                hwa.handles.append(m.register_forward_pre_hook(hwa._pre))
                hwa.handles.append(m.register_forward_hook(hwa._post))
        if not hwa.handles:
            raise ConfigError("hw_aware: the model has no Linear or Conv layer to perturb")
        return hwa

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _pre(self, module: nn.Module, args: Any) -> None:
        if module.training:
            # An instance attribute shadows the registered parameter for the forward pass only;
            # state_dict, the optimiser and checkpoints keep seeing the exact weight.
            object.__setattr__(module, "weight", perturbed_weight(module._parameters["weight"], self.device,
                                                                  quantise=self.quantise))

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        module.__dict__.pop("weight", None)
