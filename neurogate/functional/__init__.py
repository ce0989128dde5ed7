"""Functional primitives: each file holds the reference implementation and the engine dispatch."""

from .delay import delayed_linear, delayed_linear_integer
from .lif import RESETS, LIFParams, lif_scan, lif_scan_reference, lif_step

__all__ = ["delayed_linear", "delayed_linear_integer", "lif_scan", "lif_step", "lif_scan_reference", "LIFParams", "RESETS"]
