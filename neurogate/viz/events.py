"""Event frames: one panel per time bin, ON events red and OFF events blue."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError, ValueRangeError
from .figure import PathLike, as_numpy, given_panels, pyplot, save_figure

__all__ = ["plot_event_frames"]


def plot_event_frames(
    frames: Any,
    sensor_size: Sequence[int] | None = None,
    *,
    time_steps: int = 8,
    path: PathLike | None = None,
    ax: Any = None,
    max_panels: int = 16,
    ncols: int | None = None,
    mode: str = "polarity",
    title: str | None = None,
) -> Any:
    """Draw event frames as a grid, one panel per time bin: ON events red, OFF events blue.

    Args:
        frames: ``[T, P, H, W]`` event counts (``P`` = 2 polarities, channel 1 ON and channel
            0 OFF as :func:`neurogate.data.to_frames` makes them, or ``P`` = 1), or a structured
            event array with fields ``t, x, y, p`` (then ``sensor_size`` is required and the
            events are binned into ``time_steps`` bins by :func:`neurogate.data.to_frames`).
        sensor_size: ``(W, H, P)`` of the sensor, for an event array.
        time_steps: number of bins for an event array.
        path: save the figure here.
        ax: a sequence (or array) of at least as many Axes as panels; a new figure otherwise.
        max_panels: draw the first ``max_panels`` bins at most.
        ncols: panels per row (default: up to 8).
        mode: ``"polarity"`` colours ON red and OFF blue on white (both at once: dark);
            ``"diverging"`` shows ON - OFF with the ``RdBu_r`` colormap and a colour bar.
        title: figure title.

    Returns:
        The Figure. All panels share one colour scale (the largest count in any bin).
    """
    edges_ms = None
    if _is_event_array(frames):
        if sensor_size is None:
            raise ConfigError(
                "plot_event_frames: an event array needs sensor_size=(W, H, P), e.g. (34, 34, 2)"
            )
        from ..data import to_frames

        events = frames
        frames = to_frames(events, sensor_size, time_steps=time_steps, source="plot_event_frames")
        if events.shape[0]:
            t0, t1 = int(events["t"][0]), int(events["t"][-1])
            edges_ms = (t0 + (t1 - t0 + 1) * np.arange(time_steps + 1) / time_steps) / 1000.0
    f = as_numpy(frames, "plot_event_frames", "frames").astype(np.float64, copy=False)
    if f.ndim == 3:
        f = f[:, None]
    if f.ndim != 4 or f.shape[1] not in (1, 2):
        hint = (
            " A batch [T, B, P, H, W]? pass one sample: frames[:, 0]." if f.ndim == 5 else ""
        )
        raise ShapeError(
            f"plot_event_frames: expected frames [T, P, H, W] with P = 1 or 2 polarities "
            f"(or [T, H, W]), got shape {tuple(f.shape)}.{hint}"
        )
    if not np.isfinite(f).all() or (f < 0).any():
        raise ValueRangeError("plot_event_frames: frames must be finite event counts >= 0")
    if mode not in ("polarity", "diverging"):
        raise ConfigError(f"plot_event_frames: mode is 'polarity' or 'diverging', not {mode!r}")
    if max_panels < 1:
        raise ConfigError(f"plot_event_frames: max_panels must be >= 1, got {max_panels}")
    steps = f.shape[0]
    panels = min(steps, int(max_panels))
    cols = int(ncols) if ncols else min(panels, 8)
    rows = max(math.ceil(panels / max(cols, 1)), 1)
    if ax is None:
        plt = pyplot()
        h, w = f.shape[2:]
        side = 1.7
        fig, grid = plt.subplots(
            rows, cols, figsize=(side * cols * max(w / h, 0.5) + 0.6, side * rows + 0.7),
            squeeze=False, layout="constrained",
        )
        axes = list(grid.ravel())
    else:
        fig, axes = given_panels(ax, panels, "plot_event_frames")
    scale = max(float(f[:panels].max()) if f.size else 0.0, 1.0)
    image = None
    for k, a in enumerate(axes):
        a.set_xticks([])
        a.set_yticks([])
        if k >= panels:
            a.set_axis_off()
            continue
        image = _draw_frame(a, f[k], scale, mode)
        if edges_ms is not None:
            a.set_title(f"{edges_ms[k] - edges_ms[0]:.0f}-{edges_ms[k + 1] - edges_ms[0]:.0f} ms",
                        fontsize="small")
        else:
            a.set_title(f"t = {k}", fontsize="small")
    if mode == "diverging" and image is not None:
        bar = fig.colorbar(image, ax=axes[:panels], shrink=0.8)
        bar.set_label("ON - OFF events")
    head = title or ("Event frames" + (" (ON red, OFF blue)" if mode == "polarity" else ""))
    if panels < steps:
        head += f", first {panels} of {steps} bins"
    fig.suptitle(head)
    save_figure(fig, path)
    return fig


def _is_event_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.names is not None


def _draw_frame(a: Any, frame: np.ndarray, scale: float, mode: str) -> Any:
    """One panel. ``frame`` is ``[P, H, W]``; channel 1 is ON, channel 0 OFF (to_frames' order)."""
    # Square-root scaling keeps single events visible next to busy pixels.
    if frame.shape[0] == 1:
        return a.imshow(np.sqrt(frame[0] / scale), cmap="gray_r", vmin=0.0, vmax=1.0,
                        interpolation="nearest")
    off, on = np.sqrt(frame[0] / scale), np.sqrt(frame[1] / scale)
    if mode == "diverging":
        return a.imshow(frame[1] - frame[0], cmap="RdBu_r", vmin=-scale, vmax=scale,
                        interpolation="nearest")
    rgb = np.stack([1.0 - off, (1.0 - on) * (1.0 - off), 1.0 - on], axis=-1)
    return a.imshow(np.clip(rgb, 0.0, 1.0), interpolation="nearest")
