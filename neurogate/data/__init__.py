"""Event data for neurogate: event arrays, validation, binning to frames, dataset registry.

Example:
    >>> import neurogate.data as nd
    >>> train = nd.load("nmnist", "train", root="datasets", time_steps=10)
    >>> for frames, labels in nd.loader("nmnist", "train", batch_size=64, time_steps=10):
    ...     pass          # frames: [10, 64, 2, 34, 34] float32, labels: [64] int64
    >>> [(d.name, d.state) for d in nd.list_datasets("datasets")]
"""

import importlib.util

from . import loaders  # noqa: F401  (registers the tonic-backed datasets)
from .events import AUDIO_DTYPE, VISION_DTYPE, make_events, validate_events
from .frames import FrameSpec, collate_time_major, to_frames
from .registry import (
    DatasetStatus,
    FrameDataset,
    dataset_names,
    list_datasets,
    load,
    loader,
    register_dataset,
)

# The offline default dataset registers itself when its module is present.
if importlib.util.find_spec(f"{__name__}.event_digits") is not None:
    from . import event_digits  # noqa: F401

__all__ = [
    "load",
    "loader",
    "list_datasets",
    "register_dataset",
    "make_events",
    "validate_events",
    "to_frames",
    "collate_time_major",
    "dataset_names",
    "FrameDataset",
    "FrameSpec",
    "DatasetStatus",
    "VISION_DTYPE",
    "AUDIO_DTYPE",
]
