"""Each tonic-backed loader reads small files written here in the dataset's real on-disk format.

Nothing is downloaded: the files are written in the layout tonic expects and read back through
tonic's parsers, and the events must come back exactly.
"""

from __future__ import annotations

import struct
import urllib.error
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import tonic.dataset

import neurogate.data as nd
from neurogate.data import to_frames
from neurogate.errors import DatasetError

RNG = np.random.default_rng(7)


# ---- writers for each format -------------------------------------------------------------


def random_events(n, width, height, t_max=300_000):
    return dict(
        x=RNG.integers(0, width, n),
        y=RNG.integers(0, height, n),
        t=np.sort(RNG.integers(0, t_max, n)),
        p=RNG.integers(0, 2, n),
    )


def write_40bit(path: Path, ev: dict) -> None:
    """N-MNIST / N-Caltech101: 5 bytes per event: x, y, p << 7 | t[22:16], t[15:8], t[7:0]."""
    t, p = ev["t"].astype(np.uint32), ev["p"].astype(np.uint32)
    raw = np.stack(
        [ev["x"], ev["y"], (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], axis=1
    ).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


def write_hsd(path: Path, samples, labels, drop: str | None = None) -> None:
    """SHD / SSC: vlen ``spikes/times`` (s) and ``spikes/units``, ``labels``, ``extra/*``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t_s, u) in enumerate(samples):
            times[i], units[i] = t_s.astype(np.float32), u.astype(np.uint16)
        f["labels"] = np.asarray(labels, dtype=np.uint16)
        f["extra/keys"] = np.array([f"word {i}".encode() for i in range(20)])
        f["extra/speaker"] = np.arange(len(samples), dtype=np.uint16)
        if drop:
            del f[drop]


def write_aedat4(path: Path, ev: dict, width: int = 128, height: int = 128) -> None:
    """AEDAT4 as tonic's CIFAR10-DVS reads it: magic, size-prefixed IOHeader flatbuffer, then
    packets (stream id, size, size-prefixed ``EventPacket`` flatbuffer of 16-byte ``Event``s)."""
    desc = (
        '<dv version="2.0"><node name="outInfo"><node name="0">'
        '<attr key="typeIdentifier" type="string">EVTS</attr><node name="info">'
        f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
        "</node></node></node></dv>"
    ).encode()
    string = struct.pack("<I", len(desc)) + desc + b"\0"
    string += b"\0" * (-len(string) % 4)
    # root offset | id | vtable(size 10, table 8, fields: -, -, description @4) | pad | table
    header = struct.pack("<I4sHHHHH2xiI", 20, b"IOHE", 10, 8, 0, 0, 4, 12, 4) + string
    packets = b""
    for chunk in np.array_split(np.arange(len(ev["t"])), 2):
        items = np.zeros(
            len(chunk),
            dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")],
        )
        items["t"], items["x"], items["y"], items["on"] = (
            ev[k][chunk] for k in ("t", "x", "y", "p")
        )
        body = (
            struct.pack("<I4sHHH2xiI4xI", 16, b"EVTS", 6, 8, 4, 8, 8, len(chunk)) + items.tobytes()
        )
        packets += struct.pack("<III", 0, len(body) + 4, len(body)) + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(header)) + header + packets)


def assert_events(got: np.ndarray, want: dict) -> None:
    for name, values in want.items():
        np.testing.assert_array_equal(got[name], values, err_msg=f"field {name}")
    assert len(got) == len(next(iter(want.values())))


# ---- N-MNIST ------------------------------------------------------------------------------


def make_nmnist(root: Path) -> dict:
    files = {"Train/3/00001.bin": 300, "Train/7/00002.bin": 150, "Test/1/00003.bin": 80}
    written = {}
    for rel, n in files.items():
        ev = random_events(n, 34, 34, t_max=2**23 - 1)
        write_40bit(root / "NMNIST" / rel, ev)
        written[rel] = ev
    return written


def test_nmnist_round_trip(tmp_path):
    written = make_nmnist(tmp_path)
    train = nd.load("nmnist", "train", root=tmp_path, time_steps=10)
    assert len(train) == 2 and train.sensor_size == (34, 34, 2)
    assert train.frame_shape == (2, 34, 34) and train.num_classes == 10
    for i, (rel, label) in enumerate([("Train/3/00001.bin", 3), ("Train/7/00002.bin", 7)]):
        assert_events(train.events(i), written[rel])
        frames, y = train[i]
        assert y == label and frames.shape == (10, 2, 34, 34)
        assert torch_equal(frames, to_frames(train.events(i), (34, 34, 2), time_steps=10))
    test = nd.load("nmnist", "test", root=tmp_path)
    assert len(test) == 1 and test[0][1] == 1
    assert_events(test.events(0), written["Test/1/00003.bin"])
    state = {r.name: r for r in nd.list_datasets(tmp_path)}["nmnist"]
    assert state.state == "present" and state.splits == ("train", "test")


def test_nmnist_from_the_zip_tonic_downloads(tmp_path):
    staging = tmp_path / "staging"
    written = make_nmnist(staging)
    folder = tmp_path / "root" / "NMNIST"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "train.zip", "w") as zf:
        for rel in ("Train/3/00001.bin", "Train/7/00002.bin"):
            zf.write(staging / "NMNIST" / rel, rel)
    train = nd.load("nmnist", "train", root=tmp_path / "root", cache=False)
    assert len(train) == 2
    assert_events(train.events(1), written["Train/7/00002.bin"])


def test_nmnist_truncated_file_is_named(tmp_path):
    make_nmnist(tmp_path)
    bad = tmp_path / "NMNIST" / "Train" / "7" / "00002.bin"
    bad.write_bytes(bad.read_bytes()[:-2])
    train = nd.load("nmnist", "train", root=tmp_path)
    train[0]
    with pytest.raises(DatasetError) as err:
        train[1]
    assert str(bad) in str(err.value) and "truncated" in str(err.value)
    assert "3 trailing bytes" in str(err.value)


def test_nmnist_bad_coordinate_is_named(tmp_path):
    path = tmp_path / "NMNIST" / "Test" / "1" / "00009.bin"
    write_40bit(
        path, dict(x=np.array([3, 40]), y=np.array([0, 0]), t=np.array([1, 2]), p=np.array([0, 1]))
    )
    with pytest.raises(DatasetError, match=rf"{path}: 1 of 2 events have x outside \[0, 34\)"):
        nd.load("nmnist", "test", root=tmp_path)[0]


# ---- absent datasets -----------------------------------------------------------------------

ABSENT = {
    "nmnist": ("NMNIST", "Train/<digit>/<id>.bin"),
    "shd": ("SHD", "shd_train.h5"),
    "ssc": ("SSC", "ssc_train.h5"),
    "dvs-gesture": ("DVSGesture", "ibmGestureTrain/user<NN>_<lighting>/<label>.npy"),
    "cifar10-dvs": ("CIFAR10DVS", "<class>/<name>.aedat4"),
    "ncaltech101": ("NCALTECH101", "Caltech101/<class>/image_<id>.bin"),
}


@pytest.mark.parametrize("name", sorted(ABSENT))
def test_absent_dataset_says_where_to_put_files(tmp_path, name):
    if name == "cifar10-dvs":
        pytest.importorskip("aedat")
    folder, files = ABSENT[name]
    with pytest.raises(DatasetError) as err:
        nd.load(name, "train", root=tmp_path)
    msg = str(err.value)
    assert str((tmp_path / folder).resolve()) in msg and files in msg
    assert "download=True" in msg


def test_failed_download_still_says_where_to_put_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", offline)
    with pytest.raises(DatasetError) as err:
        nd.load("nmnist", "train", root=tmp_path, download=True)
    msg = str(err.value)
    assert "downloading nmnist failed (URLError" in msg and str(tmp_path / "NMNIST") in msg


# ---- SHD / SSC -----------------------------------------------------------------------------


def hsd_samples(n_samples):
    samples = []
    for _ in range(n_samples):
        n = int(RNG.integers(20, 60))
        k = np.sort(RNG.integers(0, 64, n))  # times k / 64 s: exact in float32 and in us
        samples.append((k / 64.0, RNG.integers(0, 700, n)))
    return samples


def test_shd_round_trip(tmp_path):
    samples, labels = hsd_samples(3), [4, 0, 19]
    write_hsd(tmp_path / "SHD" / "shd_train.h5", samples, labels)
    ds = nd.load("shd", "train", root=tmp_path, time_steps=8, channels=140)
    assert len(ds) == 3 and ds.sensor_size == (700, 1, 1) and ds.frame_shape == (140,)
    assert ds.classes[:2] == ("word 0", "word 1") and ds.num_classes == 20
    for i, (t_s, units) in enumerate(samples):
        ev = ds.events(i)
        assert ev.dtype.names == ("t", "x", "p")
        assert_events(
            ev, {"t": np.round(t_s * 64).astype(int) * 15625, "x": units, "p": np.ones_like(units)}
        )
        frames, y = ds[i]
        assert y == labels[i] and frames.shape == (8, 140)
        assert frames.sum().item() == len(units)
    assert "shd_train.h5 (sample 2)" in ds.sample_name(2)


def test_ssc_valid_split(tmp_path):
    samples = hsd_samples(2)
    write_hsd(tmp_path / "SSC" / "ssc_valid.h5", samples, [1, 34])
    ds = nd.load("ssc", "valid", root=tmp_path, time_window=100_000, time_steps=10)
    assert [ds[i][1] for i in range(2)] == [1, 34]
    assert_events(ds.events(1), {"x": samples[1][1]})


def test_hdf5_missing_key_is_named(tmp_path):
    path = tmp_path / "SHD" / "shd_test.h5"
    write_hsd(path, hsd_samples(2), [0, 1], drop="spikes/units")
    with pytest.raises(DatasetError) as err:
        nd.load("shd", "test", root=tmp_path)
    assert str(path) in str(err.value) and "missing HDF5 key(s) ['spikes/units']" in str(err.value)


def test_hdf5_truncated_file_is_named(tmp_path):
    path = tmp_path / "SHD" / "shd_test.h5"
    write_hsd(path, hsd_samples(2), [0, 1])
    path.write_bytes(path.read_bytes()[:700])
    with pytest.raises(DatasetError) as err:
        nd.load("shd", "test", root=tmp_path)
    assert str(path) in str(err.value) and "HDF5" in str(err.value)


# ---- DVS Gesture ---------------------------------------------------------------------------


def test_dvs_gesture_round_trip(tmp_path):
    base = tmp_path / "DVSGesture" / "ibmGestureTrain"
    written = {}
    for rel, label in (("user02_led/5.npy", 5), ("user01_fluorescent/3.npy", 3)):
        ev = random_events(200, 128, 128, t_max=6000)  # tonic's release stores t in ms
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(base / rel, np.stack([ev["x"], ev["y"], ev["p"], ev["t"]], axis=1).astype(np.int64))
        written[label] = ev
    ds = nd.load("dvs-gesture", "train", root=tmp_path, time_steps=20)
    assert len(ds) == 2 and ds.num_classes == 11
    assert [ds[i][1] for i in range(2)] == [3, 5]  # sorted by path: user01 first
    assert ds.source.users == [1, 2]
    for i, label in enumerate((3, 5)):
        ev = written[label]
        assert_events(ds.events(i), {**ev, "t": ev["t"] * 1000})


def test_dvs_gesture_malformed_array_is_named(tmp_path):
    path = tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_led" / "2.npy"
    path.parent.mkdir(parents=True)
    np.save(path, np.zeros((5, 3), dtype=np.int64))
    with pytest.raises(DatasetError, match=rf"{path}: not a valid DVS Gesture \.npy"):
        nd.load("dvs-gesture", "test", root=tmp_path)[0]


# ---- CIFAR10-DVS ---------------------------------------------------------------------------


def test_cifar10_dvs_round_trip_and_split(tmp_path):
    pytest.importorskip("aedat")
    written = {}
    for cls, count in (("cat", 10), ("truck", 1)):
        for j in range(count):
            ev = random_events(int(RNG.integers(5, 40)), 128, 128)
            path = tmp_path / "CIFAR10DVS" / cls / f"cifar10_{cls}_{j}.aedat4"
            write_aedat4(path, ev)
            written[str(path)] = (ev, {"cat": 3, "truck": 9}[cls])
    everything = nd.load("cifar10-dvs", "all", root=tmp_path, time_steps=5)
    assert len(everything) == 11 and everything.classes[3] == "cat"
    for i in range(len(everything)):
        ev, label = written[everything.sample_name(i)]
        assert_events(everything.events(i), ev)
        assert everything[i][1] == label
    train = nd.load("cifar10-dvs", "train", root=tmp_path, cache=False)
    test = nd.load("cifar10-dvs", "test", root=tmp_path, cache=False)
    assert len(train) == 10 and len(test) == 1  # 9 + 1 cats, the single truck trains
    assert test.sample_name(0).endswith("cifar10_cat_9.aedat4")


def test_cifar10_dvs_truncated_file_is_named(tmp_path):
    pytest.importorskip("aedat")
    path = tmp_path / "CIFAR10DVS" / "dog" / "cifar10_dog_0.aedat4"
    write_aedat4(path, random_events(30, 128, 128))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=rf"{path}: not a valid AEDAT4"):
        nd.load("cifar10-dvs", "all", root=tmp_path)[0]


# ---- N-Caltech101 --------------------------------------------------------------------------


def test_ncaltech101_round_trip(tmp_path):
    written = {}
    for cls in ("airplanes", "Faces_easy", "ant"):
        ev = random_events(120, 200, 150)
        ev["x"] += 20  # tonic shifts every recording so that it starts at x = y = 0
        write_40bit(tmp_path / "NCALTECH101" / "Caltech101" / cls / "image_0001.bin", ev)
        written[cls] = ev
    ds = nd.load("ncaltech101", "all", root=tmp_path, time_steps=4)
    assert ds.classes == ("Faces_easy", "airplanes", "ant") and ds.sensor_size == (240, 180, 2)
    for i, cls in enumerate(ds.classes):
        ev = written[cls]
        assert ds[i][1] == i
        assert_events(
            ds.events(i), {**ev, "x": ev["x"] - ev["x"].min(), "y": ev["y"] - ev["y"].min()}
        )
        assert ds[i][0].shape == (4, 2, 180, 240)


def torch_equal(a, b) -> bool:
    return bool((a == b).all()) and a.shape == b.shape
