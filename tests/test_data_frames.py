"""Binning events to frames (hand-computed), time-major collation, and the frame disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import tonic
import torch

import neurogate.data as nd
from neurogate.data import collate_time_major, make_events, to_frames
from neurogate.data import frames as frames_mod
from neurogate.errors import ConfigError, DatasetError, ShapeError

SENSOR = (3, 2, 2)  # W, H, P


def sample():
    return make_events(
        t=[10, 12, 15, 19, 20, 20],
        x=[0, 2, 1, 2, 0, 0],
        y=[0, 1, 1, 1, 0, 0],
        p=[1, 0, 1, 0, 1, 1],
    )


def dense(shape, hits):
    out = torch.zeros(shape)
    for index, value in hits.items():
        out[index] = value
    return out


def test_time_steps_spans_the_sample_and_counts_every_event():
    # t0 = 10, span = 20 - 10 + 1 = 11, bin = (t - 10) * 2 // 11 -> [0, 0, 0, 1, 1, 1]
    got = to_frames(sample(), SENSOR, time_steps=2)
    want = dense(
        (2, 2, 2, 3),
        {(0, 1, 0, 0): 1, (0, 0, 1, 2): 1, (0, 1, 1, 1): 1, (1, 0, 1, 2): 1, (1, 1, 0, 0): 2},
    )
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    binary = to_frames(sample(), SENSOR, time_steps=2, binary=True)
    torch.testing.assert_close(binary, want.clamp(max=1), rtol=0, atol=0)


def test_last_event_is_not_dropped():
    # tonic's ToFrame(n_time_bins=2) uses windows [0, 2), [2, 4) here and loses t = 4
    ev = make_events(t=[0, 1, 2, 3, 4], x=[0] * 5, y=[0] * 5, p=[0] * 5)
    got = to_frames(ev, SENSOR, time_steps=2)
    assert got[:, 0, 0, 0].tolist() == [3.0, 2.0]  # bins (t * 2) // 5
    rng = np.random.default_rng(1)
    n = 1000
    t = np.sort(rng.integers(0, 10**6, n))
    ev = make_events(t=t, x=rng.integers(0, 3, n), y=rng.integers(0, 2, n), p=rng.integers(0, 2, n))
    for steps in (1, 7, 64):
        assert to_frames(ev, SENSOR, time_steps=steps).sum().item() == n


def test_time_window_alone_covers_all_events():
    got = to_frames(sample(), SENSOR, time_window=5)  # bins (t - 10) // 5 -> [0, 0, 1, 1, 2, 2]
    assert got.shape == (3, 2, 2, 3)
    assert got.sum(dim=(1, 2, 3)).tolist() == [2.0, 2.0, 2.0]
    assert got[2, 1, 0, 0].item() == 2.0
    from_zero = to_frames(sample(), SENSOR, time_window=5, t_start=0)  # bins t // 5
    assert from_zero.sum(dim=(1, 2, 3)).tolist() == [0.0, 0.0, 2.0, 2.0, 2.0]


def test_time_window_with_time_steps_refuses_or_truncates_late_events():
    with pytest.raises(DatasetError) as err:
        to_frames(sample(), SENSOR, time_window=5, time_steps=2, source="clip.bin")
    assert "clip.bin: 2 of 6 events fall outside the 2 time bins" in str(err.value)
    assert "first at index 4: t=20" in str(err.value)
    got = to_frames(sample(), SENSOR, time_window=5, time_steps=2, truncate=True)
    assert got.shape == (2, 2, 2, 3)
    assert got.sum(dim=(1, 2, 3)).tolist() == [2.0, 2.0]
    padded = to_frames(sample(), SENSOR, time_window=5, time_steps=4)
    assert padded.sum(dim=(1, 2, 3)).tolist() == [2.0, 2.0, 2.0, 0.0]


def test_matches_tonic_toframe_with_a_time_window():
    rng = np.random.default_rng(0)
    n, w = 3000, 1000
    t = np.sort(rng.integers(0, 49_500, n))
    t[-1] = t[0] + 49_500  # a span that is not a multiple of w, where tonic keeps every event
    ev = make_events(
        t=t, x=rng.integers(0, 34, n), y=rng.integers(0, 34, n), p=rng.integers(0, 2, n)
    )
    ours = to_frames(ev, (34, 34, 2), time_window=w)
    theirs = tonic.transforms.ToFrame(
        sensor_size=(34, 34, 2), time_window=w, include_incomplete=True
    )(ev)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.numpy(), theirs.astype(np.float32))


def test_audio_frames_pool_channels():
    ev = make_events(t=[0, 1, 2, 3, 4, 9], x=[0, 4, 5, 699, 350, 5])
    got = to_frames(ev, (700, 1, 1), time_steps=2, channels=140)  # channel x * 140 // 700 = x // 5
    assert got.shape == (2, 140)
    want = torch.zeros(2, 140)
    want[0, 0], want[0, 1], want[0, 139], want[0, 70], want[1, 1] = 2, 1, 1, 1, 1
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert to_frames(ev, (700, 1, 1), time_steps=1).shape == (1, 700)


def test_single_polarity_sensor_counts_both_polarities():
    got = to_frames(sample(), (3, 2, 1), time_steps=1)
    assert got.shape == (1, 1, 2, 3)
    assert got[0, 0].tolist() == [[3.0, 0.0, 0.0], [0.0, 1.0, 2.0]]


def test_empty_sample_and_bad_options():
    empty = make_events(t=[], x=[], y=[], p=[])
    torch.testing.assert_close(to_frames(empty, SENSOR, time_steps=3), torch.zeros(3, 2, 2, 3))
    with pytest.raises(ConfigError, match="time_steps"):
        to_frames(sample(), SENSOR)
    with pytest.raises(ConfigError, match="channels pools audio"):
        to_frames(sample(), SENSOR, time_steps=2, channels=2)
    with pytest.raises(DatasetError, match=r"x outside \[0, 2\)"):  # validated, not wrapped
        to_frames(sample(), (2, 2, 2), time_steps=2)


def test_collate_time_major():
    batch = [(torch.full((4, 2, 3, 3), float(i)), i) for i in range(3)]
    x, y = collate_time_major(batch)
    assert x.shape == (4, 3, 2, 3, 3)
    assert y.dtype == torch.long and y.tolist() == [0, 1, 2]
    assert torch.equal(x[:, 1], batch[1][0])
    with pytest.raises(ShapeError, match="different frame shapes"):
        collate_time_major([(torch.zeros(4, 2), 0), (torch.zeros(5, 2), 1)])


class ToySource:
    """A tonic-style source that counts how often it is read."""

    classes = ("left", "right")

    def __init__(self, n: int = 6):
        rng = np.random.default_rng(3)
        self.items = []
        for i in range(n):
            m = 50 + 10 * i
            ev = make_events(
                t=np.sort(rng.integers(0, 1000, m)),
                x=rng.integers(0, 5, m),
                y=rng.integers(0, 4, m),
                p=rng.integers(0, 2, m),
            )
            self.items.append((ev, i % 2))
        self.targets = [label for _, label in self.items]
        self.reads = 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.reads += 1
        return self.items[i]


@pytest.fixture
def toy(tmp_path):
    source = ToySource()
    nd.register_dataset(
        "toy-cache",
        lambda root, split, download: source,
        sensor_size=(5, 4, 2),
        state=lambda root: ("generated", ("train",)),
        overwrite=True,
    )
    return source, tmp_path


def test_second_pass_reads_the_cache(toy, monkeypatch):
    source, root = toy
    want = [to_frames(ev, (5, 4, 2), time_steps=4) for ev, _ in source.items]
    calls = []
    real = frames_mod.bin_events
    monkeypatch.setattr(frames_mod, "bin_events", lambda *a, **k: calls.append(1) or real(*a, **k))

    first = nd.load("toy-cache", root=root, time_steps=4)
    assert first.frame_shape == (2, 4, 5) and first.num_classes == 2
    epoch1 = [first[i] for i in range(len(first))]
    assert len(calls) == 6 and source.reads == 6
    cache_dir = first.cache.directory
    assert cache_dir.parent == root / "cache" / "toy-cache" / "train"
    assert sorted(p.name for p in cache_dir.glob("*.npy")) == [f"{i}.npy" for i in range(6)]

    second = nd.load("toy-cache", root=root, time_steps=4)
    epoch2 = [second[i] for i in range(len(second))]
    assert len(calls) == 6 and source.reads == 6  # neither binned nor read again
    for (f1, y1), (f2, y2) in zip(epoch1, epoch2, strict=True):
        assert torch.equal(f1, f2) and y1 == y2
        assert f2.dtype == torch.float32
    for i, (f, y) in enumerate(epoch2):
        assert torch.equal(f, want[i]) and y == source.items[i][1]

    other = nd.load("toy-cache", root=root, time_steps=5)
    assert other.cache.directory != cache_dir  # the key follows time_steps
    assert other[0][0].shape == (5, 2, 4, 5) and len(calls) == 7
    nocache = nd.load("toy-cache", root=root, time_steps=4, cache=False)
    nocache[0]
    assert nocache.cache is None and len(calls) == 8


def test_corrupt_cache_file_is_named(toy):
    _, root = toy
    ds = nd.load("toy-cache", root=root, time_steps=2)
    ds[0]
    path = ds.cache.path(0)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetError) as err:
        nd.load("toy-cache", root=root, time_steps=2)[0]
    assert str(path) in str(err.value) and "delete" in str(err.value)


def test_loader_batches_time_major(toy):
    _, root = toy
    batches = list(
        nd.loader("toy-cache", "train", batch_size=4, root=root, time_steps=3, shuffle=False)
    )
    assert [tuple(x.shape) for x, _ in batches] == [(3, 4, 2, 4, 5), (3, 2, 2, 4, 5)]
    assert batches[0][1].tolist() == [0, 1, 0, 1] and batches[0][1].dtype == torch.long


def test_list_datasets_reports_states(toy, tmp_path):
    rows = {row.name: row for row in nd.list_datasets(tmp_path)}
    assert rows["toy-cache"].state == "generated"
    assert rows["nmnist"].state == "absent" and rows["nmnist"].splits == ()
    assert rows["nmnist"].location == str(tmp_path / "NMNIST")
    assert {"nmnist", "shd", "ssc", "dvs-gesture", "cifar10-dvs", "ncaltech101"} <= set(rows)


def test_unknown_name_lists_valid_ones_and_suggests():
    with pytest.raises(ConfigError) as err:
        nd.load("nmnsit")
    msg = str(err.value)
    assert "unknown dataset 'nmnsit'. Did you mean 'nmnist'?" in msg
    assert "dvs-gesture" in msg and "ncaltech101" in msg
    with pytest.raises(ConfigError, match="already registered"):
        nd.register_dataset("nmnist", lambda *a: None)
    with pytest.raises(ConfigError, match="splits"):
        nd.load("nmnist", split="validation")
