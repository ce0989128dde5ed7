"""Evaluation of a spiking classifier: accuracy, loss, spike rates per LIF layer, SynOps/sample.

Spike rates and SynOps come from :class:`neurogate.models.SpikeMonitor` (SynOps formula in
:mod:`neurogate.models.base`). Under DDP each process evaluates a contiguous shard of the test
split and the sums are added over processes, so every rank gets the same numbers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import collate_time_major
from ..models.base import SpikeMonitor
from .distributed import DistContext, all_reduce_sum

__all__ = ["evaluate", "sample_spikes"]


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 256,
             ctx: DistContext | None = None) -> dict[str, Any]:
    """``{"loss", "acc", "rates": {layer: rate}, "synops_per_sample", "samples"}`` on ``dataset``.

    ``model`` is the bare model (not the DDP wrapper); it is put in eval mode and restored.
    """
    ctx = ctx or DistContext()
    n = len(dataset)  # type: ignore[arg-type]
    shard = Subset(dataset, range(ctx.rank * n // ctx.world, (ctx.rank + 1) * n // ctx.world))
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    with SpikeMonitor(model) as mon:
        if len(shard):
            for x, y in DataLoader(shard, batch_size=batch_size, collate_fn=collate_time_major):
                x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device)
                logits = model(x)
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    names = list(mon.spike_sum)
    local = [loss_sum, correct, len(shard), mon.synops, mon.samples]
    local += [mon.spike_sum[k] for k in names] + [float(mon.spike_count[k]) for k in names]
    total = all_reduce_sum(local, ctx)
    loss_sum, correct, count, synops, samples = total[:5]
    sums, counts = total[5:5 + len(names)], total[5 + len(names):]
    return {
        "loss": loss_sum / max(count, 1),
        "acc": correct / max(count, 1),
        "rates": {k: s / max(c, 1) for k, s, c in zip(names, sums, counts)},
        "synops_per_sample": synops / max(samples, 1),
        "samples": int(count),
    }


@torch.no_grad()
def sample_spikes(model: nn.Module, frames: torch.Tensor, device: torch.device | str = "cpu"
                  ) -> tuple[str, torch.Tensor] | None:
    """``(layer, spikes [T, N])`` of the last LIF layer for one sample ``frames [T, ...]``."""
    was_training = model.training
    model.eval()
    with SpikeMonitor(model, keep_spikes=True) as mon:
        model(frames.unsqueeze(1).to(device))
    model.train(was_training)
    if not mon.spikes:
        return None
    name = list(mon.spikes)[-1]
    return name, mon.spikes[name][:, 0].flatten(1).cpu()
