"""Complete spiking networks behind a registry: ``create("lif-convnet", num_classes=10)``.

Every model maps time-major frames ``[T, B, *in_shape]`` to logits ``[B, num_classes]``, exposes
its LIF layers' spike rates and its synaptic operations per sample through
:meth:`~neurogate.models.SpikingModel.monitor`, and carries its ``config`` (name and options).

Example:
    >>> import torch, neurogate as ng
    >>> ng.models.list()
    ['delay-snn', 'lif-convnet', 'lif-convnet-small', 'lif-mlp', 'lif-mlp-2']
    >>> net = ng.models.create("lif-convnet", num_classes=10, in_shape=(2, 34, 34))
    >>> with net.monitor() as mon:
    ...     logits = net(torch.rand(8, 4, 2, 34, 34))          # [4, 10]
    >>> mon.rates(), mon.synops_per_sample()
"""

from . import convnet, delay_snn, mlp  # noqa: F401  (register the models)
from .base import Readout, SpikeMonitor, SpikingModel, TimeDistributed
from .convnet import LIFConvNet
from .delay_snn import DelaySNN
from .mlp import LIFMLP
from .registry import ModelSpec, create, get_spec, list_models, register_model

list = list_models

__all__ = [
    "LIFMLP",
    "DelaySNN",
    "LIFConvNet",
    "ModelSpec",
    "Readout",
    "SpikeMonitor",
    "SpikingModel",
    "TimeDistributed",
    "create",
    "get_spec",
    "list",
    "list_models",
    "register_model",
]
