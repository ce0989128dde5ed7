"""Event arrays: numpy structured arrays with tonic's field names, and their validation.

An event stream is a 1-D numpy structured array sorted by time. Vision sensors (DVS, ATIS)
use the fields ``t, x, y, p``; audio sensors (cochlea models such as SHD/SSC) use ``t, x, p``,
with ``x`` the channel. These are the field names tonic uses, so arrays pass freely between
tonic transforms and neurogate. ``t`` is an integer timestamp in microseconds (tonic's unit),
``p`` a polarity of 0 (OFF) or 1 (ON).

A sensor size is tonic's ``(W, H, P)``: width, height, number of polarities. Audio sensors
have ``H == 1`` (SHD is ``(700, 1, 1)``).

Example:
    >>> ev = make_events(t=[0, 5, 9], x=[1, 2, 3], y=[0, 0, 1], p=[1, 0, 1])
    >>> ev.dtype.names
    ('t', 'x', 'y', 'p')
    >>> validate_events(ev, sensor_size=(4, 2, 2), source="demo") is ev  # valid: returned as is
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DatasetError

__all__ = [
    "VISION_DTYPE",
    "AUDIO_DTYPE",
    "SensorSize",
    "make_events",
    "validate_events",
    "as_events",
    "is_audio",
]

SensorSize = tuple[int, int, int]

#: Vision events: tonic's ``events_struct`` types (int16 coordinates, int64 us, bool polarity).
VISION_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.bool_)])
#: Audio events: tonic's HSD field names (``t, x, p``), ``x`` being the channel.
AUDIO_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("p", np.bool_)])


def is_audio(sensor_size: Sequence[int]) -> bool:
    """True for a one-row sensor ``(W, 1, P)``: events carry no ``y`` and frames are ``[T, C]``."""
    return int(sensor_size[1]) == 1


def make_events(
    *,
    t: Any,
    x: Any,
    y: Any | None = None,
    p: Any | None = None,
) -> np.ndarray:
    """Build an event array with tonic's field names and neurogate's canonical dtype.

    With ``y`` the result has :data:`VISION_DTYPE` and ``p`` is required; without ``y`` it has
    :data:`AUDIO_DTYPE` and ``p`` defaults to 1 (tonic's convention for SHD/SSC). Values are
    checked before they are cast, so a polarity of 2 or an out-of-range coordinate raises
    instead of being wrapped or turned into ``True``.

    Example:
        >>> make_events(t=[0, 10], x=[3, 4])["p"]
        array([ True,  True])
    """
    t_arr = np.asarray(t).reshape(-1)
    x_arr = np.asarray(x).reshape(-1)
    n = t_arr.shape[0]
    fields: dict[str, np.ndarray] = {"t": t_arr, "x": x_arr}
    if y is not None:
        fields["y"] = np.asarray(y).reshape(-1)
        if p is None:
            raise ConfigError("make_events: vision events (with y) need p (0 = OFF, 1 = ON)")
    fields["p"] = np.ones(n, dtype=np.int64) if p is None else np.asarray(p).reshape(-1)
    for name, values in fields.items():
        if values.shape[0] != n:
            raise ConfigError(
                f"make_events: field {name!r} has {values.shape[0]} values but t has {n}"
            )
    dtype = VISION_DTYPE if y is not None else AUDIO_DTYPE
    for name, values in fields.items():
        _check_castable(name, values, dtype[name], "make_events")
    out = np.empty(n, dtype=dtype)
    for name, values in fields.items():
        out[name] = values
    return out


def as_events(events: np.ndarray, source: str = "events") -> np.ndarray:
    """Convert any structured array with tonic's field names to neurogate's canonical dtype.

    Field order and integer widths are normalised (``t`` int64, ``x``/``y`` int16, ``p`` bool);
    values that would change in the cast (a polarity of 2, ``x`` beyond int16, a fractional
    timestamp) raise :class:`DatasetError` naming ``source``.
    """
    names = _field_names(events, source)
    missing = [f for f in ("t", "x", "p") if f not in names]
    if missing:
        raise DatasetError(f"{source}: missing event field(s) {missing}; fields are {names}")
    dtype = VISION_DTYPE if "y" in names else AUDIO_DTYPE
    if events.dtype == dtype:
        return events
    out = np.empty(events.shape[0], dtype=dtype)
    for name in dtype.names:
        values = np.asarray(events[name])
        _check_castable(name, values, dtype[name], source)
        out[name] = values
    return out


def validate_events(
    events: np.ndarray, sensor_size: Sequence[int], source: str = "events"
) -> np.ndarray:
    """Check an event array against a sensor; raise :class:`DatasetError` naming ``source``.

    Checked: the fields ``t, x, p`` (and ``y`` for a sensor with ``H > 1``) exist; timestamps
    are non-negative, finite and sorted (non-decreasing); ``0 <= x < W``, ``0 <= y < H``;
    polarities are 0 or 1. The message says how many events are bad and the first bad index
    and value. Returns ``events`` unchanged so calls can be chained.

    Example:
        >>> ev = make_events(t=[0, 3], x=[0, 9], y=[0, 0], p=[0, 1])
        >>> validate_events(ev, (8, 8, 2), source="sample 3")
        Traceback (most recent call last):
        ...
        neurogate.errors.DatasetError: sample 3: 1 of 2 events have x outside [0, 8) ...
    """
    width, height, _ = _sensor(sensor_size)
    names = _field_names(events, source)
    required = ["t", "x", "p"] + ([] if height == 1 else ["y"])
    missing = [f for f in required if f not in names]
    if missing:
        raise DatasetError(
            f"{source}: missing event field(s) {missing}; fields are {names} "
            f"(sensor {tuple(sensor_size)} needs {required})"
        )
    if events.ndim != 1:
        raise DatasetError(f"{source}: events must be a 1-D array, got shape {events.shape}")
    n = events.shape[0]
    if n == 0:
        return events
    t = events["t"]
    if t.dtype.kind == "f":
        _report(source, ~np.isfinite(t), t, n, "have a non-finite timestamp")
    _check_range(source, t, 0, None, n, "have a negative timestamp t")
    late = np.flatnonzero(t[1:] < t[:-1]) + 1
    if late.size:
        i = int(late[0])
        raise DatasetError(
            f"{source}: {late.size} of {n} events are earlier than the event before them "
            f"(timestamps must be sorted); first at index {i}: t={t[i]} after t={t[i - 1]}"
        )
    _check_range(source, events["x"], 0, width, n, f"have x outside [0, {width})")
    if "y" in names:
        _check_range(source, events["y"], 0, height, n, f"have y outside [0, {height})")
    p = events["p"]
    if p.dtype != np.bool_:
        _check_range(source, p, 0, 2, n, "have a polarity p that is not 0 or 1", integer=True)
    return events


def _check_range(
    source: str,
    values: np.ndarray,
    lo: int,
    hi: int | None,
    n: int,
    what: str,
    integer: bool = False,
) -> None:
    """Raise unless ``lo <= values < hi`` (and integral, if asked); min/max first, as that is
    one pass without temporaries, and the element-wise mask only to report the culprits."""
    ok = values.min() >= lo and (hi is None or values.max() < hi)
    if ok and not (integer and values.dtype.kind == "f"):
        return
    bad = values < lo
    if hi is not None:
        bad |= values >= hi
    if integer and values.dtype.kind == "f":
        bad |= values != np.round(values)
    _report(source, bad, values, n, what)


def _report(source: str, bad: np.ndarray, values: np.ndarray, n: int, what: str) -> None:
    idx = np.flatnonzero(bad)
    if idx.size:
        i = int(idx[0])
        raise DatasetError(
            f"{source}: {idx.size} of {n} events {what}; first at index {i}: value {values[i]}"
        )


def _field_names(events: Any, source: str) -> tuple[str, ...]:
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        kind = type(events).__name__
        dt = getattr(events, "dtype", None)
        raise DatasetError(
            f"{source}: events must be a numpy structured array with fields t, x, (y,) p; "
            f"got {kind} with dtype {dt}"
        )
    return events.dtype.names


def _sensor(sensor_size: Sequence[int]) -> SensorSize:
    if len(sensor_size) != 3 or any(int(s) < 1 for s in sensor_size):
        raise ConfigError(
            f"sensor_size must be (W, H, P) with positive entries, got {tuple(sensor_size)}"
        )
    return int(sensor_size[0]), int(sensor_size[1]), int(sensor_size[2])


def _check_castable(name: str, values: np.ndarray, dtype: np.dtype, source: str) -> None:
    """Refuse a cast that would change a value (wrap-around, truncation, bool coercion)."""
    if values.size == 0:
        return
    if dtype == np.bool_:
        bad = (values != 0) & (values != 1)
        what = "is not 0 or 1"
    elif values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        info = np.iinfo(dtype)
        bad |= (values < info.min) | (values > info.max)
        what = f"is not an integer in [{info.min}, {info.max}]"
    elif values.dtype.kind in "iub":
        info = np.iinfo(dtype)
        bad = (values < info.min) | (values > info.max)
        what = f"does not fit {dtype} [{info.min}, {info.max}]"
    else:
        raise DatasetError(f"{source}: field {name!r} has non-numeric dtype {values.dtype}")
    idx = np.flatnonzero(bad)
    if idx.size:
        i = int(idx[0])
        raise DatasetError(
            f"{source}: {idx.size} values of field {name!r} {what}; "
            f"first at index {i}: value {values[i]}"
        )
