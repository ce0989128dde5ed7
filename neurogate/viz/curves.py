"""Training curves per epoch: loss, accuracy and spike rates from ``metrics.csv`` or in memory."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError
from .figure import PathLike, given_panels, pyplot, save_figure

__all__ = ["plot_training_curves"]

_RATE_PREFIXES = ("spike_rate_", "rate_")


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
        plt = pyplot()
        fig, grid = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), layout="constrained")
        axes = list(np.ravel(grid))
    else:
        fig, axes = given_panels(ax, panels, "plot_training_curves")
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
    save_figure(fig, path)
    return fig


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
