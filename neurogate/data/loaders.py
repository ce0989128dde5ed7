"""Tonic-backed loaders for N-MNIST, SHD, SSC, DVS Gesture, CIFAR10-DVS and N-Caltech101.

File parsing is tonic's own (its dataset classes and ``tonic.io`` readers). The thin
subclasses here change three things:

* **Files placed by hand are accepted.** tonic reads a dataset only when its downloaded archive
  is present *and* the full file count is there (10 000 ``.bin`` files for N-MNIST, 100 ``.npy``
  for DVS Gesture...). Here the extracted files alone are enough, and an archive placed at the
  spot tonic downloads to is extracted. No md5 is computed on files you provide (tonic checks
  md5 only on what it downloads itself).
* **Nothing is downloaded unless asked** (``download=True``); a missing dataset raises
  :class:`DatasetError` naming the directory and the files to put there.
* **Bad files are named.** A truncated or corrupt file raises :class:`DatasetError` with its
  path, and sample order is sorted by path so it does not depend on the filesystem.

Directories are tonic's (``<root>/<tonic class name>/...``), so a tonic download directory can
be passed as ``root``.

Example:
    >>> from neurogate.data import load
    >>> ds = load("dvs-gesture", "test", root="datasets", time_steps=20)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tonic.datasets as td
from tonic.download_utils import extract_archive

from ..errors import ConfigError, DatasetError
from .cache import fingerprint_files
from .registry import register_dataset

__all__ = ["NMNIST", "SHD", "SSC", "DVSGesture", "CIFAR10DVS", "NCALTECH101"]

#: Share of each class used for training where the dataset has no official split.
TRAIN_FRACTION = 0.9


class _LocalFiles:
    """Mixin over a tonic dataset class (listed first, so its methods win)."""

    dataset = ""  # registry name, for messages
    file_format = ""  # what a sample file is, for messages
    pattern = "**/*"  # glob under location/folder_name that shows the files are there
    where = ""  # the expected layout, relative to the tonic location
    location_on_system: str
    folder_name: str
    data: list
    targets: list

    def _check_exists(self) -> bool:
        if self._files_present():
            return True
        for name in self._archives():
            archive = Path(self.location_on_system, name)
            if archive.is_file():
                try:
                    extract_archive(str(archive), self.location_on_system)
                except Exception as err:
                    raise DatasetError(f"{archive}: cannot extract ({err}); {self.where}") from err
        return self._files_present()

    def _archives(self) -> list[str]:
        return [getattr(self, "filename", "")]

    def _files_present(self) -> bool:
        return any(Path(self.location_on_system, self.folder_name).glob(self.pattern))

    def download(self) -> None:
        if not getattr(self, "_allow_download", False):
            raise DatasetError(self.absent_message())
        try:
            super().download()  # type: ignore[misc]
        except Exception as err:
            raise DatasetError(
                f"downloading {self.dataset} failed ({type(err).__name__}: {err}). "
                + self.absent_message()
            ) from err

    def absent_message(self) -> str:
        loc = Path(self.location_on_system).resolve()
        return (
            f"{self.dataset}: no data found in {loc}. Put the files there as {self.where} "
            f"(see datasets/cards/{self.dataset}.md), or pass download=True to fetch them."
        )

    def sample_name(self, index: int) -> str:
        return str(self.data[index])

    @property
    def fingerprint(self) -> str:
        return fingerprint_files(self.data, self.location_on_system)

    def _check_sample(self, index: int) -> None:
        """Format-specific checks of sample ``index`` before tonic parses it."""

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        name = self.sample_name(index)
        self._check_sample(index)
        try:
            events, target = super().__getitem__(index)  # type: ignore[misc]
        except DatasetError:
            raise
        except Exception as err:
            raise DatasetError(
                f"{name}: not a valid {self.file_format} file ({type(err).__name__}: {err})"
            ) from err
        return events, int(target)

    def _sort_samples(self, *extra: str) -> None:
        order = sorted(range(len(self.data)), key=lambda i: str(self.data[i]))
        for attr in ("data", "targets", *extra):
            values = getattr(self, attr)
            setattr(self, attr, [values[i] for i in order])

    def _split_by_class(self, split: str) -> None:
        """Deterministic split: per class, the first TRAIN_FRACTION of files (by name) train."""
        if split == "all":
            return
        keep = []
        for label in sorted(set(self.targets)):
            idx = [i for i, t in enumerate(self.targets) if t == label]
            n_train = int(round(len(idx) * TRAIN_FRACTION))
            keep += idx[:n_train] if split == "train" else idx[n_train:]
        keep.sort()
        self.data = [self.data[i] for i in keep]
        self.targets = [self.targets[i] for i in keep]


def _check_40bit(path: str) -> None:
    size = Path(path).stat().st_size
    if size % 5:
        raise DatasetError(
            f"{path}: truncated or corrupt: {size} bytes is not a whole number of 5-byte "
            f"(40-bit) events ({size % 5} trailing bytes)"
        )


class NMNIST(_LocalFiles, td.NMNIST):
    dataset = "nmnist"
    file_format = "N-MNIST 40-bit event (.bin)"
    pattern = "*/*.bin"
    where = "Train/<digit>/<id>.bin and Test/<digit>/<id>.bin (or train.zip / test.zip there)"

    def __init__(self, save_to: str, train: bool = True, download: bool = False) -> None:
        self._allow_download = download
        super().__init__(save_to, train=train)

    def _check_sample(self, index: int) -> None:
        _check_40bit(self.data[index])


class NCALTECH101(_LocalFiles, td.NCALTECH101):
    dataset = "ncaltech101"
    file_format = "N-Caltech101 40-bit event (.bin)"
    pattern = "Caltech101/*/*.bin"  # tonic's base class resets folder_name to ""
    where = "Caltech101/<class>/image_<id>.bin (or N-Caltech101-archive.zip there)"
    sensor_size = (240, 180, 2)  # recordings vary; tonic shifts each to start at x = y = 0

    def __init__(self, save_to: str, split: str = "train", download: bool = False) -> None:
        self._allow_download = download
        super().__init__(save_to)
        self.classes = sorted(set(self.targets))
        index = {name: i for i, name in enumerate(self.classes)}
        self.targets = [index[name] for name in self.targets]
        self._sort_samples()
        self._split_by_class(split)

    def _archives(self) -> list[str]:
        return [self.filename, self.data_filename]

    def _check_sample(self, index: int) -> None:
        _check_40bit(self.data[index])


class DVSGesture(_LocalFiles, td.DVSGesture):
    dataset = "dvs-gesture"
    file_format = "DVS Gesture .npy ([N, 4] array: x, y, p, t in ms)"
    pattern = "*/*.npy"
    where = (
        "ibmGestureTrain/user<NN>_<lighting>/<label>.npy and ibmGestureTest/... "
        "(or ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz there)"
    )

    def __init__(self, save_to: str, train: bool = True, download: bool = False) -> None:
        self._allow_download = download
        super().__init__(save_to, train=train)
        self._sort_samples("users", "lighting")


class CIFAR10DVS(_LocalFiles, td.CIFAR10DVS):
    dataset = "cifar10-dvs"
    file_format = "AEDAT4 (.aedat4)"
    pattern = "*/*.aedat4"
    where = "<class>/<name>.aedat4 for class in airplane ... truck (or CIFAR10DVS.zip there)"

    def __init__(self, save_to: str, split: str = "train", download: bool = False) -> None:
        if importlib.util.find_spec("aedat") is None:
            raise ConfigError(
                "reading CIFAR10-DVS (AEDAT4) needs the aedat package: pip install aedat"
            )
        self._allow_download = download
        super().__init__(save_to)
        self.classes = sorted(td.CIFAR10DVS.classes, key=td.CIFAR10DVS.classes.get)
        self._sort_samples()
        self._split_by_class(split)

    def _archives(self) -> list[str]:
        return [self.filename, *self.data_filename]


class _HSDFile(_LocalFiles):
    """SHD / SSC: one HDF5 file per split (``spikes/times`` in s, ``spikes/units``, ``labels``)."""

    file_format = "Heidelberg spiking HDF5"
    required = ("spikes/times", "spikes/units", "labels", "extra/keys", "extra/speaker")
    data_filename: str

    def _files_present(self) -> bool:
        return Path(self.location_on_system, self.data_filename).is_file()

    def _open(self, init: Callable[[], None]) -> None:
        try:
            init()
        except (DatasetError, ConfigError):
            raise
        except Exception as err:
            path = Path(self.location_on_system, self.data_filename)
            raise DatasetError(_h5_problem(path) or f"{path}: {err}") from err
        path = Path(self.location_on_system, self.data_filename)
        problem = _h5_problem(path)
        if problem:
            raise DatasetError(problem)
        with h5py.File(path, "r") as f:
            self.targets = [int(v) for v in f["labels"][()]]
        self.classes = [k.decode() if isinstance(k, bytes) else str(k) for k in self.classes]
        self.data = [path]

    def __len__(self) -> int:
        return len(self.targets)

    def sample_name(self, index: int) -> str:
        return f"{self.data[0]} (sample {index})"


def _h5_problem(path: Path) -> str | None:
    """What is wrong with a Heidelberg HDF5 file, or None if its layout is right."""
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in _HSDFile.required if k not in f]
            if missing:
                return (
                    f"{path}: missing HDF5 key(s) {missing}; a Heidelberg spiking file needs "
                    f"{list(_HSDFile.required)}"
                )
            n = {k: len(f[k]) for k in ("spikes/times", "spikes/units", "labels")}
            if len(set(n.values())) > 1:
                return f"{path}: datasets disagree on the number of samples: {n}"
    except OSError as err:
        return f"{path}: not a readable HDF5 file (truncated or corrupt?): {err}"
    return None


class SHD(_HSDFile, td.SHD):
    dataset = "shd"
    where = "shd_train.h5 and shd_test.h5 (or shd_train.h5.zip / shd_test.h5.zip)"

    def __init__(self, save_to: str, train: bool = True, download: bool = False) -> None:
        self._allow_download = download
        self._open(lambda: td.SHD.__init__(self, save_to, train=train))


class SSC(_HSDFile, td.SSC):
    dataset = "ssc"
    where = "ssc_train.h5, ssc_valid.h5 and ssc_test.h5 (or the .h5.zip archives)"

    def __init__(self, save_to: str, split: str = "train", download: bool = False) -> None:
        self._allow_download = download
        self._open(lambda: td.SSC.__init__(self, save_to, split=split))


def _state_of(folder: str, patterns: dict[str, str]) -> Callable[[Path], tuple[str, tuple]]:
    def state(root: Path) -> tuple[str, tuple[str, ...]]:
        base = Path(root, folder)
        found = tuple(s for s, pat in patterns.items() if any(base.glob(pat)))
        return ("present" if found else "absent"), found

    return state


def _opener(make: Callable[[str, str, bool], Any]) -> Callable[..., Any]:
    def opener(root: Path, split: str, download: bool, **options: Any) -> Any:
        if options:
            raise ConfigError(f"unexpected option(s) {sorted(options)}")
        try:
            return make(str(root), split, download)
        except (DatasetError, ConfigError):
            raise
        except Exception as err:
            raise DatasetError(f"{root}: cannot index the dataset files ({err})") from err

    return opener


_VISION = {"default_time_steps": 10}
register_dataset(
    "nmnist",
    _opener(lambda r, s, d: NMNIST(r, train=s == "train", download=d)),
    sensor_size=(34, 34, 2),
    classes=[str(i) for i in range(10)],
    description="N-MNIST: MNIST digits recorded by an ATIS on saccades (34x34, 60k/10k)",
    folder="NMNIST",
    layout=NMNIST.where,
    state=_state_of("NMNIST", {"train": "Train/*/*.bin", "test": "Test/*/*.bin"}),
    card="datasets/cards/nmnist.md",
    **_VISION,
)
register_dataset(
    "shd",
    _opener(lambda r, s, d: SHD(r, train=s == "train", download=d)),
    sensor_size=(700, 1, 1),
    description="Spiking Heidelberg Digits: spoken digits through a cochlea model (700 ch)",
    folder="SHD",
    layout=SHD.where,
    state=_state_of("SHD", {"train": "shd_train.h5", "test": "shd_test.h5"}),
    card="datasets/cards/shd.md",
    default_time_steps=100,
)
register_dataset(
    "ssc",
    _opener(lambda r, s, d: SSC(r, split=s, download=d)),
    sensor_size=(700, 1, 1),
    splits=("train", "valid", "test"),
    description="Spiking Speech Commands: 35 spoken commands through a cochlea model (700 ch)",
    folder="SSC",
    layout=SSC.where,
    state=_state_of("SSC", {s: f"ssc_{s}.h5" for s in ("train", "valid", "test")}),
    card="datasets/cards/ssc.md",
    default_time_steps=100,
)
register_dataset(
    "dvs-gesture",
    _opener(lambda r, s, d: DVSGesture(r, train=s == "train", download=d)),
    sensor_size=(128, 128, 2),
    classes=td.DVSGesture.classes,
    description="IBM DVS Gesture: 11 hand and arm gestures, DVS128 (tonic's .npy release)",
    folder="DVSGesture",
    layout=DVSGesture.where,
    state=_state_of(
        "DVSGesture", {"train": "ibmGestureTrain/*/*.npy", "test": "ibmGestureTest/*/*.npy"}
    ),
    card="datasets/cards/dvs-gesture.md",
    default_time_steps=20,
)
register_dataset(
    "cifar10-dvs",
    _opener(lambda r, s, d: CIFAR10DVS(r, split=s, download=d)),
    sensor_size=(128, 128, 2),
    splits=("train", "test", "all"),
    classes=sorted(td.CIFAR10DVS.classes, key=td.CIFAR10DVS.classes.get),
    description="CIFAR10-DVS: CIFAR-10 images moved before a DVS128 (AEDAT4; 90/10 split)",
    folder="CIFAR10DVS",
    layout=CIFAR10DVS.where,
    state=_state_of("CIFAR10DVS", dict.fromkeys(("train", "test", "all"), "*/*.aedat4")),
    card="datasets/cards/cifar10-dvs.md",
    **_VISION,
)
register_dataset(
    "ncaltech101",
    _opener(lambda r, s, d: NCALTECH101(r, split=s, download=d)),
    sensor_size=NCALTECH101.sensor_size,
    splits=("train", "test", "all"),
    description="N-Caltech101: Caltech101 images recorded by an ATIS on saccades (90/10 split)",
    folder="NCALTECH101",
    layout=NCALTECH101.where,
    state=_state_of("NCALTECH101", dict.fromkeys(("train", "test", "all"), "Caltech101/*/*.bin")),
    card="datasets/cards/ncaltech101.md",
    **_VISION,
)
