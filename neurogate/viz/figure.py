"""Drawing plumbing shared by the plots: matplotlib on first use, axes, colours, saving, input checks.

Every plot in :mod:`neurogate.viz` (and :mod:`neurogate.hw.crossbar.plots`) goes through these, so
they all import matplotlib lazily, accept an optional ``ax``, save by suffix and read torch tensors
or numpy arrays alike.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError, ValueRangeError

__all__ = ["PathLike", "as_numpy", "axes_size_pt", "cycle_colors", "figure_axes", "flatten_neurons",
           "given_panels", "pyplot", "save_figure"]

PathLike = str | os.PathLike


def as_numpy(value: Any, fn: str, name: str) -> np.ndarray:
    """``value`` (a torch tensor, bfloat16 included, or anything numpy reads) as a numpy array."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    try:
        return np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise ShapeError(f"{fn}: {name} is not an array ({type(value).__name__}): {err}") from err


def flatten_neurons(a: np.ndarray, fn: str, name: str, want: str) -> np.ndarray:
    """``[T, ...]`` -> ``[T, N]`` (row-major); ``fn`` and ``want`` name the caller in the errors."""
    if a.ndim < 2:
        raise ShapeError(
            f"{fn}: expected {want}, got {name} of shape {tuple(a.shape)}; "
            "one neuron over time is x[:, None]"
        )
    if a.dtype.names is not None or a.dtype.kind not in "biuf":
        raise ValueRangeError(f"{fn}: {name} must be numeric or bool, got dtype {a.dtype}")
    return a.reshape(a.shape[0], -1)


def pyplot() -> Any:
    """``matplotlib.pyplot``, imported on first use; ConfigError naming the package if missing."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("neurogate.viz draws with matplotlib: pip install matplotlib") from err
    return plt


def cycle_colors(n: int) -> list[Any]:
    """``n`` colours of matplotlib's ``tab10`` cycle."""
    pyplot()
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def figure_axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """``(figure, ax)``: the given Axes and its figure, or a new figure of ``figsize`` inches."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


def given_panels(ax: Any, panels: int, fn: str) -> tuple[Any, list[Any]]:
    """``(figure, axes)`` of a sequence (or array) of Axes given for ``panels`` panels or more."""
    axes = list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) < panels:
        raise ShapeError(f"{fn}: {panels} panels to draw but ax holds {len(axes)} Axes")
    return axes[0].figure, axes


def axes_size_pt(ax: Any) -> tuple[float, float]:
    """Width and height of ``ax`` in points (before layout adjustments)."""
    box = ax.get_position()
    width_in, height_in = ax.figure.get_size_inches()
    return box.width * width_in * 72.0, box.height * height_in * 72.0


def save_figure(fig: Any, path: PathLike | None) -> None:
    """Save ``fig`` at ``path`` (parents made; the suffix picks the format, PNG without one)."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fmt = target.suffix.lstrip(".").lower() or "png"
    fig.savefig(target, format=fmt, dpi=120)
