"""Events to frames: bin an event stream into a float32 tensor ``[T, C, H, W]`` or ``[T, C]``.

Vision events become ``[T, P, H, W]`` (one channel per polarity; a one-polarity sensor counts
both polarities in its single channel). Audio events (sensor ``(W, 1, P)``) become ``[T, C]``,
channel ``x`` landing in output channel ``x * C // W`` (``channels=C`` pools neighbouring
channels, e.g. SHD's 700 -> 140 sums groups of 5).

Time bins, with ``t0 = t_start`` if given, else the first event's timestamp:

* ``time_steps=T`` alone: ``T`` equal bins spanning ``[t0, t_last]`` inclusive; event ``t``
  lands in bin ``floor((t - t0) * T / (t_last - t0 + 1))``, so every event is counted once.
  (tonic's ``ToFrame(n_time_bins=T)`` uses a window ``(t_last - t0) // T`` and drops the
  events after ``T`` whole windows; this binning does not.)
* ``time_window=w`` alone: bins ``[t0 + k w, t0 + (k + 1) w)``, as many as cover the events.
* both: ``T`` bins of width ``w`` from ``t0``. Events after ``t0 + T w`` raise, unless
  ``truncate=True`` says to drop them.

A bin holds the number of events (``binary=True`` clips counts to 1: spike / no spike).

Example:
    >>> from neurogate.data import make_events, to_frames
    >>> ev = make_events(t=[0, 1, 2, 3], x=[0, 1, 0, 1], y=[0, 0, 1, 1], p=[1, 1, 0, 1])
    >>> to_frames(ev, sensor_size=(2, 2, 2), time_steps=2).shape
    torch.Size([2, 2, 2, 2])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import ConfigError, DatasetError, ShapeError
from .events import is_audio, validate_events

__all__ = ["FrameSpec", "to_frames", "bin_events", "frame_shape", "collate_time_major"]


@dataclass(frozen=True)
class FrameSpec:
    """How events become frames; its :meth:`key` names the frame cache.

    Attributes:
        time_steps: number of time bins ``T`` (see the module docstring).
        time_window: width of one bin, in the events' time unit (microseconds).
        t_start: start of the first bin; ``None`` means the sample's first event.
        truncate: drop the events after ``T`` windows instead of raising.
        channels: audio only: pool the sensor's ``W`` channels down to this many.
        binary: clip counts to 0/1.
    """

    time_steps: int | None = None
    time_window: float | None = None
    t_start: int | None = None
    truncate: bool = False
    channels: int | None = None
    binary: bool = False

    def __post_init__(self) -> None:
        if self.time_steps is None and self.time_window is None:
            raise ConfigError("give time_steps (number of bins) and/or time_window (bin width)")
        if self.time_steps is not None and int(self.time_steps) < 1:
            raise ConfigError(f"time_steps must be >= 1, got {self.time_steps}")
        if self.time_window is not None and not self.time_window > 0:
            raise ConfigError(f"time_window must be > 0, got {self.time_window}")
        if self.channels is not None and int(self.channels) < 1:
            raise ConfigError(f"channels must be >= 1, got {self.channels}")

    def key(self) -> str:
        """A short stable hash of the parameters (the cache directory name)."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def frame_shape(sensor_size: Sequence[int], channels: int | None = None) -> tuple[int, ...]:
    """Shape of one frame: ``(P, H, W)`` for vision, ``(C,)`` for audio.

    Example:
        >>> frame_shape((34, 34, 2)), frame_shape((700, 1, 1), channels=140)
        ((2, 34, 34), (140,))
    """
    w, h, p = (int(s) for s in sensor_size)
    if is_audio(sensor_size):
        if channels is not None and channels > w:
            raise ConfigError(f"channels={channels} exceeds the sensor's {w} channels")
        return (int(channels) if channels is not None else w,)
    if channels is not None:
        raise ConfigError("channels pools audio channels; a vision sensor has H > 1")
    return (p, h, w)


def to_frames(
    events: np.ndarray,
    sensor_size: Sequence[int],
    *,
    time_steps: int | None = None,
    time_window: float | None = None,
    t_start: int | None = None,
    truncate: bool = False,
    channels: int | None = None,
    binary: bool = False,
    validate: bool = True,
    source: str = "events",
) -> torch.Tensor:
    """Bin events into a float32 tensor ``[T, C, H, W]`` (vision) or ``[T, C]`` (audio).

    ``validate`` first runs :func:`validate_events` (sorted, in-range events), so a bad
    coordinate raises instead of landing in a neighbouring pixel.

    Example:
        >>> ev = make_events(t=[0, 10, 20], x=[0, 5, 6])            # audio: no y
        >>> to_frames(ev, (8, 1, 1), time_steps=3, channels=4)[:, 2:]
        tensor([[0., 0.],
                [1., 0.],
                [0., 1.]])
    """
    spec = FrameSpec(time_steps, time_window, t_start, truncate, channels, binary)
    if validate:
        validate_events(events, sensor_size, source=source)
    return torch.from_numpy(bin_events(events, sensor_size, spec, source).astype(np.float32))


