"""Dataset registry: ``load("nmnist", split="train", time_steps=10)`` -> frames ready to train on.

Each dataset is registered under a name with an *opener*: a function
``opener(root: Path, split: str, download: bool, **options)`` returning an *event source*, a
tonic-style dataset whose ``source[i]`` is ``(events, label)``. Optional attributes of a source
that neurogate uses when present:

* ``targets``: integer labels of every sample, read without opening the sample files (lets a
  cached epoch skip the event files entirely);
* ``classes``: class names; ``sensor_size``: ``(W, H, P)``, when not fixed by the registration;
* ``sample_name(i)``: the file (and index) of sample ``i``, used in error messages;
* ``fingerprint``: a string identifying the files, part of the frame-cache key.

:func:`load` wraps the source in a :class:`FrameDataset`, which validates each sample's events,
bins them (:mod:`neurogate.data.frames`) and caches the frames on disk
(:mod:`neurogate.data.cache`).

Example:
    >>> import neurogate.data as nd
    >>> @nd.register_dataset("toy", sensor_size=(4, 4, 2), classes=("a", "b"))
    ... def open_toy(root, split, download, **options):
    ...     return [(nd.make_events(t=[0], x=[1], y=[2], p=[1]), 0)]
    >>> nd.load("toy", time_steps=1)[0][0].shape
    torch.Size([1, 2, 4, 4])
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from . import frames as _frames
from .cache import FrameCache
from .events import validate_events

__all__ = [
    "DatasetSpec",
    "DatasetStatus",
    "FrameDataset",
    "register_dataset",
    "get_spec",
    "dataset_names",
    "list_datasets",
    "load",
    "loader",
]

State = Literal["present", "absent", "generated"]
Opener = Callable[..., Any]


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about a dataset before opening it.

    ``state(root)`` returns ``(state, splits_present)``; ``folder`` is the dataset's directory
    under the root; ``layout`` says which files go there; ``card`` is its dataset card.
    """

    name: str
    opener: Opener
    sensor_size: tuple[int, int, int] | None = None
    classes: tuple[str, ...] | None = None
    splits: tuple[str, ...] = ("train", "test")
    default_time_steps: int = 10
    description: str = ""
    layout: str = ""
    state: Callable[[Path], tuple[State, tuple[str, ...]]] | None = None
    card: str | None = None
    folder: str = ""


@dataclass(frozen=True)
class DatasetStatus:
    """One row of :func:`list_datasets`: what is on disk for a dataset."""

    name: str
    state: State
    splits: tuple[str, ...]
    location: str
    description: str = ""


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(name: str, opener: Opener | None = None, **meta: Any) -> Any:
    """Register ``opener`` under ``name``; without ``opener``, return a decorator.

    ``meta`` fills the other :class:`DatasetSpec` fields (``sensor_size``, ``classes``,
    ``splits``, ``default_time_steps``, ``description``, ``layout``, ``state``, ``card``).
    Registering a taken name raises unless ``overwrite=True``.

    Example:
        >>> register_dataset("my-events", my_opener, sensor_size=(128, 128, 2), splits=("train",))
    """
    overwrite = bool(meta.pop("overwrite", False))

    def add(fn: Opener) -> Opener:
        if name in _REGISTRY and not overwrite:
            raise ConfigError(f"dataset {name!r} is already registered; pass overwrite=True")
        unknown = set(meta) - set(DatasetSpec.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"register_dataset({name!r}): unknown option(s) {sorted(unknown)}")
        spec_meta = dict(meta)
        for key in ("sensor_size", "classes", "splits"):
            if spec_meta.get(key) is not None:
                spec_meta[key] = tuple(spec_meta[key])
        _REGISTRY[name] = DatasetSpec(name=name, opener=fn, **spec_meta)
        return fn

    return add if opener is None else add(opener)


