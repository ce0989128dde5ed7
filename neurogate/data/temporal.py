r"""``delay-task``: an offline temporal task that only synaptic delays can solve.

Each sample has ``channels`` input channels, each a population of ``copies`` input lines, and
every line fires **exactly one** spike. Class :math:`k` is a fixed pattern of time offsets
:math:`o_k[c]`: the lines of channel :math:`c` fire at :math:`t_0 + o_k[c]` (each plus its own
jitter, if any), where the onset :math:`t_0` is drawn uniformly from ``0 .. onsets - 1`` per
sample, so the absolute time carries no information, only the offsets between channels do. The
offsets of a pattern are a random permutation of ``0, gap, 2 gap, ..., (channels - 1) gap``,
and ``gap > 2 jitter``, so no two channels ever fire in the same step. Hence

* every class has the same spike count on every line and the same set of spike times up to
  the onset: a time-averaged readout of a memoryless network (LIF with :math:`\tau \approx 1`
  step, no delays) sees the same per-step inputs for every class and is at chance;
* a neuron whose synapses from channel :math:`c` have delay :math:`d_c = S - o_k[c]`
  (:math:`S = (\mathrm{channels} - 1)\,\mathrm{gap}`) receives every channel in one step,
  :math:`t_0 + S`, for class :math:`k` only: a coincidence detector that learned delays
  (``max_delay > S``) can build. The copies give each neuron a larger fan-in, as in real data,
  so that rounding the positions to integer delays averages out.

``noise`` adds that many spikes per sample at random lines and steps (the same count for every
class). Leave ``time_steps - onsets - span`` steps after the pattern for the network's own
delays: a spike delayed past the last step is lost.

Two ways to get it:

* :class:`DelayTask`: a ready torch ``Dataset`` of ``(frames [T, lines] float32, label)`` (no
  files), with ``num_classes``, ``frame_shape``, ``classes`` and ``patterns``; pass
  ``(train, test)`` to :func:`neurogate.train.fit`.
* the registered dataset ``"delay-task"`` (registered when this module is imported): events
  ``(t, x, p)`` whose time unit is one step. Load with ``time_window=1, t_start=0``
  (``load("delay-task", time_steps=56, time_window=1, t_start=0)``, or ``data_options:
  {time_window: 1, t_start: 0}`` in a training config) so that step :math:`t` lands in bin
  :math:`t`; the options ``samples`` and those of :func:`make_delay_task` go to the generator.

Deterministic: the class patterns depend on ``seed`` only; the train and test splits draw their
onsets (and jitter, noise) from ``seed`` and the split name, so they differ but never change.

Example:
    >>> train, test = DelayTask("train"), DelayTask("test")
    >>> x, y = train[0]                    # x: [56, 32]: 8 channels x 4 copies, one spike each
    >>> x.sum(0)                           # tensor([1., 1., ..., 1.])
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .events import AUDIO_DTYPE
from .registry import register_dataset

__all__ = ["DelayTask", "delay_task_patterns", "make_delay_task"]

DEFAULTS: dict[str, Any] = {
    "channels": 8, "copies": 4, "num_classes": 4, "time_steps": 56, "onsets": 8, "gap": 2, "jitter": 0,
    "noise": 8, "seed": 0,
}
SPLIT_SAMPLES = {"train": 512, "test": 256}


def delay_task_patterns(channels: int = 8, num_classes: int = 4, gap: int = 2, seed: int = 0) -> np.ndarray:
    """The class patterns ``[num_classes, channels]`` of offsets (steps): distinct permutations
    of ``0, gap, ..., (channels - 1) gap``."""
    if channels < 2 or num_classes < 2 or gap < 1:
        raise ConfigError(f"delay-task needs channels >= 2, num_classes >= 2, gap >= 1; got "
                          f"{channels}, {num_classes}, {gap}")
    rng = np.random.default_rng([seed, 0x7E1A])
    perms: list[tuple[int, ...]] = []
    while len(perms) < num_classes:
        p = tuple(int(v) for v in rng.permutation(channels))
        if p not in perms:
            perms.append(p)
    return np.asarray(perms, dtype=np.int64) * gap


def make_delay_task(
    samples: int,
    *,
    split: str = "train",
    channels: int = 8,
    copies: int = 4,
    num_classes: int = 4,
    time_steps: int = 56,
    onsets: int = 8,
    gap: int = 2,
    jitter: int = 0,
    noise: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spike times of ``samples`` samples: ``(times [N, S], units [N, S], labels [N])`` (int64),
    ``S = channels * copies + noise`` spikes per sample, units the input lines ``0 .. channels *
    copies - 1`` (line ``c * copies + j`` is copy ``j`` of channel ``c``). Balanced classes."""
    if copies < 1 or jitter < 0 or noise < 0 or gap <= 2 * jitter:
        raise ConfigError(f"delay-task needs copies >= 1, jitter >= 0, noise >= 0 and gap > 2 * jitter "
                          f"(so that channels never share a step); got copies={copies}, jitter={jitter}, "
                          f"noise={noise}, gap={gap}")
    patterns = delay_task_patterns(channels, num_classes, gap, seed)
    span = int(patterns.max()) + 2 * jitter
    if onsets < 1 or time_steps < onsets + span:
        raise ConfigError(f"time_steps={time_steps} must be at least onsets ({onsets}) + the pattern "
                          f"span {span} ((channels - 1) * gap + 2 * jitter)")
    rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
    labels = np.arange(samples, dtype=np.int64) % num_classes
    rng.shuffle(labels)
    onset = rng.integers(0, onsets, size=samples) + jitter
    times = np.repeat(onset[:, None] + patterns[labels], copies, axis=1)
    if jitter:
        times = times + rng.integers(-jitter, jitter + 1, size=times.shape)
    units = np.broadcast_to(np.arange(channels * copies), times.shape)
    if noise:
        times = np.concatenate([times, rng.integers(0, time_steps, size=(samples, noise))], 1)
        units = np.concatenate([units, rng.integers(0, channels * copies, size=(samples, noise))], 1)
    return times.astype(np.int64), np.ascontiguousarray(units, dtype=np.int64), labels


