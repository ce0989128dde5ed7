"""Fused CPU kernels (numba)."""
