"""Event arrays: dtypes matching tonic's, and every validation error naming its source."""

from __future__ import annotations

import numpy as np
import numpy.lib.recfunctions as rfn
import pytest
import tonic

from neurogate.data import AUDIO_DTYPE, VISION_DTYPE, make_events, validate_events
from neurogate.data.events import as_events
from neurogate.errors import ConfigError, DatasetError

VISION = (8, 6, 2)


def vision_events(**override):
    fields = dict(t=[0, 5, 5, 9], x=[0, 7, 3, 1], y=[0, 5, 2, 1], p=[1, 0, 1, 0])
    fields.update(override)
    return make_events(**fields)


def test_make_events_uses_tonic_field_names_and_types():
    ev = vision_events()
    assert ev.dtype == VISION_DTYPE
    assert set(ev.dtype.names) == set(tonic.io.events_struct.names)
    for name in ev.dtype.names:  # same types as tonic's events_struct
        assert ev.dtype[name] == tonic.io.events_struct[name]
    np.testing.assert_array_equal(ev["t"], [0, 5, 5, 9])
    np.testing.assert_array_equal(ev["p"], [True, False, True, False])

    audio = make_events(t=[1, 2], x=[699, 0])
    assert audio.dtype == AUDIO_DTYPE
    assert audio.dtype.names == tonic.datasets.SHD.dtype.names  # ('t', 'x', 'p')
    np.testing.assert_array_equal(audio["p"], [1, 1])  # tonic's HSD convention


def test_make_events_refuses_values_the_cast_would_change():
    with pytest.raises(DatasetError, match=r"field 'p' is not 0 or 1; first at index 1: value 2"):
        make_events(t=[0, 1], x=[0, 0], y=[0, 0], p=[0, 2])
    with pytest.raises(DatasetError, match=r"field 'x' does not fit int16.*value 40000"):
        make_events(t=[0], x=[40000], y=[0], p=[0])
    with pytest.raises(DatasetError, match=r"field 't' is not an integer.*value 1.5"):
        make_events(t=[0.0, 1.5], x=[0, 0])
    with pytest.raises(ConfigError, match="field 'y' has 1 values but t has 2"):
        make_events(t=[0, 1], x=[0, 0], y=[0], p=[0, 0])
    with pytest.raises(ConfigError, match="need p"):
        make_events(t=[0], x=[0], y=[0])


def test_valid_events_pass_and_are_returned_unchanged():
    ev = vision_events()
    assert validate_events(ev, VISION, source="s") is ev
    empty = make_events(t=[], x=[], y=[], p=[])
    assert validate_events(empty, VISION) is empty
    # tonic's own dtypes validate too (N-MNIST uses int64 for every field)
    tonic_ev = np.zeros(3, dtype=tonic.datasets.NMNIST.dtype)
    tonic_ev["t"] = [1, 2, 3]
    validate_events(tonic_ev, (34, 34, 2), source="nmnist")
    validate_events(make_events(t=[0, 4], x=[0, 699]), (700, 1, 1), source="shd")


def test_missing_field_names_source_and_field():
    ev = vision_events()
    no_y = rfn.drop_fields(ev, "y", usemask=False)
    with pytest.raises(DatasetError, match=r"^clip_07\.bin: missing event field\(s\) \['y'\]"):
        validate_events(no_y, VISION, source="clip_07.bin")
    no_p = rfn.drop_fields(ev, "p", usemask=False)
    with pytest.raises(DatasetError, match=r"missing event field\(s\) \['p'\]"):
        validate_events(no_p, VISION, source="x")
    with pytest.raises(DatasetError, match="structured array"):
        validate_events(np.zeros((3, 4)), VISION, source="x")


def test_negative_timestamp():
    ev = vision_events(t=[-3, -1, 5, 9])
    with pytest.raises(DatasetError) as err:
        validate_events(ev, VISION, source="sample 12")
    msg = str(err.value)
    assert msg.startswith("sample 12: 2 of 4 events have a negative timestamp")
    assert "first at index 0: value -3" in msg


def test_unsorted_timestamps():
    ev = vision_events(t=[0, 7, 5, 3])
    with pytest.raises(DatasetError) as err:
        validate_events(ev, VISION, source="rec.npy")
    msg = str(err.value)
    assert "rec.npy: 2 of 4 events are earlier than the event before them" in msg
    assert "first at index 2: t=5 after t=7" in msg


def test_non_finite_float_timestamps():
    ev = np.zeros(3, dtype=[("t", float), ("x", int), ("p", int)])
    ev["t"] = [0.0, np.nan, 2.0]
    with pytest.raises(DatasetError, match=r"1 of 3 events have a non-finite timestamp"):
        validate_events(ev, (4, 1, 1), source="a")


def test_coordinates_outside_the_sensor():
    with pytest.raises(DatasetError) as err:
        validate_events(vision_events(x=[0, 8, 3, 9]), VISION, source="f.bin")
    assert str(err.value) == (
        "f.bin: 2 of 4 events have x outside [0, 8); first at index 1: value 8"
    )
    with pytest.raises(
        DatasetError, match=r"1 of 4 events have y outside \[0, 6\); first at index 1: value 6"
    ):
        validate_events(vision_events(y=[0, 6, 2, 1]), VISION, source="f.bin")
    tonic_ev = np.zeros(2, dtype=tonic.datasets.NMNIST.dtype)
    tonic_ev["x"] = [0, -1]
    with pytest.raises(DatasetError, match="value -1"):
        validate_events(tonic_ev, (34, 34, 2), source="n")


def test_polarity_not_zero_or_one():
    ev = np.zeros(4, dtype=tonic.datasets.NMNIST.dtype)  # int polarity, as tonic reads N-MNIST
    ev["p"] = [0, 1, 2, -1]
    with pytest.raises(DatasetError) as err:
        validate_events(ev, (34, 34, 2), source="00042.bin")
    assert str(err.value) == (
        "00042.bin: 2 of 4 events have a polarity p that is not 0 or 1; first at index 2: value 2"
    )


def test_bad_sensor_size_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\(W, H, P\)"):
        validate_events(vision_events(), (8, 6), source="x")


def test_as_events_normalises_tonic_arrays():
    src = np.zeros(2, dtype=tonic.datasets.NMNIST.dtype)  # order x, y, t, p; all int64
    src["x"], src["y"], src["t"], src["p"] = [1, 2], [3, 4], [10, 20], [0, 1]
    out = as_events(src, source="n")
    assert out.dtype == VISION_DTYPE
    assert out.tolist() == [(10, 1, 3, False), (20, 2, 4, True)]
    src["p"][0] = 3
    with pytest.raises(DatasetError, match="field 'p' is not 0 or 1"):
        as_events(src, source="n")