class DelayTask(Dataset):
    """One split of the delay task as frames: ``(x [time_steps, channels] float32, label)``.

    Options as :func:`make_delay_task`; ``samples`` defaults to 512 (train) / 256 (test).
    """

    name = "delay-task"

    def __init__(self, split: str = "train", samples: int | None = None, **options: Any) -> None:
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"DelayTask: unknown option(s) {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
        self.options = {**DEFAULTS, **options}
        self.split = split
        n = SPLIT_SAMPLES.get(split, 256) if samples is None else int(samples)
        times, units, labels = make_delay_task(n, split=split, **self.options)
        T, C = self.options["time_steps"], self.options["channels"] * self.options["copies"]
        frames = np.zeros((n, T, C), dtype=np.float32)
        np.add.at(frames, (np.arange(n)[:, None], times, units), 1.0)
        self.frames, self.targets = torch.from_numpy(frames), torch.from_numpy(labels)
        self.classes = tuple(f"pattern-{k}" for k in range(self.options["num_classes"]))
        self.frame_shape = (C,)
        self.patterns = delay_task_patterns(self.options["channels"], self.options["num_classes"], self.options["gap"],
                                            self.options["seed"])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.frames[index], int(self.targets[index])


class _DelayTaskEvents:
    """The registry's event source: ``source[i] = (events (t, x, p), label)``, t in steps."""

    def __init__(self, split: str, samples: int | None = None, **options: Any) -> None:
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"delay-task: unknown option(s) {sorted(unknown)}; valid: "
                              f"samples, {', '.join(sorted(DEFAULTS))}")
        opts = {**DEFAULTS, **options}
        n = SPLIT_SAMPLES[split] if samples is None else int(samples)
        self._times, self._units, labels = make_delay_task(n, split=split, **opts)
        self.targets = [int(v) for v in labels]
        self.classes = [f"pattern-{k}" for k in range(opts["num_classes"])]
        self.sensor_size = (opts["channels"] * opts["copies"], 1, 1)
        self.fingerprint = "delay-task:" + ",".join(f"{k}={opts[k]}" for k in sorted(opts)) + f",n={n}"

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        order = np.argsort(self._times[index], kind="stable")
        ev = np.empty(order.size, dtype=AUDIO_DTYPE)
        ev["t"], ev["x"], ev["p"] = self._times[index][order], self._units[index][order], True
        return ev, self.targets[index]


def _open(root: Path, split: str, download: bool, **options: Any) -> _DelayTaskEvents:
    return _DelayTaskEvents(split, **options)


register_dataset(
    "delay-task",
    _open,
    sensor_size=(DEFAULTS["channels"] * DEFAULTS["copies"], 1, 1),
    default_time_steps=DEFAULTS["time_steps"],
    description="delay-task: class = time offsets between one-spike channels, solvable only with "
    "synaptic delays (generated in memory; load with time_window=1, t_start=0)",
    layout="nothing: generated in memory",
    state=lambda root: ("generated", ("train", "test")),
)
