"""neurogate: spiking neural networks on PyTorch, from event data to neuromorphic hardware.

``import neurogate as ng`` gives ``ng.LIF``, ``ng.functional.lif_scan``, ``ng.surrogate``,
``ng.errors`` at once; the heavier subpackages (``ng.data``, ``ng.models``, ``ng.train``,
``ng.viz``, ``ng.hw``) load on first use, so kernels and layers import without the data stack.
"""

import importlib

from . import errors, functional, layers, surrogate
from .layers import LIF, DelayedLinear, LIFState

__version__ = "0.1.0"
_LAZY = ("data", "models", "train", "viz", "hw")
__all__ = ["LIF", "LIFState", "DelayedLinear", "errors", "functional", "layers", "surrogate", *_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'neurogate' has no attribute {name!r}")
