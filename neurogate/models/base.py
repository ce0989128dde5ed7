r"""Building blocks of the model zoo: per-step layers over time, readouts, spike/SynOps monitors.

* :class:`TimeDistributed` applies a stateless module (convolution, BatchNorm, pooling, linear)
  to every time step at once by folding time into the batch:
  ``[T, B, ...] -> [T*B, ...] -> module -> [T, B, ...]``.
* :class:`Readout` turns the output layer's per-step currents ``[T, B, K]`` into logits ``[B, K]``.
* :class:`SpikingModel` is the base of every registered model: ``forward(x [T, B, ...]) -> logits
  [B, K]``, its registry ``config``, and :meth:`SpikingModel.monitor`.
* :class:`SpikeMonitor` collects, with forward hooks, the spike rate of every LIF layer and the
  synaptic operations (SynOps) per sample.

SynOps, the usual energy proxy of an SNN on event-driven hardware, counts one accumulate per
input event and per synapse it reaches:

.. math::

    \mathrm{SynOps} = \frac{1}{B} \sum_{l} \sum_{t} \sum_{i} |x^{(l)}_{t,i}|\; \mathrm{fanout}^{(l)}_i

summed over every synaptic layer ``l`` (``nn.Linear``, ``nn.Conv1d/2d``, ``DelayedLinear``), time step ``t`` and input
neuron ``i``. ``fanout`` of a linear input is ``out_features``; of a convolution input, the number
of output positions whose receptive field holds it times the output channels it connects to (exact
at the borders: computed by convolving the input with a kernel of ones). For spikes ``|x| = 1`` so
this is spikes x fan-out; for the first layer the inputs are event counts, and an event count of
``n`` is ``n`` events. BatchNorm, pooling and the readout's time average are not counted (BatchNorm
folds into the preceding weights for deployment; max-pooling of spikes is a logical OR).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError
from ..layers import LIF, DelayedLinear

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Readout", "SpikeMonitor", "SpikingModel", "TimeDistributed"]


class TimeDistributed(nn.Module):
    """Apply ``module`` independently at every time step of ``[T, B, ...]`` input.

    Time is folded into the batch (one call, not a loop over ``T``), so BatchNorm inside
    normalises over ``T * B`` samples.

    Example:
        >>> conv = TimeDistributed(nn.Conv2d(2, 8, 3, padding=1))
        >>> conv(torch.zeros(10, 4, 2, 34, 34)).shape
        torch.Size([10, 4, 8, 34, 34])
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ShapeError(f"TimeDistributed expects [T, B, ...], got shape {tuple(x.shape)}")
        y = self.module(x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])


class Readout(nn.Module):
    r"""Logits from the output layer's currents ``I_t`` (``[T, B, K]`` -> ``[B, K]``).

    * ``"mean"``: the time average :math:`\frac{1}{T}\sum_t I_t` (the spike count of the last
      hidden layer, weighted; equal to summing over time up to the factor ``1/T``, which keeps the
      logits' scale independent of ``T``).
    * ``"leaky"``: a non-spiking leaky integrator :math:`u_t = \beta u_{t-1} + I_t`,
      :math:`u_{-1} = 0`, read as its time average :math:`\frac{1}{T}\sum_t u_t`, which weighs
      early evidence more than late.
    """

    MODES = ("mean", "leaky")

    def __init__(self, mode: str = "mean", decay: float = 0.8) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ConfigError(f"readout must be one of {self.MODES}, got {mode!r}")
        self.mode, self.decay = mode, float(decay)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean":
            return current.mean(0)
        u = torch.zeros_like(current[0])
        total = torch.zeros_like(current[0])
        for i_t in current:
            u = self.decay * u + i_t
            total = total + u
        return total / current.shape[0]

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}" + (f", decay={self.decay}" if self.mode == "leaky" else "")