def bin_events(
    events: np.ndarray, sensor_size: Sequence[int], spec: FrameSpec, source: str = "events"
) -> np.ndarray:
    """The binning behind :func:`to_frames`: integer counts (uint8 if binary, else int32)."""
    shape = frame_shape(sensor_size, spec.channels)
    n = events.shape[0]
    if n == 0:
        steps = spec.time_steps if spec.time_steps is not None else 0
        return np.zeros((steps, *shape), dtype=np.uint8 if spec.binary else np.int32)
    bins, steps = _time_bins(events["t"], spec, source)
    keep = None
    if spec.truncate:
        keep = (bins >= 0) & (bins < steps)
    else:
        _refuse_outside(bins, steps, events["t"], spec, source)
    w = int(sensor_size[0])
    x = events["x"].astype(np.int64)
    if len(shape) == 1:  # audio: channel = x * C // W
        flat = bins * shape[0] + (x * shape[0]) // w
    else:
        p_count, h, _ = shape
        ch = events["p"].astype(np.int64) if p_count > 1 else np.zeros(n, np.int64)
        flat = ((bins * p_count + ch) * h + events["y"].astype(np.int64)) * w + x
    if keep is not None:
        flat = flat[keep]
    size = steps * int(np.prod(shape))
    counts = np.bincount(flat, minlength=size)
    if counts.size > size:  # only possible with invalid coordinates
        raise DatasetError(f"{source}: event coordinates exceed sensor {tuple(sensor_size)}")
    counts = counts.reshape(steps, *shape)
    if spec.binary:
        return np.minimum(counts, 1).astype(np.uint8)
    return counts.astype(np.int32)


def collate_time_major(
    batch: Sequence[tuple[torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(frames [T, ...], label)`` items to frames ``[T, B, ...]`` and labels ``[B]``.

    Example:
        >>> x, y = collate_time_major([(torch.zeros(5, 2, 3, 3), 1), (torch.ones(5, 2, 3, 3), 0)])
        >>> x.shape, y
        (torch.Size([5, 2, 2, 3, 3]), tensor([1, 0]))
    """
    if len(batch) == 0:
        raise ShapeError("collate_time_major: empty batch")
    shapes = {tuple(item[0].shape) for item in batch}
    if len(shapes) > 1:
        raise ShapeError(
            f"collate_time_major: items have different frame shapes {sorted(shapes)}; "
            "pass time_steps so every sample has the same number of bins"
        )
    frames = torch.stack([torch.as_tensor(item[0]) for item in batch], dim=1)
    labels = torch.as_tensor([int(item[1]) for item in batch], dtype=torch.long)
    return frames, labels


def _time_bins(t: np.ndarray, spec: FrameSpec, source: str) -> tuple[np.ndarray, int]:
    """Bin index of every event and the number of bins."""
    t0 = t[0] if spec.t_start is None else spec.t_start
    integer = t.dtype.kind in "iu" and float(t0) == int(t0)
    if spec.time_window is None:
        steps = int(spec.time_steps)  # type: ignore[arg-type]
        if integer:
            span = max(int(t[-1]) - int(t0) + 1, 1)
            rel = t.astype(np.int64) - int(t0)
            if span > 2**62 // steps:
                raise DatasetError(f"{source}: time span {span} too long to bin exactly")
            return (rel * steps) // span, steps
        span = max(float(t[-1]) - float(t0), np.finfo(np.float64).tiny)
        rel = t.astype(np.float64) - float(t0)
        return np.minimum(np.floor(rel * steps / span), steps - 1).astype(np.int64), steps
    w = spec.time_window
    if integer and float(w) == int(w):
        bins = (t.astype(np.int64) - int(t0)) // int(w)
    else:
        bins = np.floor((t.astype(np.float64) - float(t0)) / float(w)).astype(np.int64)
    steps = spec.time_steps if spec.time_steps is not None else max(int(bins.max()) + 1, 1)
    return bins, int(steps)


def _refuse_outside(
    bins: np.ndarray, steps: int, t: np.ndarray, spec: FrameSpec, source: str
) -> None:
    bad = np.flatnonzero((bins < 0) | (bins >= steps))
    if bad.size:
        i = int(bad[0])
        raise DatasetError(
            f"{source}: {bad.size} of {t.size} events fall outside the {steps} time bins "
            f"(time_window={spec.time_window}, t_start={spec.t_start}); first at index {i}: "
            f"t={t[i]}. Pass truncate=True to drop them, or raise time_steps."
        )
