"""``lif-convnet``: a convolutional LIF network for event frames ``[T, B, C, H, W]``.

Per block: Conv2d -> BatchNorm2d -> LIF -> AvgPool2d (a fixed-weight synaptic layer, so the model
exports to NIR and hardware; ``pool_mode="max"`` gives max-pooling, which NIR cannot express);
then Flatten -> Linear -> LIF -> Linear -> Readout. Convolutions, BatchNorm and pooling run on
all time steps at once (:class:`~neurogate.models.base.TimeDistributed`), so BatchNorm statistics
are over ``T * B`` frames.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from .base import Readout, TimeDistributed
from .neuron import NeuronModel, lif
from .registry import register_model

__all__ = ["LIFConvNet"]


@register_model("lif-convnet", channels=(16, 32), hidden=128,
                description="2 x (Conv-BN-LIF-AvgPool) with (16, 32) channels, 128 hidden LIF")
@register_model("lif-convnet-small", channels=(8, 16), hidden=64,
                description="lif-convnet with (8, 16) channels and 64 hidden neurons")
class LIFConvNet(NeuronModel):
    """Convolutional LIF network: ``len(channels)`` Conv-BN-LIF-Pool blocks, one hidden LIF layer.

    Args:
        num_classes: outputs ``K``.
        in_shape: one frame ``(C, H, W)``, e.g. ``(2, 34, 34)`` for two polarities.
        channels: output channels of each convolutional block.
        hidden: size of the fully connected LIF layer (0: read out from the last block).
        kernel_size: convolution kernel (padding ``kernel_size // 2`` keeps the size).
        pool: pooling window and stride after each block (1: none).
        pool_mode: ``"avg"`` (default: a fixed-weight synaptic layer, which NIR and neuromorphic
            targets can express; same 97 % on event-digits) or ``"max"`` (a logical OR of spikes;
            no NIR node).
        batch_norm: BatchNorm2d after each convolution (under DDP on CUDA the trainer converts it
            to SyncBatchNorm; on CPU each process normalises its own shard).
        dropout: dropout before the fully connected layers.
        decay, threshold, surrogate, detach_reset, learn_decay: the LIF neurons.
        readout: ``"mean"`` or ``"leaky"`` (:class:`~neurogate.models.base.Readout`).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: tuple[int, ...] = (2, 34, 34),
        *,
        channels: Sequence[int] = (16, 32),
        hidden: int = 128,
        kernel_size: int = 3,
        pool: int = 2,
        pool_mode: str = "avg",
        batch_norm: bool = True,
        dropout: float = 0.0,
        decay: float = 0.5,
        threshold: float = 1.0,
        surrogate: str = "atan",
        detach_reset: bool = True,
        learn_decay: bool = False,
        readout: str = "mean",
    ) -> None:
        super().__init__(num_classes, in_shape)
        if len(self.in_shape) != 3:
            raise ConfigError(f"lif-convnet needs frames (C, H, W); got in_shape={self.in_shape}")
        neuron = {"decay": decay, "threshold": threshold, "surrogate": surrogate,
                  "detach_reset": detach_reset, "learn_decay": learn_decay}
        if pool_mode not in ("max", "avg"):
            raise ConfigError(f"lif-convnet: pool_mode={pool_mode!r} is unknown; use 'max' or 'avg'")
        pooling = nn.MaxPool2d if pool_mode == "max" else nn.AvgPool2d
        c, h, w = self.in_shape
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, out in enumerate(channels, start=1):
            conv = [nn.Conv2d(c, int(out), kernel_size, padding=kernel_size // 2,
                              bias=not batch_norm)]
            if batch_norm:
                conv.append(nn.BatchNorm2d(int(out)))
            layers[f"conv{i}"] = TimeDistributed(nn.Sequential(*conv))
            layers[f"lif{i}"] = lif(**neuron)
            h, w = h + 2 * (kernel_size // 2) - kernel_size + 1, w + 2 * (kernel_size // 2) - kernel_size + 1
            if pool > 1:
                layers[f"pool{i}"] = TimeDistributed(pooling(pool))
                h, w = h // pool, w // pool
            if h < 1 or w < 1:
                raise ConfigError(f"lif-convnet: frames {self.in_shape} shrink to nothing after "
                                  f"{i} blocks; use fewer channels entries or pool=1")
            c = int(out)
        layers["flatten"] = TimeDistributed(nn.Flatten())
        width = c * h * w
        drop = [nn.Dropout(dropout)] if dropout else []
        if hidden:
            layers["fc1"] = TimeDistributed(nn.Sequential(*drop, nn.Linear(width, int(hidden))))
            layers[f"lif{len(channels) + 1}"] = lif(**neuron)
            width = int(hidden)
        layers["fc_out"] = TimeDistributed(nn.Sequential(*drop, nn.Linear(width, self.num_classes)))
        layers["readout"] = Readout(readout)
        self.build(layers)
