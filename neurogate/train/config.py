"""``TrainConfig``: every option of a training run, the same fields as ``neurogate train``'s flags.

A YAML config file holds a mapping whose keys are :class:`TrainConfig` field names
(``batch_size``, not ``batch-size``; ``model_options`` is a mapping of model options). An unknown
key raises :class:`~neurogate.errors.ConfigError` naming the key and the nearest valid one.

Example:
    >>> cfg = load_config("configs/event-digits.yaml", epochs=2)     # file, then overrides
    >>> cfg.batch_size
    64
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = [
    "SCHEDULES",
    "TRAJECTORY_FIELDS",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "save_config",
]

SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass
class TrainConfig:
    """Options of :func:`neurogate.train.fit` and ``neurogate train``.

    Attributes:
        model: registered model name (``neurogate.models.list()``).
        dataset: registered dataset name (``neurogate.data.dataset_names()``).
        epochs: passes over the training split.
        batch_size: the global batch (split evenly across processes under torchrun); the last
            incomplete batch of each epoch is dropped (each epoch is a new permutation).
        lr: peak learning rate of Adam.
        time_steps: frames per sample ``T``.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        seed: seeds the model's initialisation and the data order (epoch ``e`` shuffles with
            ``seed`` and ``e`` only, so runs and resumed runs see the same batches).
        out: the run directory; ``None``: ``runs_dir/<model>-<dataset>-<timestamp>``.
        resume: continue the run in ``out`` from its ``last.pt``.
        root: dataset root (downloads, generated data and the frame cache).
        runs_dir: where auto-named runs go.
        schedule: ``"onecycle"`` (warm up over the first 20 % of steps, then cosine down),
            ``"cosine"`` (cosine from ``lr`` to 0) or ``"constant"``; stepped every batch.
        weight_decay: Adam's L2 penalty.
        model_options: overrides of the model's registered options.
        data_options: extra options of :func:`neurogate.data.load` (binning: ``time_window``,
            ``t_start``, ``truncate``, ``channels``, ``binary``; or the dataset's own options).
        checkpoint_every: also write ``last.pt`` every this many batches (0: epoch ends only).
        eval_batch_size: batch size of the test pass.
        num_workers: DataLoader worker processes.
        train_samples, test_samples: use only the first ``n`` samples of a split (quick runs).
        threads: CPU threads for PyTorch and the numba kernels (``None``: their defaults). On a
            busy machine 1 thread per process can be much faster than spinning OpenMP threads.
        progress: show a progress bar.
        plots: write the PNG plots at the end.
        hw_aware: ``"crossbar:<device>"`` (rram, pcm, ideal): hardware-aware training, each Linear/Conv
            weight perturbed in training by the device's noise (:mod:`neurogate.train.hwaware`).
        hw_aware_noise: multiplies the device's programming and read noise in hardware-aware training
            (train for the noise the chip will have, e.g. ``neurogate simulate --noise-scale``).
    """

    model: str = "lif-convnet"
    dataset: str = "event-digits"
    epochs: int = 4
    batch_size: int = 64
    lr: float = 5e-3
    time_steps: int = 8
    device: str = "auto"
    seed: int = 0
    out: str | None = None
    resume: bool = False
    root: str = "datasets"
    runs_dir: str = "runs"
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    model_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int = 20
    eval_batch_size: int = 256
    num_workers: int = 0
    train_samples: int | None = None
    test_samples: int | None = None
    threads: int | None = None
    progress: bool = True
    plots: bool = True
    hw_aware: str | None = None
    hw_aware_noise: float = 1.0

    def __post_init__(self) -> None:
        if self.hw_aware is not None:
            from .hwaware import parse_hw_aware

            parse_hw_aware(self.hw_aware, self.hw_aware_noise)
        elif self.hw_aware_noise != 1.0:
            raise ConfigError("hw_aware_noise is set without hw_aware; add hw_aware: crossbar:<device>")
        positive = ("epochs", "batch_size", "time_steps", "eval_batch_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "num_workers"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.threads is not None and int(self.threads) < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}."
                              f"{_hint(str(self.schedule), list(SCHEDULES))}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        for name in ("model_options", "data_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a mapping, got {getattr(self, name)!r}")
        reserved = {"root", "time_steps", "split"} & set(self.data_options)
        if reserved:
            raise ConfigError(f"data_options: set {sorted(reserved)} with the config's own fields, "
                              f"not in data_options")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Fields that decide the weights a run produces; a resumed run must keep them.
TRAJECTORY_FIELDS = ("model", "dataset", "epochs", "batch_size", "lr", "time_steps", "seed",
                     "schedule", "weight_decay", "model_options", "data_options", "train_samples",
                     "test_samples", "hw_aware", "hw_aware_noise")


def config_from_dict(values: dict[str, Any], base: TrainConfig | None = None,
                     source: str = "config") -> TrainConfig:
    """``base`` (default: the defaults) updated by ``values``; unknown keys raise ConfigError."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in values:
        if key not in names:
            raise ConfigError(f"{source}: unknown key {key!r}.{_hint(str(key), names)} "
                              f"Valid keys: {', '.join(names)}")
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    clean = {k: _coerce(k, v, str(types[k]), source) for k, v in values.items()}
    return dataclasses.replace(base or TrainConfig(), **clean)


def load_config(path: str | os.PathLike[str] | None = None, base: TrainConfig | None = None,
                **overrides: Any) -> TrainConfig:
    """The config in YAML file ``path`` (on top of ``base``), then ``overrides`` on top."""
    cfg = base or TrainConfig()
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError as err:
            raise ConfigError(f"config file {path} does not exist") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of TrainConfig fields, got "
                              f"{type(values).__name__}")
        cfg = config_from_dict(values, cfg, source=str(path))
    return config_from_dict(overrides, cfg, source="overrides") if overrides else cfg


def save_config(cfg: TrainConfig, path: str | os.PathLike[str]) -> None:
    """Write ``cfg`` as YAML (the keys :func:`load_config` reads)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


#: Names other tools use for these fields, for the "did you mean" hint.
_ALIASES = {"learning_rate": "lr", "n_epochs": "epochs", "num_epochs": "epochs",
            "batchsize": "batch_size", "bs": "batch_size", "timesteps": "time_steps",
            "steps": "time_steps", "num_steps": "time_steps", "output": "out",
            "output_dir": "out", "data": "dataset", "arch": "model"}


def _hint(word: str, choices: list[str]) -> str:
    if _ALIASES.get(word) in choices:
        return f" Did you mean {_ALIASES[word]!r}?"
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.4)
    return f" Did you mean {match[0]!r}?" if match else ""


def _coerce(key: str, value: Any, type_name: str, source: str) -> Any:
    """Check a YAML value against the field's type (ints for float fields are fine)."""
    if value is None:
        if "None" in type_name:
            return None
        raise ConfigError(f"{source}: {key} must not be empty")
    base = type_name.split("|")[0].strip()
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }.get(base, True)
    if base.startswith("dict"):
        ok = isinstance(value, dict)
    if not ok:
        raise ConfigError(f"{source}: {key} must be {base}, got {value!r}")
    return float(value) if base == "float" else value
