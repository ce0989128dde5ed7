"""Plots for spiking networks: spike rasters, membrane traces, event frames, training curves.

Every function draws with matplotlib (imported on first use, so ``import neurogate`` does not
need it), takes an optional ``ax`` to draw into an existing figure, returns what it drew on
(an ``Axes`` for one panel, a ``Figure`` for several) and, given ``path``, saves a PNG there
(another suffix such as ``.svg`` or ``.pdf`` picks that format). Nothing calls ``plt.show``:
in a notebook the figure appears when the cell ends; in a script call ``plt.show()`` or pass
``path``. Figures made here are pyplot figures; in a loop, ``plt.close(fig)`` when done.

Inputs are torch tensors or numpy arrays, time-major: ``[T, ...]`` for one sample. Pass a
single sample of a batch (``spikes[:, 0]``), not ``[T, B, ...]``: the trailing dimensions
are flattened into neurons.

Example:
    >>> import torch, neurogate as ng
    >>> from neurogate import viz
    >>> lif = ng.LIF(decay=0.9)
    >>> spikes, v = lif.trace(torch.rand(100, 1, 64) * 0.3)   # [T, B, N]
    >>> viz.plot_raster(spikes[:, 0], path="raster.png")
    >>> viz.plot_membrane(v[:, 0], spikes[:, 0], threshold=1.0, neurons=3)
    >>> digits = ng.data.load("event-digits", "train", time_steps=8)
    >>> viz.plot_event_frames(digits.events(0), sensor_size=digits.sensor_size, time_steps=8)
    >>> viz.plot_training_curves("runs/quickstart/metrics.csv", path="curves.png")
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, ShapeError, ValueRangeError

__all__ = ["plot_event_frames", "plot_membrane", "plot_raster", "plot_training_curves"]

PathLike = str | os.PathLike
_RATE_PREFIXES = ("spike_rate_", "rate_")


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
    s = _as_numpy(spikes, "plot_raster", "spikes")
    s = _flatten_neurons(s, "plot_raster", "spikes", "[T, N] spikes (time-major, one sample)")
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
    fig, ax = _axes(ax, figsize=(7.0, 3.6))
    # A mark fills most of its row and, for short runs, part of its column, so neighbouring
    # neurons and steps stay apart at any size.
    width_pt, height_pt = _axes_size_pt(ax)
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
    _save(fig, path)
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
    v = _flatten_neurons(
        _as_numpy(v_trace, "plot_membrane", "v_trace"), "plot_membrane", "v_trace",
        "[T, N] membrane potentials (time-major, one sample)",
    )
    steps, total = v.shape
    index = _select_neurons(neurons, total)
    s = None
    if spikes is not None:
        s = _flatten_neurons(
            _as_numpy(spikes, "plot_membrane", "spikes"), "plot_membrane", "spikes", "[T, N]"
        )
        if s.shape != v.shape:
            raise ShapeError(
                f"plot_membrane: spikes {s.shape} and v_trace {v.shape} must have the same "
                "shape after flattening to [T, N]"
            )
    thresholds = _thresholds(threshold, total)
    fig, ax = _axes(ax, figsize=(7.0, 3.6))
    t = np.arange(steps)
    colors = _cycle_colors(len(index))
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
    _save(fig, path)
    return ax


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
        from .data import to_frames

        events = frames
        frames = to_frames(events, sensor_size, time_steps=time_steps, source="plot_event_frames")
        if events.shape[0]:
            t0, t1 = int(events["t"][0]), int(events["t"][-1])
            edges_ms = (t0 + (t1 - t0 + 1) * np.arange(time_steps + 1) / time_steps) / 1000.0
    f = _as_numpy(frames, "plot_event_frames", "frames").astype(np.float64, copy=False)
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
        plt = _pyplot()
        h, w = f.shape[2:]
        side = 1.7
        fig, grid = plt.subplots(
            rows, cols, figsize=(side * cols * max(w / h, 0.5) + 0.6, side * rows + 0.7),
            squeeze=False, layout="constrained",
        )
        axes = list(grid.ravel())
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) < panels:
            raise ShapeError(
                f"plot_event_frames: {panels} panels to draw but ax holds {len(axes)} Axes"
            )
        fig = axes[0].figure
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
    _save(fig, path)
    return fig


def plot_training_curves(
    metrics: Any,
    path: PathLike | None = None,
    ax: Any = None,
    *,
    title: str | None = None,
) -> Any:
    """Draw loss and accuracy per epoch, and spike rates when the metrics have them.

    Args:
        metrics: a ``metrics.csv`` path (one row per epoch, as :mod:`neurogate.train` writes
            it), a list of dicts (rows) or a dict of lists (columns). Columns used: ``epoch``
            (default 1, 2, ...), every ``*_loss`` (loss panel), every ``*_acc`` (accuracy
            panel), every ``spike_rate_<layer>`` or ``rate_<layer>`` (mean spikes per neuron
            per step, a third panel) and ``synops_per_sample`` or ``synops`` (synaptic
            operations per sample, on that panel's right axis). Other columns (``lr``,
            timings) are ignored; empty cells are gaps.
        path: save the figure here.
        ax: a sequence of Axes, one per panel (2, or 3 with spike rates); a new figure otherwise.
        title: figure title.

    Returns:
        The Figure.
    """
    columns = _metric_columns(metrics)
    n = len(next(iter(columns.values())))
    epoch = columns.get("epoch", np.arange(1, n + 1, dtype=np.float64))
    losses = [k for k in columns if k.endswith("_loss") or k == "loss"]
    accs = [k for k in columns if k.endswith("_acc") or k in ("acc", "accuracy")]
    rates = {k: k.split("rate_", 1)[1] for k in columns if k.startswith(_RATE_PREFIXES)}
    synops = next((k for k in ("synops_per_sample", "synops") if k in columns), None)
    if not losses and not accs:
        raise ConfigError(
            "plot_training_curves: no loss or accuracy columns (train_loss, train_acc, test_acc, "
            f"...) among {sorted(columns)}"
        )
    panels = 2 + bool(rates or synops)
    if ax is None:
        plt = _pyplot()
        fig, grid = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), layout="constrained")
        axes = list(np.ravel(grid))
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) < panels:
            raise ShapeError(
                f"plot_training_curves: {panels} panels to draw but ax holds {len(axes)} Axes"
            )
        fig = axes[0].figure
    marker = "o" if n <= 30 else None
    for name in losses:
        axes[0].plot(epoch, columns[name], marker=marker, ms=4, label=_pretty(name))
    axes[0].set_title("Loss")
    axes[0].set_ylabel("loss")
    percent = all(np.nanmax(np.append(columns[k], 0.0)) <= 1.0 for k in accs)
    for name in accs:
        values = columns[name] * (100.0 if percent else 1.0)
        axes[1].plot(epoch, values, marker=marker, ms=4, label=_pretty(name))
    axes[1].set_title("Accuracy")
    axes[1].set_ylabel("accuracy (%)" if percent else "accuracy")
    if panels == 3:
        rate_ax = axes[2]
        for name, layer in rates.items():
            rate_ax.plot(epoch, columns[name], marker=marker, ms=4, label=layer)
        rate_ax.set_title("Spike rate")
        rate_ax.set_ylabel("spikes / neuron / step")
        if synops:
            ops_ax = rate_ax.twinx()
            ops_ax.plot(epoch, columns[synops], color="0.4", ls="--", marker=marker, ms=3,
                        label="synops")
            ops_ax.set_ylabel("synaptic ops / sample", color="0.4")
            ops_ax.tick_params(axis="y", colors="0.4")
            ops_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
            handles = [h for a in (rate_ax, ops_ax) for h in a.get_legend_handles_labels()[0]]
            rate_ax.legend(handles=handles, fontsize="small")
        else:
            rate_ax.legend(fontsize="small")
    for a, names in ((axes[0], losses), (axes[1], accs)):
        if names:
            a.legend(fontsize="small")
        else:
            a.text(0.5, 0.5, "not recorded", transform=a.transAxes, ha="center", color="0.5")
    for a in axes[:panels]:
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        if n <= 20:
            a.set_xticks(epoch)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


# -- helpers ---------------------------------------------------------------------------------


def _as_numpy(value: Any, fn: str, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    try:
        return np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise ShapeError(f"{fn}: {name} is not an array ({type(value).__name__}): {err}") from err


def _flatten_neurons(a: np.ndarray, fn: str, name: str, want: str) -> np.ndarray:
    if a.ndim < 2:
        raise ShapeError(
            f"{fn}: expected {want}, got {name} of shape {tuple(a.shape)}; "
            "one neuron over time is x[:, None]"
        )
    if a.dtype.names is not None or a.dtype.kind not in "biuf":
        raise ValueRangeError(f"{fn}: {name} must be numeric or bool, got dtype {a.dtype}")
    return a.reshape(a.shape[0], -1)


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
    th = _as_numpy(threshold, "plot_membrane", "threshold").astype(np.float64).reshape(-1)
    if th.size not in (1, total):
        raise ShapeError(
            f"plot_membrane: threshold has {th.size} values; give one, or one per neuron ({total})"
        )
    return th


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


def _metric_columns(metrics: Any) -> dict[str, np.ndarray]:
    if isinstance(metrics, (str, os.PathLike)):
        file = Path(metrics)
        if not file.is_file():
            raise ConfigError(f"plot_training_curves: no metrics file at {file}")
        with file.open(newline="") as handle:
            rows: Any = list(csv.DictReader(handle))
        source = str(file)
    else:
        rows, source = metrics, "metrics"
    if isinstance(rows, Mapping):
        raw = {str(k): list(v) if isinstance(v, Iterable) else [v] for k, v in rows.items()}
    else:
        rows = list(rows)
        if not all(isinstance(r, Mapping) for r in rows):
            raise ConfigError(
                "plot_training_curves: metrics is a metrics.csv path, a list of dicts or a dict "
                f"of lists, not {type(metrics).__name__}"
            )
        names = list(dict.fromkeys(k for r in rows for k in r))
        raw = {str(k): [r.get(k) for r in rows] for k in names}
    lengths = {len(v) for v in raw.values()}
    if not raw or lengths == {0}:
        raise ConfigError(f"plot_training_curves: {source} has no rows")
    if len(lengths) > 1:
        raise ShapeError(f"plot_training_curves: columns of {source} differ in length {lengths}")
    columns = {}
    for name, values in raw.items():
        numbers = [_number(v) for v in values]
        if any(x is not None for x in numbers):
            columns[name] = np.array([np.nan if x is None else x for x in numbers], np.float64)
    return columns


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if hasattr(value, "item"):
        value = value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("neurogate.viz draws with matplotlib: pip install matplotlib") from err
    return plt


def _cycle_colors(n: int) -> list[Any]:
    _pyplot()
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _axes_size_pt(ax: Any) -> tuple[float, float]:
    """Width and height of ``ax`` in points (before layout adjustments)."""
    box = ax.get_position()
    width_in, height_in = ax.figure.get_size_inches()
    return box.width * width_in * 72.0, box.height * height_in * 72.0


def _save(fig: Any, path: PathLike | None) -> None:
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fmt = target.suffix.lstrip(".").lower() or "png"
    fig.savefig(target, format=fmt, dpi=120)
