r"""``delay-snn``: a feedforward SNN with a learnable delay on every synapse (DCLS, Hammouamri et al. 2024).

Per hidden layer :math:`l`: :class:`~neurogate.layers.DelayedLinear` -> BatchNorm1d over the
features (time folded into the batch) -> LIF -> Dropout. The readout is a DelayedLinear into a
non-spiking leaky integrator (LI: a LIF whose threshold is never reached) with membrane
:math:`v_t` ``[T, B, K]``; the model's output is

.. math::

    \log \bar p, \qquad \bar p = \frac{1}{T} \sum_t \operatorname{softmax}(v_t)

so the trainer's cross-entropy on it is exactly :math:`-\log \bar p_y` (``log_softmax`` of a log
probability vector is itself): the cross-entropy of the time-summed softmax (normalised by
:math:`T`) against the label, and the prediction is :math:`\arg\max_k \sum_t
\operatorname{softmax}(v_t)_k`. No loss hook is needed; :meth:`DelaySNN.membrane` gives :math:`v_t`.

Neurons (the paper's SpikingJelly ``LIFNode(tau=1.05, decay_input=False, detach_reset=True,
v_threshold=1, ATan(alpha=5))``, hard reset to 0):
:math:`v_t = \beta v_{t-1} + I_t` with :math:`\beta = 1 - 1/1.05 \approx 0.048`: the membrane
forgets within one step, so the delays, not the neurons, carry the temporal memory.

Training protocol, through the hooks :func:`neurogate.train.fit` calls when a model has them:

* :meth:`DelaySNN.param_groups`: Adam groups: weights (BatchNorm and biases too) at ``lr`` with
  the run's schedule, the positions ``P`` at ``position_lr_scale * lr`` (the paper: 100x) on a
  cosine schedule, without weight decay;
* :meth:`DelaySNN.on_epoch_start`: the sigma schedule,
  :func:`~neurogate.layers.delay.schedule_sigma` with ``final_epoch = max(1, epochs // 4)``;
* :meth:`DelaySNN.after_optimizer_step`: :func:`~neurogate.layers.delay.clamp_positions`.

Evaluation (``model.eval()``) runs the rounded integer delays, the paper's inference.

Example:
    >>> net = ng.models.create("delay-snn", num_classes=20, in_shape=(140,), hidden=[256, 256],
    ...                        max_delay=25, dropout=0.4)
    >>> log_p = net(torch.rand(100, 8, 140))        # [8, 20] log of mean_t softmax(v_t)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from math import prod
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import LIF
from ..layers.delay import DelayedLinear, clamp_positions, delay_layers, schedule_sigma
from .base import SpikingModel, TimeDistributed
from .registry import register_model

__all__ = ["DelaySNN", "LeakyIntegrator"]

#: The paper's membrane decay: SpikingJelly's Euler step with tau = 1.05, beta = 1 - 1/tau.
PAPER_DECAY = 1.0 - 1.0 / 1.05
DELAY_MODES = ("learned", "fixed", "none")


@register_model("delay-snn", description="DCLS learnable delays: (DelayedLinear -> BN -> LIF -> "
                "Dropout) x 2 x 256 -> DelayedLinear -> LI")
class DelaySNN(SpikingModel):
    """Feedforward SNN with learnable synaptic delays (module docstring) on frames ``[T, B, *in_shape]``.

    Args:
        num_classes: outputs ``K``.
        in_shape: one frame's shape, flattened to ``prod(in_shape)`` inputs (audio: ``(C,)``,
            e.g. 140 for SHD binned by 5).
        hidden: sizes of the hidden layers (the paper: ``[256, 256]`` on SHD, ``[512] * 3`` on SSC).
        max_delay: taps ``K_d`` per synapse, delays ``0 .. K_d - 1`` steps (SHD: 25, SSC: 31).
        dropout: after every hidden LIF layer (SHD 0.4, SSC 0.25).
        delays: ``"learned"`` (the paper), ``"fixed"`` (random integer delays, frozen: the
            paper's baseline) or ``"none"`` (every delay 0: the same network without delays).
        decay: LIF membrane decay per step :math:`\\beta` (default the paper's ``1 - 1/1.05``).
        reset: LIF reset (``"zero"``: SpikingJelly's hard reset, the paper's).
        sigma_init: start of the sigma schedule (``None``: ``max_delay // 2``).
        position_lr_scale: learning rate of the positions relative to the weights (100).
        position_schedule: learning-rate schedule of the positions (``"cosine"``, the paper's).
        readout_delays: the readout synapses have delays too (the paper's).
    """

    def __init__(
        self,
        num_classes: int = 20,
        in_shape: tuple[int, ...] = (140,),
        *,
        hidden: Sequence[int] = (256, 256),
        max_delay: int = 25,
        dropout: float = 0.4,
        delays: str = "learned",
        decay: float = PAPER_DECAY,
        reset: str = "zero",
        sigma_init: float | None = None,
        position_lr_scale: float = 100.0,
        position_schedule: str = "cosine",
        readout_delays: bool = True,
    ) -> None:
        super().__init__(num_classes, in_shape)
        if delays not in DELAY_MODES:
            raise ConfigError(f"delays must be one of {DELAY_MODES}, got {delays!r}")
        if not hidden:
            raise ConfigError("hidden must list at least one layer size")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        # imported here: the train package imports the models
        from ..train.config import SCHEDULES

        if position_schedule not in SCHEDULES:
            raise ConfigError(f"position_schedule must be one of {SCHEDULES}, got {position_schedule!r}")
        if not position_lr_scale > 0:
            raise ConfigError(f"position_lr_scale must be > 0, got {position_lr_scale}")
        self.delay_mode = delays
        self.position_lr_scale, self.position_schedule = float(position_lr_scale), position_schedule
        taps = 1 if delays == "none" else int(max_delay)

        def delayed(n_in: int, n_out: int) -> DelayedLinear:
            return DelayedLinear(n_in, n_out, taps, sigma_init=sigma_init)

        neuron = {"decay": decay, "threshold": 1.0, "reset": reset, "surrogate": "atan", "alpha": 5.0,
                  "detach_reset": True, "decay_input": False}
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = prod(self.in_shape)
        for i, h in enumerate(hidden, start=1):
            layers[f"fc{i}"] = delayed(width, int(h))
            layers[f"bn{i}"] = TimeDistributed(nn.BatchNorm1d(int(h)))
            layers[f"lif{i}"] = LIF(**neuron)
            layers[f"dropout{i}"] = nn.Dropout(dropout)
            width = int(h)
        self.hidden = nn.Sequential(layers)
        self.fc_out = delayed(width, self.num_classes) if readout_delays else \
            TimeDistributed(nn.Linear(width, self.num_classes, bias=False))
        self.readout = LeakyIntegrator(decay)
        if delays != "learned":
            for layer in delay_layers(self):
                layer.round_delays()
                layer.P.requires_grad_(False)

    # ------------------------------------------------------------------------------- forward
    def membrane(self, x: torch.Tensor) -> torch.Tensor:
        """The readout membrane :math:`v_t` ``[T, B, K]`` for frames ``[T, B, C]``."""
        self.check_input(x)
        return self.readout(self.fc_out(self.hidden(x.flatten(2))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``log(mean_t softmax(v_t))`` ``[B, K]``: log-probabilities, usable as logits."""
        v = self.membrane(x)
        return torch.logsumexp(torch.log_softmax(v, dim=-1), dim=0) - math.log(v.shape[0])

    # ------------------------------------------------------------------------- trainer hooks
    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Adam parameter groups: weights at ``lr``; positions at ``position_lr_scale * lr``,
        schedule ``position_schedule``, no weight decay."""
        positions = [m.P for m in delay_layers(self) if m.P.requires_grad]
        ids = {id(p) for p in positions}
        weights = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups: list[dict[str, Any]] = [{"params": weights, "lr": lr}]
        if positions:
            groups.append({"params": positions, "lr": lr * self.position_lr_scale, "weight_decay": 0.0,
                           "schedule": self.position_schedule})
        return groups

    def on_epoch_start(self, epoch: int, epochs: int) -> list[float]:
        """The sigma schedule for ``epoch`` (0-based) of ``epochs``: ``final_epoch = epochs // 4``."""
        return schedule_sigma(self, epoch, final_epoch=max(1, epochs // 4))

    def after_optimizer_step(self) -> None:
        """Clamp the positions into their range (the paper's code does after every step)."""
        clamp_positions(self)

    def delays(self) -> dict[str, torch.Tensor]:
        """The integer delays ``[out, in]`` (steps) of every delay layer, by module name."""
        return {n: m.delays for n, m in self.named_modules() if isinstance(m, DelayedLinear)}


class LeakyIntegrator(nn.Module):
    r"""Non-spiking LI neurons: :math:`v_t = \beta v_{t-1} + I_t`, :math:`v_{-1} = 0` (``[T, B, K]``).

    A LIF neuron whose threshold is never reached (the paper's readout: threshold 1e9). Computed
    in one matrix product over time, :math:`v = L I` with :math:`L_{ts} = \beta^{t-s}` for
    :math:`s \le t`.
    """

    def __init__(self, decay: float) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ConfigError(f"decay must be in [0, 1], got {decay}")
        self.decay = float(decay)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        T = current.shape[0]
        t = torch.arange(T, device=current.device)
        lag = (t[:, None] - t[None, :]).to(current.dtype)
        kernel = torch.where(lag >= 0, self.decay ** lag.clamp(min=0), torch.zeros((), dtype=current.dtype,
                                                                                  device=current.device))
        return torch.einsum("ts,s...->t...", kernel, current)

    def extra_repr(self) -> str:
        return f"decay={self.decay:.4g}"
