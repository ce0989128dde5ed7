"""event-digits: the offline default dataset, N-MNIST-like events made from scikit-learn's digits.

Recipe (all deterministic, no download; see ``datasets/cards/event-digits.md``):

1. the 1797 real 8x8 handwritten digits bundled with scikit-learn (UCI optdigits test set),
   intensities ``v / 16`` in ``[0, 1]``, white digit on black;
2. bilinear upsampling to 28x28 (MNIST's digit size), centred on a 34x34 canvas (N-MNIST's
   sensor), moved along N-MNIST's three saccades (:func:`~neurogate.data.emulator.nmnist_saccades`,
   amplitude 3 px, 100 ms each, 20 steps per saccade) and quantised to uint8 frames;
3. :func:`~neurogate.data.emulator.emulate_dvs` with ``C = 0.3``, ``log_eps = 0.25`` and a 1 ms
   refractory period, without noise or threshold mismatch (no random draws at all);
4. a fixed stratified 80/20 train/test split (per class, ``numpy.random.RandomState(0)``).

Samples last 300 ms, sensor size ``(34, 34, 2)``; about 3000 events per sample. The files are
generated once into ``root/event-digits/{train,test}.npz`` (deflated; written to a temporary
file and renamed) and reused while their recipe matches :data:`RECIPE`.

Example:
    >>> ds = EventDigits("datasets", split="train")               # generates on first use
    >>> events, label = ds[0]                                     # raw events, int label
    >>> frames, label = EventDigits("datasets", "test", time_steps=10)[0]   # [10, 2, 34, 34]
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DatasetError
from .emulator import emulate_dvs_arrays, nmnist_saccades, shift_images
from .events import VISION_DTYPE
from .registry import register_dataset

__all__ = [
    "CLASSES",
    "RECIPE",
    "SENSOR_SIZE",
    "EventDigits",
    "event_digits",
    "generate_event_digits",
]

SENSOR_SIZE = (34, 34, 2)
CLASSES = tuple(str(d) for d in range(10))
SPLITS = ("train", "test")
#: Everything that determines the files; a cache written with another recipe is regenerated.
RECIPE: dict[str, Any] = {
    "version": 1,
    "source": "sklearn.datasets.load_digits",
    "image_size": 28,
    "canvas": 34,
    "saccade_amplitude": 3.0,
    "saccade_duration_us": 100_000,
    "steps_per_saccade": 20,
    "contrast_threshold": 0.3,
    "refractory_period_us": 1000,
    "log_eps": 0.25,
    "test_fraction": 0.2,
    "split_seed": 0,
}
DURATION_US = 3 * RECIPE["saccade_duration_us"]
_BATCH = 128  # digits emulated side by side as one tall video (pixels are independent)
_FIELDS = ("x", "y", "t", "p", "offsets", "labels", "index", "recipe")


def generate_event_digits(root: str | os.PathLike, force: bool = False) -> Path:
    """Generate event-digits into ``root/event-digits/`` unless a matching cache exists.

    Returns the directory holding ``train.npz`` and ``test.npz``. Takes a few seconds; the
    result is identical on every machine (elementwise float arithmetic only, a snapped log table,
    the legacy ``RandomState`` for the split).
    """
    directory = Path(root) / "event-digits"
    if not force and all(_recipe_of(directory / f"{s}.npz") == RECIPE for s in SPLITS):
        return directory
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ConfigError(
            "event-digits is made from scikit-learn's bundled digits; pip install scikit-learn"
        ) from err
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    x, y, t, p, counts = _emulate_all(digits.images / 16.0)
    owner = np.repeat(np.arange(len(labels)), counts)
    directory.mkdir(parents=True, exist_ok=True)
    for split, index in zip(SPLITS, stratified_split(labels)):
        member = np.zeros(len(labels), dtype=bool)
        member[index] = True
        keep = member[owner]
        arrays = {
            "x": x[keep].astype(np.uint8), "y": y[keep].astype(np.uint8),
            "t": t[keep].astype(np.int32), "p": p[keep].astype(np.uint8),
            "offsets": np.concatenate([[0], np.cumsum(counts[index])]).astype(np.int64),
            "labels": labels[index], "index": index,
            "recipe": np.array(json.dumps(RECIPE, sort_keys=True)),
        }
        _write_atomic(directory / f"{split}.npz", arrays)
    return directory


def stratified_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed stratified split: per class, ``round(test_fraction * n)`` test samples, chosen by
    ``RandomState(split_seed)`` (the legacy generator, whose stream numpy keeps frozen).

    Returns sorted ``(train_index, test_index)``.
    """
    rng = np.random.RandomState(RECIPE["split_seed"])
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(np.floor(len(members) * RECIPE["test_fraction"] + 0.5))
        test.append(rng.permutation(members)[:n_test])
    test_index = np.sort(np.concatenate(test))
    train_index = np.setdiff1d(np.arange(len(labels)), test_index)
    return train_index.astype(np.int64), test_index.astype(np.int64)


