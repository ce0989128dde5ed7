"""Fused GPU kernels (Triton); they also run on CPU tensors under ``TRITON_INTERPRET=1``."""
