"""Disk cache of binned frames, so the second epoch reads frames instead of re-binning events.

Layout: ``<root>/cache/<dataset>/<split>/<key>/`` holds one ``<index>.npy`` per sample and a
``params.json`` that records what the key was made from. The key is a hash of the frame
parameters (:class:`~neurogate.data.frames.FrameSpec`), the sensor size, a fingerprint of the
dataset's files and :data:`CACHE_VERSION`; change any of them (``time_steps``, say) and the
frames go to a fresh directory, so a stale frame is never served.

Frames are stored as integer counts in the smallest unsigned type that holds them (uint8 for
spikes), written to a temporary name and renamed into place, so concurrent DataLoader workers
and interrupted runs never leave a half-written file behind.

Why not tonic's ``DiskCachedDataset``: it keys files by index only (its docs ask the user to put
the transform parameters into the path by hand) and stores each sample as HDF5; one ``.npy`` per
sample loads in tens of microseconds and needs no open file handles across workers.

Example:
    >>> spec = FrameSpec(time_steps=10)
    >>> cache = FrameCache.for_dataset("datasets", "nmnist", "train", spec, (34, 34, 2), "abc")
    >>> cache.get(0) is None      # first epoch: a miss
    True
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .frames import FrameSpec

__all__ = ["CACHE_VERSION", "FrameCache", "fingerprint_files"]

#: Bump when the binning or the file format changes, so old caches are not reused.
CACHE_VERSION = 1


class FrameCache:
    """One directory of cached frames for a (dataset, split, parameters) triple."""

    def __init__(self, directory: str | os.PathLike[str], params: dict) -> None:
        self.directory = Path(directory)
        self.params = params
        self._ready = False

    @classmethod
    def for_dataset(
        cls,
        root: str | os.PathLike[str],
        dataset: str,
        split: str,
        spec: FrameSpec,
        sensor_size: Sequence[int],
        fingerprint: str,
    ) -> FrameCache:
        """The cache for one dataset split under ``root/cache``."""
        params = {
            "version": CACHE_VERSION,
            "dataset": dataset,
            "split": split,
            "frames": asdict(spec),
            "sensor_size": [int(s) for s in sensor_size],
            "fingerprint": fingerprint,
        }
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        return cls(Path(root) / "cache" / dataset / split / key, params)

    def path(self, index: int) -> Path:
        return self.directory / f"{int(index)}.npy"

    def get(self, index: int) -> np.ndarray | None:
        """The cached counts of sample ``index``, or ``None`` on a miss."""
        path = self.path(index)
        try:
            return _read_npy(path)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError, SyntaxError) as err:
            raise DatasetError(
                f"{path}: unreadable cached frames ({err}); delete {self.directory} to rebuild"
            ) from err

    def put(self, index: int, counts: np.ndarray) -> None:
        """Store the counts of sample ``index`` (atomically: temp file, then rename)."""
        if not self._ready:
            self.directory.mkdir(parents=True, exist_ok=True)
            meta = self.directory / "params.json"
            if not meta.exists():
                _atomic_write(meta, json.dumps(self.params, indent=2, sort_keys=True).encode())
            self._ready = True
        compact = _compact(counts)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, compact, allow_pickle=False)
            os.replace(tmp, self.path(index))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def fingerprint_files(paths: Iterable[str | os.PathLike[str]], base: str | os.PathLike[str]) -> str:
    """Hash of the sample files' relative paths and sizes: the dataset's identity for the cache."""
    digest = hashlib.sha256()
    base = Path(base)
    for p in paths:
        p = Path(p)
        rel = p.relative_to(base) if p.is_relative_to(base) else p
        size = p.stat().st_size if p.exists() else -1
        digest.update(f"{rel.as_posix()}\0{size}\n".encode())
    return digest.hexdigest()[:16]


def _read_npy(path: Path) -> np.ndarray:
    """``np.load`` for the files :meth:`FrameCache.put` writes, without re-parsing each header.

    ``np.load`` spends most of its time evaluating the header text; a cache directory holds a
    handful of distinct headers, so they are parsed once (:func:`_npy_header`).
    """
    with open(path, "rb") as fh:
        blob = fh.read()
    if blob[:8] != b"\x93NUMPY\x01\x00":
        return np.load(io.BytesIO(blob), allow_pickle=False)
    start = 10 + int.from_bytes(blob[8:10], "little")
    dtype, shape = _npy_header(blob[10:start])
    count = int(np.prod(shape))
    if len(blob) - start != count * dtype.itemsize:
        raise ValueError(
            f"truncated: {len(blob) - start} bytes of data, expected {count * dtype.itemsize}"
        )
    data = np.frombuffer(blob, dtype=dtype, count=count, offset=start)
    return data.reshape(shape)


@functools.lru_cache(maxsize=64)
def _npy_header(text: bytes) -> tuple[np.dtype, tuple[int, ...]]:
    header = ast.literal_eval(text.decode("latin1"))
    if header.get("fortran_order") or not isinstance(header.get("shape"), tuple):
        raise ValueError(f"unexpected .npy header {header}")
    return np.dtype(header["descr"]), header["shape"]


def _compact(counts: np.ndarray) -> np.ndarray:
    if counts.size == 0:
        return counts.astype(np.uint8)
    top = int(counts.max())
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return counts.astype(dtype, copy=False)
    return counts.astype(np.int64)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
