"""Spiking layers (``nn.Module``), time-major ``[T, B, ...]``."""

from .delay import DelayedLinear, clamp_positions, delay_layers, schedule_sigma
from .lif import LIF, LIFState

__all__ = ["LIF", "LIFState", "DelayedLinear", "clamp_positions", "delay_layers", "schedule_sigma"]
