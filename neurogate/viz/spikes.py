"""Spike rasters and membrane-potential traces of one sample, ``[T, N]`` time-major."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError, ValueRangeError
from .figure import (
    PathLike,
    as_numpy,
    axes_size_pt,
    cycle_colors,
    figure_axes,
    flatten_neurons,
    save_figure,
)

__all__ = ["plot_membrane", "plot_raster"]


def plot_raster(
    spikes: Any,
    path: PathLike | None = None,
    ax: Any = None,
    *,
    max_neurons: int | None = 256,
    title: str | None = "Spike raster",
    color: str = "black",
) -> Any:
    """Draw a spike raster: one mark at ``(t, n)`` for every spike of neuron ``n`` at step ``t``.

    Args:
        spikes: ``[T, N]`` (or ``[T, ...]``, flattened to ``[T, N]`` row-major) of 0/1 or bool.
        path: save the figure here (PNG unless the suffix says otherwise).
        ax: draw into this Axes; a new figure otherwise.
        max_neurons: show neurons ``0 .. max_neurons - 1`` only (``None``: all). To show the
            busiest neurons of a large layer, select them first:
            ``s[:, s.sum(0).argsort(descending=True)[:100]]``.
        title: Axes title (``None`` for none).
        color: marker colour.

    Returns:
        The Axes. Its first collection holds the marks; ``get_offsets()`` is ``(t, n)`` in the
        order of ``torch.nonzero(spikes)``.

    Raises:
        ShapeError: ``spikes`` has fewer than two dimensions.
        ValueRangeError: a value other than 0 or 1 (NaN included).
    """
    s = as_numpy(spikes, "plot_raster", "spikes")
    s = flatten_neurons(s, "plot_raster", "spikes", "[T, N] spikes (time-major, one sample)")
    if s.dtype != np.bool_:
        bad = ~((s == 0) | (s == 1))
        if bad.any():
            t, n = np.argwhere(bad)[0]
            raise ValueRangeError(
                f"plot_raster: spikes must be 0/1 (or bool); found {s[t, n]!r} at (t={t}, "
                f"neuron={n}) among {int(bad.sum())} non-binary values. For membrane "
                "potentials use plot_membrane; for spike counts pass (counts > 0)."
            )
    if max_neurons is not None and max_neurons < 1:
        raise ConfigError(f"plot_raster: max_neurons must be >= 1 or None, got {max_neurons}")
    steps, total = s.shape
    shown = total if max_neurons is None else min(total, int(max_neurons))
    t_idx, n_idx = np.nonzero(s[:, :shown])
    fig, ax = figure_axes(ax, figsize=(7.0, 3.6))
    # A mark fills most of its row and, for short runs, part of its column, so neighbouring
    # neurons and steps stay apart at any size.
    width_pt, height_pt = axes_size_pt(ax)
    row, column = height_pt / max(shown, 1), width_pt / max(steps, 1)
    size = float(np.clip(0.8 * row, 1.0, 14.0)) ** 2
    ax.scatter(t_idx, n_idx, marker="|", s=size, c=color,
               linewidths=float(np.clip(0.25 * column, 0.6, 3.0)))
    ax.set_xlim(-0.5, max(steps, 1) - 0.5)
    ax.set_ylim(-0.5, max(shown, 1) - 0.5)
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron")
    if title:
        suffix = f" (neurons 0-{shown - 1} of {total})" if shown < total else ""
        ax.set_title(f"{title}{suffix}")
    ax.text(
        0.995, 1.01, f"{t_idx.size} spikes", transform=ax.transAxes, ha="right", va="bottom",
        fontsize="small", color="0.35",
    )
    save_figure(fig, path)
    return ax


def plot_membrane(
    v_trace: Any,
    spikes: Any = None,
    threshold: Any = None,
    neurons: int | Sequence[int] = 3,
    path: PathLike | None = None,
    ax: Any = None,
    *,
    title: str | None = "Membrane potential",
) -> Any:
    """Draw the membrane potential of a few neurons over time, with threshold and spikes.

    Args:
        v_trace: ``[T, N]`` (or ``[T, ...]``, flattened) membrane potential, e.g. the pre-reset
            trace from :meth:`neurogate.LIF.trace`.
        spikes: optional spikes of the same shape; each spike is marked with a triangle on its
            neuron's trace.
        threshold: optional firing threshold: a number (one dashed line) or one value per
            neuron (``N`` values; a dashed line in each neuron's colour).
        neurons: how many neurons to draw (the first ``k``) or which (flat indices).
        path, ax, title: as in :func:`plot_raster`.

    Returns:
        The Axes; each trace is a line labelled ``"neuron n"`` (spike markers ``"spike"`` and
        threshold lines ``"threshold"`` follow the same convention for the legend).
    """
    v = flatten_neurons(
        as_numpy(v_trace, "plot_membrane", "v_trace"), "plot_membrane", "v_trace",
        "[T, N] membrane potentials (time-major, one sample)",
    )
    steps, total = v.shape
    index = _select_neurons(neurons, total)
    s = None
    if spikes is not None:
        s = flatten_neurons(
            as_numpy(spikes, "plot_membrane", "spikes"), "plot_membrane", "spikes", "[T, N]"
        )
        if s.shape != v.shape:
            raise ShapeError(
                f"plot_membrane: spikes {s.shape} and v_trace {v.shape} must have the same "
                "shape after flattening to [T, N]"
            )
    thresholds = _thresholds(threshold, total)
    fig, ax = figure_axes(ax, figsize=(7.0, 3.6))
    t = np.arange(steps)
    colors = cycle_colors(len(index))
    for i, (n, color) in enumerate(zip(index, colors)):
        ax.plot(t, v[:, n], color=color, lw=1.3, label=f"neuron {n}", zorder=3)
        if s is not None:
            hit = np.flatnonzero(s[:, n])
            ax.plot(
                hit, v[hit, n], ls="none", marker="^", ms=6, color=color, mec="black", mew=0.5,
                zorder=4, label="spike" if i == 0 else None,
            )
    if thresholds is not None:
        if thresholds.size == 1:
            ax.axhline(float(thresholds[0]), color="0.3", ls="--", lw=1.0, label="threshold")
        else:
            for i, (n, color) in enumerate(zip(index, colors)):
                ax.axhline(
                    float(thresholds[n]), color=color, ls="--", lw=1.0, alpha=0.8,
                    label="threshold" if i == 0 else None,
                )
    ax.set_xlim(-0.5, max(steps, 1) - 0.5)
    ax.set_xlabel("time step")
    ax.set_ylabel("membrane potential v")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    save_figure(fig, path)
    return ax


def _select_neurons(neurons: int | Sequence[int], total: int) -> list[int]:
    if isinstance(neurons, (int, np.integer)):
        if neurons < 1:
            raise ConfigError(f"plot_membrane: neurons must be >= 1, got {neurons}")
        return list(range(min(int(neurons), total)))
    index = [int(n) for n in neurons]
    bad = [n for n in index if not 0 <= n < total]
    if bad or not index:
        raise ConfigError(
            f"plot_membrane: neuron indices {bad or index} out of range for {total} neurons"
        )
    return index


def _thresholds(threshold: Any, total: int) -> np.ndarray | None:
    if threshold is None:
        return None
    th = as_numpy(threshold, "plot_membrane", "threshold").astype(np.float64).reshape(-1)
    if th.size not in (1, total):
        raise ShapeError(
            f"plot_membrane: threshold has {th.size} values; give one, or one per neuron ({total})"
        )
    return th
