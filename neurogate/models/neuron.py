"""Shared pieces of the LIF models: the neuron factory and the sequential model body."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..layers import LIF
from .base import SpikingModel

__all__ = ["NeuronModel", "lif"]


def lif(decay: float, threshold: float, surrogate: str, detach_reset: bool,
        learn_decay: bool) -> LIF:
    """A :class:`neurogate.LIF` layer with the models' shared neuron options."""
    return LIF(decay=decay, threshold=threshold, surrogate=surrogate,
               detach_reset=detach_reset, learn_decay=learn_decay)


class NeuronModel(SpikingModel):
    """A :class:`SpikingModel` whose layers run in registration order (a named Sequential).

    Subclasses call :meth:`build` with their layers; the names become the modules' names
    (``lif1`` etc., the spike-rate columns of ``metrics.csv``).
    """

    def build(self, layers: OrderedDict[str, nn.Module]) -> None:
        for name, module in layers.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` from frames ``[T, B, *in_shape]``."""
        self.check_input(x)
        for module in self.children():
            x = module(x)
        return x
