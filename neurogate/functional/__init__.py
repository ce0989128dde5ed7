"""Functional primitives: each file holds the reference implementation and the engine dispatch."""

from .lif import RESETS, LIFParams, lif_scan, lif_scan_reference, lif_step

__all__ = ["lif_scan", "lif_step", "lif_scan_reference", "LIFParams", "RESETS"]
