"""Spiking layers (``nn.Module``), time-major ``[T, B, ...]``."""

from .lif import LIF, LIFState

__all__ = ["LIF", "LIFState"]