class SpikingModel(nn.Module):
    """Base of the registered models: ``[T, B, *in_shape]`` frames -> ``[B, num_classes]`` logits.

    Subclasses take ``num_classes`` and ``in_shape`` first, then keyword options.
    :func:`neurogate.models.create` sets :attr:`config` (the model name and every option), which
    checkpoints store so a run can rebuild its model.
    """

    config: dict[str, Any]

    def __init__(self, num_classes: int, in_shape: tuple[int, ...]) -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.in_shape = tuple(int(s) for s in in_shape)
        self.config = {}

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`ShapeError` unless ``x`` is ``[T, B, *in_shape]``."""
        if x.dim() != 2 + len(self.in_shape) or tuple(x.shape[2:]) != self.in_shape:
            raise ShapeError(
                f"{type(self).__name__} expects input [T, B, {', '.join(map(str, self.in_shape))}]"
                f", got {list(x.shape)}"
            )

    def lif_layers(self) -> dict[str, LIF]:
        """The LIF layers by qualified name, in forward order."""
        return {n: m for n, m in self.named_modules() if isinstance(m, LIF)}

    def monitor(self, keep_spikes: bool = False) -> SpikeMonitor:
        """A :class:`SpikeMonitor` on this model (use as a context manager)."""
        return SpikeMonitor(self, keep_spikes=keep_spikes)


class SpikeMonitor:
    """Forward hooks that measure spike rates per LIF layer and SynOps per sample.

    Rates are the fraction of neurons that spike per time step, averaged over every call while
    the monitor is open; :meth:`synops_per_sample` follows the formula in the module docstring.
    With ``keep_spikes`` the last output of every LIF layer is kept in :attr:`spikes`.

    Example:
        >>> with model.monitor() as mon:
        ...     model(x)
        >>> mon.rates()            # {"lif1": 0.08, "lif2": 0.05, "lif3": 0.11}
        >>> mon.synops_per_sample()
    """

    def __init__(self, model: nn.Module, keep_spikes: bool = False) -> None:
        self.model, self.keep_spikes = model, keep_spikes
        self.spikes: dict[str, torch.Tensor] = {}
        self._names = [n for n, m in model.named_modules() if isinstance(m, LIF)]
        self._handles: list[Any] = []
        self.reset()

    def reset(self) -> None:
        """Zero the accumulated counts."""
        self.spike_sum = {n: 0.0 for n in self._names}
        self.spike_count = {n: 0 for n in self._names}
        self.synops = 0.0
        self.samples = 0
        self.spikes = {}

    def __enter__(self) -> Self:
        self._handles.append(self.model.register_forward_pre_hook(self._count_samples))
        for name, module in self.model.named_modules():
            if isinstance(module, LIF):
                self._handles.append(module.register_forward_hook(self._lif_hook(name)))
            elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, DelayedLinear)):
                self._handles.append(module.register_forward_hook(_synops_hook(self)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def rates(self) -> dict[str, float]:
        """Mean spikes per neuron per time step, by LIF layer name."""
        return {n: self.spike_sum[n] / max(self.spike_count[n], 1) for n in self._names}

    def synops_per_sample(self) -> float:
        """Synaptic operations per sample (module docstring)."""
        return self.synops / max(self.samples, 1)

    def _count_samples(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.samples += int(args[0].shape[1])

    def _lif_hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            s = (out[0] if isinstance(out, tuple) else out).detach()
            self.spike_sum[name] += float(s.sum())
            self.spike_count[name] += s.numel()
            if self.keep_spikes:
                self.spikes[name] = s
        return hook


def _synops_hook(mon: SpikeMonitor):
    def hook(module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        mon.synops += float(_synops(module, args[0].detach()))
    return hook


@torch.no_grad()
def _synops(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Sum over inputs of |x_i| x fan-out_i for one synaptic layer (exact at borders)."""
    x = x.abs()
    if isinstance(layer, (nn.Linear, DelayedLinear)):
        # A delayed synapse delivers each input event once, at its delay (events whose delay
        # would land past the last step are counted too: an upper bound by at most max_delay steps).
        return x.sum() * layer.out_features
    groups = layer.groups
    ones = torch.ones(
        (groups, layer.in_channels // groups, *layer.kernel_size), dtype=x.dtype, device=x.device
    )
    conv = F.conv2d if isinstance(layer, nn.Conv2d) else F.conv1d
    if isinstance(layer.padding, str):
        raise ConfigError("SynOps: string padding is not supported; give the padding as numbers")
    hits = conv(x, ones, None, layer.stride, layer.padding, layer.dilation, groups)
    return hits.sum() * (layer.out_channels // groups)
