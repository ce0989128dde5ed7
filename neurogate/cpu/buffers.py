"""A small pool of reusable output buffers for the CPU kernels.

A fused LIF scan streams its tensors once, so its time is set by memory traffic; on a fresh
allocation of tens of MB, the page faults of first touch cost more than the kernel itself
(measured here: about 14 ms to fault in 52 MB, against 6 ms for the kernel). Training repeats
the same shapes every step, so the kernels take their large outputs from this pool: a buffer
returns to the pool when the last tensor viewing it dies (its refcount falls back to the pool's
own), and the next step reuses its warm pages. Like PyTorch's CUDA caching allocator, freed
memory is kept (up to ``NEUROGATE_CPU_POOL_MB``, default 1024; 0 turns the pool off).
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np
import torch

__all__ = ["empty", "clear"]

_MIN_BYTES = 1 << 20  # small tensors fault in quickly; let the normal allocator have them
_LIMIT = int(float(os.environ.get("NEUROGATE_CPU_POOL_MB", "1024")) * (1 << 20))
_pool: list[np.ndarray] = []
_lock = threading.Lock()
# References held while an array sits in _pool and is inspected: the list's, the loop
# variable's, and getrefcount's own argument.
_FREE_REFCOUNT = 3

_NP = {torch.float32: np.float32, torch.float64: np.float64}
_ITEMSIZE = {torch.float32: 4, torch.float64: 8}


def empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor, backed by a reused buffer when one of the right size is free.

    Called several times per layer and step: sizes come from a dtype table and ``math.prod``
    (2 us per call, against 10 us with ``np.prod`` and a probe tensor for the element size).
    """
    nbytes = math.prod(shape) * _ITEMSIZE.get(dtype, 0)
    if nbytes < _MIN_BYTES or _LIMIT <= 0:
        return torch.empty(shape, dtype=dtype)
    with _lock:
        for arr in _pool:
            if arr.nbytes == nbytes and sys.getrefcount(arr) == _FREE_REFCOUNT:
                return torch.from_numpy(arr.view(_NP[dtype]).reshape(shape))
        held = sum(a.nbytes for a in _pool)
        if held + nbytes > _LIMIT:
            _evict(held + nbytes - _LIMIT)
            if sum(a.nbytes for a in _pool) + nbytes > _LIMIT:
                return torch.empty(shape, dtype=dtype)  # pool full of live buffers: don't track
        arr = np.empty(nbytes, dtype=np.uint8)
        _pool.append(arr)
        return torch.from_numpy(arr.view(_NP[dtype]).reshape(shape))


def _evict(need: int) -> None:
    """Drop free buffers, oldest first, until ``need`` bytes are released (caller holds the lock)."""
    for arr in list(_pool):
        if need <= 0:
            break
        if sys.getrefcount(arr) == _FREE_REFCOUNT + 1:  # + the list() copy's reference
            _pool.remove(arr)
            need -= arr.nbytes


def clear() -> None:
    """Release every free buffer (buffers still in use are forgotten, and freed normally)."""
    with _lock:
        _pool.clear()
