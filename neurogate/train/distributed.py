"""Data order and multi-process training: the same command runs alone or under ``torchrun``.

Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE > 1`` in the environment) :func:`setup`
joins the process group (NCCL on CUDA, gloo on CPU) and the trainer wraps the model in
DistributedDataParallel. Only rank 0 writes files and shows progress.

Data order is deterministic: epoch ``e`` is the permutation drawn by a generator seeded with
``(seed, e)`` alone, cut into global batches of ``batch_size`` (the last incomplete one dropped);
rank ``r`` of ``N`` takes the ``r``-th contiguous ``batch_size / N`` slice of each global batch.
DDP averages the ranks' gradients, and the average of equal-sized shards' mean losses is the
global batch's mean loss, so ``N`` processes follow the trajectory of one process with the same
global batch (up to float summation order), and a run can resume at any batch position, even with
another number of processes. BatchNorm is the exception: each process normalises its own shard;
on CUDA the trainer converts BatchNorm to SyncBatchNorm (PyTorch's SyncBatchNorm does not run on
CPU).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ..errors import ConfigError

__all__ = [
    "DistContext",
    "EpochBatchSampler",
    "all_reduce_sum",
    "broadcast_object",
    "epoch_permutation",
    "set_threads",
    "setup",
    "teardown",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world`` processes, on ``device``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU raises."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device("cpu")


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group if the environment has one; else a one-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(device=dev)
    here = False
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        here = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, here)


def teardown(ctx: DistContext, *, clean: bool = True) -> None:
    """Leave the process group if :func:`setup` joined it.

    After a clean run every rank first waits for the others: a rank that destroyed its gloo group
    while another still held its connections sometimes aborted at exit ("terminate called without
    an active exception": 2 of 30 runs of the two-process test). After an error there is no
    barrier, which could wait on a rank that will never come.
    """
    if ctx.initialized_here and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: depends on ``(seed, epoch)`` only."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g)


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """This rank's slice of each global batch of one epoch, from batch ``start`` on.

    Example:
        >>> s = EpochBatchSampler(10, batch_size=4, seed=0, epoch=0, rank=1, world=2)
        >>> len(s), [len(b) for b in s]
        (2, [2, 2])
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                 world: int = 1, start: int = 0) -> None:
        if batch_size % world:
            raise ConfigError(f"batch_size {batch_size} must be a multiple of the number of "
                              f"processes ({world})")
        if n < batch_size:
            raise ConfigError(f"batch_size {batch_size} is larger than the training split "
                              f"({n} samples); lower --batch-size")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world, self.start = rank, world, start
        self.num_batches = n // batch_size

    def __len__(self) -> int:
        return self.num_batches - self.start

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_permutation(self.n, self.seed, self.epoch)
        local = self.batch_size // self.world
        for b in range(self.start, self.num_batches):
            lo = b * self.batch_size + self.rank * local
            yield order[lo:lo + local].tolist()


def all_reduce_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Sum ``values`` over all processes (a no-op alone). Float64 so counts stay exact."""
    if not ctx.enabled:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64,
                     device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(obj: object, ctx: DistContext) -> object:
    """Rank 0's ``obj`` on every process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def set_threads(n: int | None) -> int | None:
    """Set PyTorch's and numba's thread counts; returns the previous count (None: unchanged)."""
    if n is None:
        return None
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        import numba

        numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    except (ImportError, ValueError):
        pass
    return old
