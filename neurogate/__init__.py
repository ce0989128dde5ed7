"""neurogate: spiking neural networks on PyTorch, from event data to neuromorphic hardware."""

from . import errors, functional, surrogate
from .layers import LIF, LIFState

__version__ = "0.1.0"
__all__ = ["LIF", "LIFState", "errors", "functional", "surrogate", "__version__"]