class EventDigits:
    """The event-digits dataset (generated on first use, then read from the cache).

    ``ds[i]`` is ``(events, label)`` with ``events`` a :data:`VISION_DTYPE` array sorted by time;
    with ``time_steps=T`` it is ``(frames [T, 2, 34, 34] float32, label)``, the 300 ms binned into
    ``T`` equal windows from ``t = 0`` (:func:`neurogate.data.frames.to_frames`). ``transform``
    (e.g. a tonic transform) is applied to the events before binning.

    Attributes: ``sensor_size`` ``(W, H, P)``, ``classes``, ``targets`` (labels), ``path``.
    """

    sensor_size = SENSOR_SIZE
    classes = CLASSES

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        time_steps: int | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        generate: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"event-digits: split must be one of {SPLITS}, got {split!r}")
        if time_steps is not None and int(time_steps) < 1:
            raise ConfigError(f"event-digits: time_steps must be >= 1, got {time_steps}")
        self.split, self.time_steps, self.transform = split, time_steps, transform
        self.path = Path(root) / "event-digits" / f"{split}.npz"
        if _recipe_of(self.path) != RECIPE:
            if not generate:
                raise DatasetError(
                    f"{self.path}: missing or made with another recipe; call "
                    "neurogate.data.generate_event_digits(root) or pass generate=True"
                )
            generate_event_digits(root)
        self._x, self._y, self._t, self._p, self._offsets, self.targets = _load_split(self.path)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"event-digits {self.split}: index {i} out of range [0, {len(self)})")
        i = int(i) % len(self)
        lo, hi = self._offsets[i], self._offsets[i + 1]
        events = np.empty(hi - lo, dtype=VISION_DTYPE)
        events["t"], events["x"] = self._t[lo:hi], self._x[lo:hi]
        events["y"], events["p"] = self._y[lo:hi], self._p[lo:hi]
        if self.transform is not None:
            events = self.transform(events)
        label = int(self.targets[i])
        if self.time_steps is None:
            return events, label
        from .frames import to_frames

        steps = int(self.time_steps)
        window = -(-(DURATION_US + 1) // steps)  # ceil: T windows cover [0, 300 ms]
        frames = to_frames(
            events, SENSOR_SIZE, time_steps=steps, time_window=window, t_start=0,
            truncate=self.transform is not None, validate=self.transform is not None,
            source=f"{self.path} sample {i}",
        )
        return frames, label

    @property
    def fingerprint(self) -> str:
        """Identifies the files (their recipe), for the registry's frame-cache key."""
        return f"event-digits-v{RECIPE['version']}-{_recipe_key()}"

    def sample_name(self, i: int) -> str:
        return f"{self.path} sample {i}"

    def __repr__(self) -> str:
        return f"EventDigits(split={self.split!r}, samples={len(self)}, sensor_size={SENSOR_SIZE})"


def event_digits(root: str | os.PathLike, split: str = "train", **kwargs: Any) -> EventDigits:
    """Open a split directly: ``event_digits(root, split, time_steps=...)`` (same as the class)."""
    return EventDigits(root, split, **kwargs)


def _open(root: Path, split: str, download: bool, **options: Any) -> EventDigits:
    """Registry opener: raw events (the registry bins them); ``download`` is moot (generated)."""
    unknown = set(options) - {"transform", "generate"}
    if unknown:
        raise ConfigError(f"event-digits: unexpected option(s) {sorted(unknown)}; "
                          "bin with load(..., time_steps=...) instead")
    return EventDigits(root, split, **options)


def _state(root: Path) -> tuple[str, tuple[str, ...]]:
    folder = Path(root) / "event-digits"
    found = tuple(s for s in SPLITS if _recipe_of(folder / f"{s}.npz") == RECIPE)
    return ("generated" if found else "absent"), found


register_dataset(
    "event-digits",
    _open,
    sensor_size=SENSOR_SIZE,
    classes=CLASSES,
    default_time_steps=10,
    description="event-digits: scikit-learn's 8x8 digits on N-MNIST saccades through the DVS "
    "emulator (34x34, 1438/359; generated offline in seconds)",
    folder="event-digits",
    layout="train.npz and test.npz, written by neurogate.data.generate_event_digits(root) "
    "(load() generates them on first use)",
    state=_state,
    card="datasets/cards/event-digits.md",
)


# ----------------------------------------------------------------------------------- helpers


def _emulate_all(images: np.ndarray) -> tuple[np.ndarray, ...]:
    """Emulate every digit; events grouped by sample, each sample sorted by time."""
    size, canvas = RECIPE["image_size"], RECIPE["canvas"]
    path = nmnist_saccades(
        RECIPE["saccade_amplitude"], RECIPE["saccade_duration_us"], RECIPE["steps_per_saccade"]
    )
    stamps = np.rint(path[:, 2]).astype(np.int64)
    parts: list[tuple[np.ndarray, ...]] = []
    for start in range(0, len(images), _BATCH):
        batch = _upsample(images[start:start + _BATCH], size)
        video = np.rint(shift_images(batch, path, canvas=(canvas, canvas)) * 255.0).astype(np.uint8)
        n_frames, n_img = video.shape[:2]
        x, y, t, p = emulate_dvs_arrays(
            video.reshape(n_frames, n_img * canvas, canvas), stamps,
            contrast_threshold=RECIPE["contrast_threshold"],
            refractory_period=RECIPE["refractory_period_us"], log_eps=RECIPE["log_eps"],
        )
        sample = y // canvas
        order = np.argsort(sample, kind="stable")  # events are time-sorted; keep that per sample
        parts.append((x[order], (y % canvas)[order], t[order], p[order],
                      np.bincount(sample, minlength=n_img)))
    return tuple(np.concatenate(field) for field in zip(*parts))


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize ``[B, h, w] -> [B, size, size]`` (pixel centres aligned, zero outside).

    Elementwise gathers and products only (no BLAS), so the result is bit-identical everywhere.
    """
    padded = np.pad(images.astype(np.float64), ((0, 0), (1, 1), (1, 1)))

    def taps(n_in: int) -> tuple[np.ndarray, np.ndarray]:
        u = (np.arange(size) + 0.5) * (n_in / size) - 0.5
        i0 = np.floor(u).astype(np.int64)
        return i0 + 1, u - i0

    iy, wy = taps(images.shape[1])
    ix, wx = taps(images.shape[2])
    rows = padded[:, iy, :] * (1.0 - wy)[None, :, None] + padded[:, iy + 1, :] * wy[None, :, None]
    return rows[:, :, ix] * (1.0 - wx) + rows[:, :, ix + 1] * wx


def _recipe_key() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def _recipe_of(path: Path) -> dict[str, Any] | None:
    """The recipe stored in a cache file, or None if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["recipe"]))
    except (OSError, KeyError, ValueError):
        return None


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` (deflate level 1: 3x faster than savez_compressed's 6, 4 % larger), written
    under a temporary name and renamed, so readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, array in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load_split(path: Path) -> tuple[np.ndarray, ...]:
    """Read and check one split file; any inconsistency raises DatasetError naming the file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _FIELDS if k not in data.files]
            if missing:
                raise DatasetError(f"{path}: missing arrays {missing}; regenerate with force=True")
            x, y, t, p = (data[k] for k in ("x", "y", "t", "p"))
            offsets, labels = data["offsets"], data["labels"]
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable ({err}); regenerate with force=True") from err
    n = len(t)
    problems = []
    if not (len(x) == len(y) == len(p) == n):
        problems.append("x, y, t, p have different lengths")
    elif (len(offsets) != len(labels) + 1 or offsets[0] != 0 or offsets[-1] != n
          or (np.diff(offsets) < 0).any()):
        problems.append("offsets do not partition the events")
    else:
        if (x >= SENSOR_SIZE[0]).any() or (y >= SENSOR_SIZE[1]).any() or (p > 1).any():
            problems.append(f"coordinates or polarities outside the sensor {SENSOR_SIZE}")
        back = np.flatnonzero(np.diff(t.astype(np.int64)) < 0) + 1
        if (t < 0).any() or not np.isin(back, offsets[1:-1]).all():
            problems.append("timestamps negative or unsorted within a sample")
        if ((labels < 0) | (labels >= len(CLASSES))).any():
            problems.append("labels outside 0..9")
    if problems:
        raise DatasetError(f"{path}: {'; '.join(problems)}; regenerate with force=True")
    return x, y, t, p, offsets, labels
