"""Descriptors on disk: one versioned ``descriptor.json`` plus one ``arrays.npz``, for every target.

Principle 8 of the architecture: descriptors are data. The JSON carries ``target`` and
``schema_version`` next to the target's fields; the arrays load with ``allow_pickle=False``. Each
target builds its objects from ``(meta, arrays)`` and validates them against its limits.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = ["read_descriptor", "write_descriptor"]


def write_descriptor(directory: str | Path, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (which must hold ``target`` and ``schema_version``) and ``arrays``."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / "descriptor.json").write_text(json.dumps(meta, indent=1))
    np.savez(path / "arrays.npz", **arrays)
    return path


def read_descriptor(directory: str | Path, target: str, schema_version: int,
                    fix: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a descriptor of ``target``; a clear :class:`ConfigError` otherwise.

    ``fix`` (how to get a good descriptor) ends the message of a corrupt or unreadable file.
    """
    path = Path(directory)
    try:
        meta = json.loads((path / "descriptor.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path / 'descriptor.json'}: cannot read the descriptor ({err})") from None
    if not isinstance(meta, dict) or meta.get("target") != target or meta.get("schema_version") != schema_version:
        got = meta if not isinstance(meta, dict) else (meta.get("target"), meta.get("schema_version"))
        raise ConfigError(f"{path}: not a {target} descriptor of schema version {schema_version} "
                          f"(target, schema_version = {got!r})")
    try:
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(f"{path / 'arrays.npz'}: corrupt or unreadable descriptor arrays ({err}); {fix}") from None
    return meta, arrays
