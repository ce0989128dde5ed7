"""``lif-mlp``: fully connected LIF layers over flattened frames, with a time-averaged readout.

``[T, B, *in_shape]`` -> Flatten -> (Linear -> LIF) x len(hidden) -> Linear -> Readout -> ``[B, K]``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from math import prod

from torch import nn

from .base import Readout, TimeDistributed
from .neuron import NeuronModel, lif
from .registry import register_model

__all__ = ["LIFMLP"]


@register_model("lif-mlp", hidden=(256,), description="Flatten -> 256 LIF -> readout")
@register_model("lif-mlp-2", hidden=(512, 256), description="two hidden LIF layers (512, 256)")
class LIFMLP(NeuronModel):
    """Multilayer perceptron of LIF neurons (``hidden`` sizes) on flattened input frames.

    Args:
        num_classes: outputs ``K``.
        in_shape: shape of one frame (flattened to ``prod(in_shape)`` inputs).
        hidden: sizes of the hidden LIF layers.
        dropout: dropout before every linear layer after the first (same mask at every step
            would need a custom layer; this is per-step dropout).
        decay, threshold, surrogate, detach_reset, learn_decay: the LIF neurons
            (:class:`neurogate.LIF`).
        readout: ``"mean"`` or ``"leaky"`` (:class:`~neurogate.models.base.Readout`).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: tuple[int, ...] = (2, 34, 34),
        *,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.0,
        decay: float = 0.5,
        threshold: float = 1.0,
        surrogate: str = "atan",
        detach_reset: bool = True,
        learn_decay: bool = False,
        readout: str = "mean",
    ) -> None:
        super().__init__(num_classes, in_shape)
        neuron = {"decay": decay, "threshold": threshold, "surrogate": surrogate,
                  "detach_reset": detach_reset, "learn_decay": learn_decay}
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=TimeDistributed(nn.Flatten()))
        width = prod(self.in_shape)
        for i, h in enumerate(hidden, start=1):
            fc: nn.Module = nn.Linear(width, int(h))
            if dropout and i > 1:
                fc = nn.Sequential(nn.Dropout(dropout), fc)
            layers[f"fc{i}"] = TimeDistributed(fc)
            layers[f"lif{i}"] = lif(**neuron)
            width = int(h)
        layers["fc_out"] = TimeDistributed(nn.Linear(width, self.num_classes))
        layers["readout"] = Readout(readout)
        self.build(layers)
