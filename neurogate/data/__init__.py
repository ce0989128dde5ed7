"""Event data for neurogate: event arrays, validation, binning to frames, dataset registry.

Example:
    >>> import neurogate.data as nd
    >>> train = nd.load("nmnist", "train", root="datasets", time_steps=10)
    >>> for frames, labels in nd.loader("nmnist", "train", batch_size=64, time_steps=10):
    ...     pass          # frames: [10, 64, 2, 34, 34] float32, labels: [64] int64
    >>> [(d.name, d.state) for d in nd.list_datasets("datasets")]
"""

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

from . import event_digits  # noqa: F401  (registers the offline default dataset)
from . import temporal  # noqa: F401  (registers the offline delay task)
from .emulator import emulate_dvs, nmnist_saccades, still_image_to_video
from .event_digits import EventDigits, generate_event_digits

__all__ = [
    "load",
    "loader",
    "list_datasets",
    "register_dataset",
    "make_events",
    "validate_events",
    "to_frames",
    "collate_time_major",
    "emulate_dvs",
    "still_image_to_video",
    "nmnist_saccades",
    "generate_event_digits",
    "EventDigits",
    "dataset_names",
    "FrameDataset",
    "FrameSpec",
    "DatasetStatus",
    "VISION_DTYPE",
    "AUDIO_DTYPE",
]
