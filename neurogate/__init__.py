"""neurogate: spiking neural networks on PyTorch, from event data to neuromorphic hardware."""

from . import data, errors, functional, surrogate
from . import layers
from .layers import LIF, LIFState

__version__ = "0.1.0"
__all__ = ["LIF", "LIFState", "data", "errors", "functional", "layers", "surrogate", "__version__"]
