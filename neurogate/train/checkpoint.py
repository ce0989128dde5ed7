"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and primitive containers only:

``format``, ``version``; ``model_name``, ``model_config`` (the registry config, enough for
:func:`neurogate.models.create` to rebuild the model); ``model`` (state dict); ``optimizer``,
``scheduler``; ``epoch`` and ``batch`` (the next batch to run in that epoch: a checkpoint taken at
the end of epoch ``e`` says ``epoch = e + 1, batch = 0``); ``global_step``; ``rng`` (torch, CUDA,
numpy and Python ``random`` states as tensors and lists); ``data`` (the data order: ``seed``,
``epoch``, ``position``); ``train_config``; ``progress`` (the epoch's running sums, elapsed time)
and ``history`` (one metrics row per finished epoch).

Example:
    >>> ckpt = load_checkpoint("runs/lif-convnet-event-digits-20250101-120000/best.pt")
    >>> model = load_model("runs/.../best.pt")          # rebuilt from the registry, weights loaded
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError

__all__ = [
    "FORMAT",
    "load_checkpoint",
    "load_model",
    "restore_model",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT = "neurogate-checkpoint"
VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save`` ``state`` to a temporary file in ``path``'s directory, then rename it.

    A run killed while saving leaves the previous checkpoint intact.
    """
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and primitives only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a neurogate checkpoint (no format={FORMAT!r})")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt['version']} is newer than this "
                              f"neurogate understands ({VERSION}); upgrade neurogate")
    ckpt["path"] = str(path)
    return ckpt


def restore_model(model: nn.Module, ckpt: dict[str, Any]) -> None:
    """Load the checkpoint's weights into ``model``.

    Raises :class:`CheckpointError` naming the model in the checkpoint and every parameter whose
    shape differs, or that one side lacks, when the checkpoint is of another model.
    """
    saved: dict[str, torch.Tensor] = ckpt["model"]
    own = model.state_dict()
    problems = [
        f"{k}: checkpoint {list(saved[k].shape)} vs model {list(own[k].shape)}"
        for k in own if k in saved and saved[k].shape != own[k].shape
    ]
    problems += [f"{k}: missing from the checkpoint" for k in own if k not in saved]
    problems += [f"{k}: not in the model" for k in saved if k not in own]
    if problems:
        name = ckpt.get("model_name", "?")
        mine = getattr(model, "config", {}).get("name", type(model).__name__)
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} in all)"
                                          if len(problems) > 8 else "")
        raise CheckpointError(
            f"{ckpt.get('path', 'checkpoint')} holds model {name!r} "
            f"({_describe(ckpt.get('model_config', {}))}), which does not fit this {mine!r} "
            f"model: {shown}. Build the model with the checkpoint's model_config "
            "(neurogate.train.load_model does)"
        )
    model.load_state_dict(saved)


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
               ) -> nn.Module:
    """Rebuild the checkpoint's model from the registry and load its weights (eval mode)."""
    from .. import models

    ckpt = load_checkpoint(path, map_location)
    config = dict(ckpt.get("model_config") or {})
    name = config.pop("name", None)
    if name is None:
        raise CheckpointError(f"{path}: no registry model config; build the model yourself and "
                              "call restore_model(model, load_checkpoint(path))")
    model = models.create(name, **config)
    restore_model(model, ckpt)
    return model.eval()


def rng_state() -> dict[str, Any]:
    """Every random generator's state, as tensors and lists (``weights_only``-loadable)."""
    mt_name, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss), "name": str(mt_name)},
        "python": {"version": int(py_version), "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _describe(config: dict[str, Any]) -> str:
    keys = [k for k in ("channels", "hidden", "num_classes", "in_shape") if k in config]
    return ", ".join(f"{k}={config[k]}" for k in keys) or "no config"
