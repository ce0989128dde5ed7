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

from .curves import plot_training_curves
from .events import plot_event_frames
from .figure import PathLike as PathLike
from .spikes import plot_membrane, plot_raster

# PathLike stays importable from here, as before the split into modules.
__all__ = ["plot_event_frames", "plot_membrane", "plot_raster", "plot_training_curves"]
