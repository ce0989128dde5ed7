"""What a run leaves in its directory: ``config.yaml``, ``metrics.csv``, ``summary.json``, plots.

``runs/NAME/``: ``config.yaml`` (the resolved :class:`~neurogate.train.TrainConfig`),
``metrics.csv`` (one row per epoch, rewritten from the checkpoint's history so it always agrees
with ``last.pt``), ``last.pt`` / ``best.pt``, ``summary.json``, ``curves.png`` (loss and accuracy)
and ``raster.png`` (spikes of the last hidden LIF layer on one test sample).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .config import TRAJECTORY_FIELDS, TrainConfig, config_from_dict

__all__ = ["check_resume_config", "make_plots", "run_directory", "write_json", "write_metrics"]


def run_directory(cfg: TrainConfig) -> Path:
    """The run's directory: ``cfg.out``, or ``runs_dir/<model>-<dataset>-<timestamp>``.

    Refuses (:class:`ConfigError`) an existing ``out`` without ``resume`` and a ``resume``
    without a ``last.pt`` to resume from.
    """
    if cfg.resume:
        if cfg.out is None:
            raise ConfigError("resume needs the run directory: pass --out RUN_DIR (or out=...)")
        out = Path(cfg.out)
        if not (out / "last.pt").is_file():
            raise ConfigError(f"nothing to resume: {out / 'last.pt'} does not exist")
        return out
    if cfg.out is not None:
        out = Path(cfg.out)
        if out.exists():
            raise ConfigError(f"run directory {out} already exists; pass --resume to continue "
                              "it, or choose another --out")
        return out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(cfg.runs_dir) / f"{cfg.model}-{cfg.dataset}-{stamp}"
    n = 1
    while out.exists():
        n += 1
        out = Path(cfg.runs_dir) / f"{cfg.model}-{cfg.dataset}-{stamp}-{n}"
    return out


def check_resume_config(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """A resumed run must keep the settings that decide its weights (``TRAJECTORY_FIELDS``)."""
    old = config_from_dict({k: v for k, v in saved.items() if k in TRAJECTORY_FIELDS})
    diff = [f"{k}: run has {getattr(old, k)!r}, now {getattr(cfg, k)!r}"
            for k in TRAJECTORY_FIELDS if getattr(old, k) != getattr(cfg, k)]
    if diff:
        raise ConfigError("cannot resume with different settings (" + "; ".join(diff) +
                          "); drop those options to continue the run as it was")


def write_metrics(history: list[dict[str, Any]], path: Path) -> None:
    """Write the per-epoch rows as CSV (atomically)."""
    if not history:
        return
    columns: list[str] = []
    for row in history:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    _atomic_text(path, buf.getvalue())


def write_json(data: dict[str, Any], path: Path) -> None:
    _atomic_text(path, json.dumps(data, indent=2, default=str) + "\n")


def make_plots(run_dir: Path, spikes: torch.Tensor | None) -> list[str]:
    """``curves.png`` and ``raster.png`` through :mod:`neurogate.viz`; returns the files made.

    Plots are a convenience: a missing :mod:`neurogate.viz` or a plotting failure warns and
    the run still succeeds.
    """
    try:
        from .. import viz
    except ImportError as err:
        warnings.warn(f"no plots: neurogate.viz is unavailable ({err})", stacklevel=2)
        return []
    made = []
    jobs = [("curves.png", lambda p: viz.plot_training_curves(run_dir / "metrics.csv", p))]
    if spikes is not None:
        jobs.append(("raster.png", lambda p: viz.plot_raster(spikes, p)))
    for name, job in jobs:
        try:
            job(run_dir / name)
            made.append(name)
        except Exception as err:  # noqa: BLE001  (a plot must not fail a finished run)
            warnings.warn(f"could not write {name}: {err}", stacklevel=2)
    try:
        import matplotlib.pyplot as plt

        plt.close("all")
    except ImportError:
        pass
    return made


def _fmt(v: Any) -> Any:
    return repr(v) if isinstance(v, float) else v  # shortest text that reads back exactly


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
