r"""Plots of a crossbar descriptor: tile map, conductances, and accuracy sweeps over non-idealities.

Same conventions as :mod:`neurogate.viz`: matplotlib is imported on first use, every function
returns what it drew on (``Axes`` for one panel, ``Figure`` for several), saves to ``path`` when
given, and never calls ``plt.show``.

:func:`sweep` measures accuracy while one non-ideality changes, over several programmings
(seeds) of the chip; :func:`plot_sweep` draws the mean :math:`\pm` one standard deviation.

Example:
    >>> from neurogate.hw.crossbar import lower, plots
    >>> desc = lower(graph, device="rram")
    >>> plots.plot_tile_map(desc, path="tiles.png")
    >>> plots.plot_conductances(desc, tile=0, seed=0, t_read=3600.0)
    >>> s = plots.sweep(desc, spikes, labels, "adc_bits", [4, 6, 8], seeds=range(3))
    >>> plots.plot_sweep(s.values, s.accs, "ADC bits", float_acc=0.9)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ...errors import ConfigError, ShapeError, ValueRangeError
from ...viz.figure import PathLike, cycle_colors, figure_axes, pyplot, save_figure
from .descriptor import Descriptor
from .simulate import programmed, simulate

__all__ = ["SWEEP_PARAMS", "Sweep", "plot_conductances", "plot_sweep", "plot_tile_map", "sweep"]

SWEEP_PARAMS = ("t_read", "adc_bits", "dac_bits", "noise_scale")


class Sweep(NamedTuple):
    """``accs[i, k]``: accuracy at ``values[i]`` with seed ``seeds[k]``; ``mean``/``std`` over seeds."""

    param: str
    values: list[Any]
    seeds: list[int]
    accs: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def plot_tile_map(desc: Descriptor, path: PathLike | None = None, ax: Any = None, *,
                  title: str | None = "Crossbar tiles") -> Any:
    """Draw every tile as an array outline with its used rows x columns filled in its layer's colour.

    Tiles are laid out row-major on a near-square grid; the vertical axis of a tile is its rows
    (inputs), the horizontal its columns (outputs). The legend gives each layer's tile count and
    utilisation, the title the overall utilisation.

    Returns:
        The Axes; ``ax.patches`` holds exactly one rectangle (the used block) per tile, in tile order.
    """
    _check_desc(desc, "plot_tile_map")
    n = len(desc.tiles)
    if n == 0:
        raise ConfigError("plot_tile_map: the descriptor has no tiles")
    pyplot()  # a ConfigError naming the missing package, before the imports below fail
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Patch, Rectangle

    rows, cols = desc.array.rows, desc.array.cols
    grid_cols = math.ceil(math.sqrt(n * rows / cols))  # near-square overall picture
    grid_rows = math.ceil(n / grid_cols)
    gap = 0.08
    w, h = cols * (1 + gap), rows * (1 + gap)
    fig, ax = figure_axes(ax, figsize=(min(2.0 + 1.1 * grid_cols, 12.0), min(1.5 + 1.1 * grid_rows, 10.0)))
    layers = list(dict.fromkeys(t.layer for t in desc.tiles))
    colour = dict(zip(layers, cycle_colors(len(layers))))
    outlines = []
    for i, t in enumerate(desc.tiles):
        x0, y0 = (i % grid_cols) * w, (i // grid_cols) * h
        outlines.append([(x0, y0), (x0 + cols, y0), (x0 + cols, y0 + rows), (x0, y0 + rows), (x0, y0)])
        used_r, used_c = t.rows[1] - t.rows[0], t.cols[1] - t.cols[0]
        ax.add_patch(Rectangle((x0, y0), used_c, used_r, facecolor=colour[t.layer], edgecolor="none", alpha=0.85))
        if n <= 64:
            ax.text(x0 + cols / 2, y0 + rows / 2, str(t.id), ha="center", va="center", fontsize="small")
    ax.add_collection(LineCollection(outlines, colors="0.3", linewidths=0.8))
    ax.set_xlim(-gap * cols, grid_cols * w)
    ax.set_ylim(grid_rows * h, -gap * rows)  # tile 0 top-left, rows growing downwards
    ax.set_aspect("equal")
    ax.set_axis_off()
    util = desc.utilisation
    handles = [Patch(color=colour[ly], label=f"{ly}: {sum(t.layer == ly for t in desc.tiles)} tiles, "
                                             f"{util.get(ly, 0.0):.0%} used") for ly in layers]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    if title:
        ax.set_title(f"{title}: {n} arrays of {rows}x{cols} on {desc.device.name}\n"
                     f"utilisation {util['overall']:.1%}", fontsize="medium")
    save_figure(fig, path)
    return ax


def plot_conductances(desc: Descriptor, tile: int = 0, seed: int | None = None, t_read: float | None = None,
                      path: PathLike | None = None, *, bins: int = 60) -> Any:
    """Heatmaps of a tile's :math:`G^+` and :math:`G^-` and a histogram of its conductances.

    With ``seed=None`` the targets (what :func:`~neurogate.hw.crossbar.lower` wrote) are shown;
    with a seed, the conductances after programming with that seed and drifting until ``t_read``
    seconds (:func:`~neurogate.hw.crossbar.programmed`), and the histogram overlays targets and
    programmed values.

    Returns:
        The Figure (three Axes: G+, G-, histogram).
    """
    _check_desc(desc, "plot_conductances")
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or not 0 <= tile < len(desc.tiles):
        raise ConfigError(f"plot_conductances: tile must be an index in 0..{len(desc.tiles) - 1}, got {tile!r}")
    if int(bins) != bins or bins < 1:
        raise ConfigError(f"plot_conductances: bins must be an integer >= 1, got {bins}")
    t = desc.tiles[int(tile)]
    dev = desc.device
    if seed is None:
        if t_read is not None:
            raise ConfigError("plot_conductances: t_read needs a seed (the drift is drawn per programming)")
        shown, label = (t.g_pos, t.g_neg), "target"
    else:
        # Programming only this tile would draw different noise than simulate(); program them all.
        shown, label = programmed(desc, int(seed), t_read)[int(tile)], f"programmed (seed {seed}"
        label += f", t = {t_read:.3g} s)" if t_read is not None else ")"
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.8), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1.2]})
    vmax = max(dev.g_max, float(max(g.max() for g in shown)) if shown[0].size else dev.g_max)
    for a, g, name in zip(axes[:2], shown, ("G+", "G-")):
        im = a.imshow(g, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        a.set_title(f"{name}, {label}", fontsize="medium")
        a.set_xlabel(f"column (neurons {t.cols[0]}..{t.cols[1] - 1})")
        a.set_ylabel(f"row (inputs {t.rows[0]}..{t.rows[1] - 1})")
    fig.colorbar(im, ax=axes[:2], label="conductance (uS)", shrink=0.9)
    hist = axes[2]
    target = np.concatenate([t.g_pos.ravel(), t.g_neg.ravel()])
    edges = np.linspace(0.0, vmax, int(bins) + 1)
    hist.hist(target, bins=edges, color="0.55", alpha=0.7, label="target")
    if seed is not None:
        got = np.concatenate([shown[0].ravel(), shown[1].ravel()])
        hist.hist(got, bins=edges, histtype="step", color="C3", linewidth=1.4, label="programmed")
    hist.set_yscale("log")
    hist.axvline(dev.g_min, color="0.3", linestyle=":", linewidth=0.8)
    hist.axvline(dev.g_max, color="0.3", linestyle=":", linewidth=0.8)
    hist.set_xlabel("conductance (uS)")
    hist.set_ylabel("devices")
    hist.set_title(f"tile {t.id} ({t.layer}) on {dev.name}", fontsize="medium")
    hist.legend(fontsize="small")
    save_figure(fig, path)
    return fig


def plot_sweep(xs: Sequence[Any], accs: Any, xlabel: str, float_acc: float | None = None,
               path: PathLike | None = None, ax: Any = None, *, logx: bool | None = None,
               label: str | None = None, title: str | None = None) -> Any:
    """Accuracy against one swept quantity: the mean over seeds with a :math:`\\pm` 1 std band.

    Args:
        xs: the swept values (numbers), ``[n]``.
        accs: accuracies ``[n]`` or ``[n, seeds]`` (fractions in [0, 1]).
        xlabel: the x-axis label, e.g. ``"ADC bits"``.
        float_acc: draw the float model's accuracy as a dashed reference line.
        logx: logarithmic x axis; ``None``: when the values span more than two decades.
        label: legend label of the curve (to draw several curves on one ``ax``).

    Returns:
        The Axes; its first line is the mean curve.
    """
    x = np.asarray(list(xs), np.float64)
    a = np.asarray(accs, np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ShapeError(f"plot_sweep: xs must be a non-empty 1-D sequence, got shape {x.shape}")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] != x.size or a.shape[1] == 0:
        raise ShapeError(f"plot_sweep: accs must be [{x.size}] or [{x.size}, seeds], got {np.shape(accs)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(a))):
        raise ValueRangeError("plot_sweep: xs and accs must be finite")
    if a.min() < 0 or a.max() > 1:
        raise ValueRangeError(f"plot_sweep: accuracies are fractions in [0, 1], got {a.min():g}..{a.max():g}")
    if float_acc is not None and not 0 <= float_acc <= 1:
        raise ValueRangeError(f"plot_sweep: float_acc is a fraction in [0, 1], got {float_acc}")
    if logx is None:
        logx = bool(x.min() > 0 and x.max() / x.min() > 100)
    fig, ax = figure_axes(ax, figsize=(5.5, 3.6))
    mean, std = a.mean(1), a.std(1)
    line, = ax.plot(x, mean, marker="o", label=label or (f"mean of {a.shape[1]} seeds" if a.shape[1] > 1 else None))
    if a.shape[1] > 1:
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    if float_acc is not None:
        ax.axhline(float_acc, color="0.3", linestyle="--", linewidth=1.0, label=f"float model ({float_acc:.1%})")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    save_figure(fig, path)
    return ax


def sweep(desc: Descriptor, inputs: Any, labels: Any, param: str, values: Iterable[Any],
          seeds: Iterable[int] = (0,), *, t_read: float | None = None) -> Sweep:
    """Accuracy of ``desc`` on ``inputs`` ``[T, B, n_in]`` while ``param`` takes each of ``values``.

    ``param`` is one of :data:`SWEEP_PARAMS`: ``"t_read"`` (seconds after programming),
    ``"adc_bits"`` / ``"dac_bits"`` (``None`` = ideal converter), or ``"noise_scale"`` (multiplies
    the device's programming and read noise). The tiles' target conductances do not depend on any
    of these, so nothing is re-lowered: the array or device of a copy of ``desc`` is replaced and
    the copy re-simulated, once per value and seed. ``t_read`` is the read time for the other
    parameters. The prediction is the argmax over classes of the output summed over time.
    """
    _check_desc(desc, "sweep")
    if param not in SWEEP_PARAMS:
        raise ConfigError(f"sweep: param must be one of {SWEEP_PARAMS}, got {param!r}")
    values, seeds = list(values), [int(s) for s in seeds]
    if not values or not seeds:
        raise ConfigError("sweep: values and seeds must each hold at least one entry")
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).reshape(-1)
    x = np.asarray(inputs.detach().cpu() if hasattr(inputs, "detach") else inputs, np.float64)
    if x.ndim != 3 or x.shape[1] != y.size:
        raise ShapeError(f"sweep: inputs must be [T, B, n_in] with B = {y.size} labels, got {x.shape}")
    accs = np.empty((len(values), len(seeds)))
    for i, v in enumerate(values):
        d, tr = _with(desc, param, v), (v if param == "t_read" else t_read)
        for k, seed in enumerate(seeds):
            out = simulate(d, x, seed=seed, t_read=tr).output
            accs[i, k] = float(np.mean(out.sum(0).argmax(-1) == y))
    return Sweep(param, values, seeds, accs, accs.mean(1), accs.std(1))


def _with(desc: Descriptor, param: str, value: Any) -> Descriptor:
    """A shallow copy of ``desc`` with one converter or noise setting changed."""
    if param in ("adc_bits", "dac_bits"):
        return dataclasses.replace(desc, array=dataclasses.replace(desc.array, **{param: value}))
    if param == "noise_scale":
        if not (np.isfinite(value) and value >= 0):
            raise ValueRangeError(f"sweep: noise_scale must be >= 0, got {value}")
        return dataclasses.replace(desc, device=desc.device.with_noise(value))
    return desc


def _check_desc(desc: Any, fn: str) -> None:
    if not isinstance(desc, Descriptor):
        raise ConfigError(f"{fn}: expected a crossbar Descriptor (from neurogate.hw.crossbar.lower), "
                          f"got {type(desc).__name__}")