def dataset_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The registration of ``name``; an unknown name raises :class:`ConfigError` with hints."""
    key = name.lower().replace("_", "-")
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown dataset {name!r}.{hint} Valid names: {', '.join(dataset_names())}")


def list_datasets(root: str | os.PathLike[str] = "datasets") -> list[DatasetStatus]:
    """Every registered dataset and whether its files are under ``root``.

    ``state`` is ``"present"`` (files found, for the splits listed), ``"generated"`` (built
    locally, as event-digits is) or ``"absent"``.
    """
    root = Path(root)
    rows = []
    for name in dataset_names():
        spec = _REGISTRY[name]
        state, splits = spec.state(root) if spec.state is not None else ("absent", ())
        location = str(root / spec.folder) if spec.folder else str(root)
        rows.append(DatasetStatus(name, state, tuple(splits), location, spec.description))
    return rows


class FrameDataset(torch.utils.data.Dataset):
    """A dataset split as ``(frames, label)`` pairs: float32 ``[T, C, H, W]`` or ``[T, C]``.

    Attributes: ``sensor_size`` ``(W, H, P)``, ``classes``, ``num_classes``, ``frame_shape``
    (``(C, H, W)`` or ``(C,)``), ``spec`` (the binning), ``cache`` (``None`` when disabled)
    and ``source`` (the event source: ``dataset.events(i)`` returns raw events).
    """

    def __init__(
        self,
        name: str,
        split: str,
        source: Any,
        sensor_size: Sequence[int],
        spec: _frames.FrameSpec,
        classes: Sequence[str] | None = None,
        cache: FrameCache | None = None,
        validate: bool = True,
    ) -> None:
        self.name, self.split, self.source, self.spec = name, split, source, spec
        self.sensor_size = tuple(int(s) for s in sensor_size)
        names = classes if classes is not None else getattr(source, "classes", None)
        self.classes = tuple(str(c) for c in names) if names is not None else ()
        self.frame_shape = _frames.frame_shape(self.sensor_size, spec.channels)
        self.cache = cache
        self.validate = validate
        targets = getattr(source, "targets", None)
        self._targets = None if targets is None else [int(t) for t in targets]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.source)

    def sample_name(self, index: int) -> str:
        name_of = getattr(self.source, "sample_name", None)
        return name_of(index) if name_of else f"{self.name}/{self.split} sample {index}"

    def events(self, index: int) -> np.ndarray:
        """The validated raw events of sample ``index``."""
        return self._read(index)[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            if -len(self) <= index < 0:
                index += len(self)
            else:
                raise IndexError(f"index {index} out of range for {len(self)} samples")
        counts = self.cache.get(index) if self.cache is not None else None
        if counts is not None and self._targets is not None:
            return torch.from_numpy(counts.astype(np.float32)), self._targets[index]
        events, label = self._read(index)
        if counts is None:
            counts = _frames.bin_events(
                events, self.sensor_size, self.spec, self.sample_name(index)
            )
            if self.cache is not None:
                self.cache.put(index, counts)
        return torch.from_numpy(counts.astype(np.float32)), label

    def _read(self, index: int) -> tuple[np.ndarray, int]:
        events, label = self.source[index]
        if self.validate:
            validate_events(events, self.sensor_size, source=self.sample_name(index))
        return events, int(label)

    def __repr__(self) -> str:
        return (
            f"FrameDataset({self.name!r}, split={self.split!r}, samples={len(self)}, "
            f"frames=[{self.spec.time_steps or '?'}, {', '.join(map(str, self.frame_shape))}], "
            f"classes={self.num_classes})"
        )


def load(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] = "datasets",
    *,
    time_steps: int | None = None,
    time_window: float | None = None,
    t_start: int | None = None,
    truncate: bool = False,
    channels: int | None = None,
    binary: bool = False,
    cache: bool = True,
    download: bool = False,
    validate: bool = True,
    sensor_size: Sequence[int] | None = None,
    **options: Any,
) -> FrameDataset:
    """Open dataset ``name`` as a :class:`FrameDataset` of ``(frames, label)`` pairs.

    The binning options are those of :func:`~neurogate.data.to_frames` (without either of
    ``time_steps`` / ``time_window`` the dataset's ``default_time_steps`` is used). Frames
    are cached under ``root/cache/<name>/<split>/<hash>/`` unless ``cache=False``. Nothing is
    downloaded unless ``download=True``; a missing dataset raises :class:`DatasetError` that
    says which files to put where. Extra ``options`` go to the dataset's opener.

    Example:
        >>> train = load("nmnist", "train", root="datasets", time_steps=10)
        >>> frames, label = train[0]          # frames: [10, 2, 34, 34] float32
    """
    spec = get_spec(name)
    if split not in spec.splits:
        raise ConfigError(f"{spec.name} has splits {list(spec.splits)}, not {split!r}")
    if time_steps is None and time_window is None:
        time_steps = spec.default_time_steps
    frame_spec = _frames.FrameSpec(time_steps, time_window, t_start, truncate, channels, binary)
    source = spec.opener(Path(root), split, download, **options)
    size = sensor_size or getattr(source, "sensor_size", None) or spec.sensor_size
    if size is None:
        raise ConfigError(f"{spec.name}: no sensor_size known; pass sensor_size=(W, H, P)")
    frame_cache = None
    if cache:
        fingerprint = str(getattr(source, "fingerprint", "") or f"len={len(source)}")
        frame_cache = FrameCache.for_dataset(root, spec.name, split, frame_spec, size, fingerprint)
    return FrameDataset(
        spec.name, split, source, size, frame_spec, spec.classes, frame_cache, validate
    )


def loader(
    name: str,
    split: str = "train",
    batch_size: int = 32,
    *,
    shuffle: bool | None = None,
    num_workers: int = 0,
    root: str | os.PathLike[str] = "datasets",
    drop_last: bool = False,
    **load_options: Any,
) -> DataLoader:
    """A DataLoader over :func:`load` whose batches are ``([T, B, ...] frames, [B] labels)``.

    ``shuffle`` defaults to True for the train split. Example:
        >>> for x, y in loader("shd", "train", batch_size=64, time_steps=100, channels=140):
        ...     pass                                    # x: [100, 64, 140], y: [64]
    """
    dataset = load(name, split, root, **load_options)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=(split == "train") if shuffle is None else shuffle,
        num_workers=num_workers,
        collate_fn=_frames.collate_time_major,
        drop_last=drop_last,
    )
