"""event-digits: deterministic generation, split, valid events, cache reuse, learnability."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

import neurogate.data as nd
from neurogate.data import event_digits as ed
from neurogate.data.events import VISION_DTYPE, validate_events
from neurogate.errors import ConfigError, DatasetError

pytest.importorskip("sklearn")

N_SAMPLES, N_TEST = 1797, 359


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("event-digits-a")
    start = time.perf_counter()
    ed.generate_event_digits(path)
    print(f"event-digits generated in {time.perf_counter() - start:.1f} s")
    return path


def read(root, split):
    with np.load(root / "event-digits" / f"{split}.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_two_generations_are_identical(root, tmp_path):
    ed.generate_event_digits(tmp_path)
    for split in ed.SPLITS:
        a, b = read(root, split), read(tmp_path, split)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), (split, key)


def test_split_sizes_and_class_balance(root):
    train, test = ed.EventDigits(root, "train"), ed.EventDigits(root, "test")
    assert (len(train), len(test)) == (N_SAMPLES - N_TEST, N_TEST)
    index = {s: read(root, s)["index"] for s in ed.SPLITS}
    assert np.array_equal(np.sort(np.concatenate(list(index.values()))), np.arange(N_SAMPLES))
    from sklearn.datasets import load_digits

    labels = load_digits().target
    assert np.array_equal(labels[index["train"]], train.targets)
    per_class = np.bincount(labels, minlength=10)
    assert np.array_equal(np.bincount(test.targets, minlength=10), np.floor(per_class * 0.2 + 0.5))
    assert np.array_equal(np.bincount(train.targets) + np.bincount(test.targets), per_class)


def test_every_sample_is_valid_n_mnist_like_events(root):
    counts = []
    for split in ed.SPLITS:
        ds = ed.EventDigits(root, split)
        assert ds.sensor_size == (34, 34, 2) and ds.classes == tuple("0123456789")
        for i in range(len(ds)):
            events, label = ds[i]
            assert events.dtype == VISION_DTYPE and isinstance(label, int) and 0 <= label < 10
            validate_events(events, ds.sensor_size, source=f"{split} {i}")
            assert events["t"][-1] <= ed.DURATION_US
            counts.append(len(events))
        assert events["p"].any() and (~events["p"]).any()
    assert 1000 < np.mean(counts) < 6000 and min(counts) > 500


def test_cache_is_reused_not_regenerated(root, monkeypatch):
    files = [root / "event-digits" / f"{s}.npz" for s in ed.SPLITS]
    stamps = [f.stat().st_mtime_ns for f in files]

    def boom(*args, **kwargs):
        raise AssertionError("regenerated although the cache matches")

    monkeypatch.setattr(ed, "_emulate_all", boom)
    assert ed.generate_event_digits(root) == root / "event-digits"
    ed.EventDigits(root, "test")
    nd.load("event-digits", "test", root, time_steps=4, cache=False)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert not list((root / "event-digits").glob(".*tmp"))


def test_other_recipe_or_corrupt_file_is_refused(tmp_path):
    folder = tmp_path / "event-digits"
    folder.mkdir()
    old = dict(ed.RECIPE, version=0)
    np.savez(folder / "test.npz", recipe=np.array(json.dumps(old)))
    with pytest.raises(DatasetError, match="test.npz"):
        ed.EventDigits(tmp_path, "test", generate=False)
    good = {k: np.zeros(1, np.uint8) for k in "xyp"}
    np.savez(folder / "test.npz", **good, t=np.zeros(1, np.int32), offsets=np.array([0, 2]),
             labels=np.array([3]), index=np.array([0]), recipe=np.array(json.dumps(ed.RECIPE)))
    with pytest.raises(DatasetError, match="offsets"):
        ed.EventDigits(tmp_path, "test", generate=False)
    with pytest.raises(ConfigError, match="split"):
        ed.EventDigits(tmp_path, "valid")


def test_frames_from_the_class_and_from_the_registry(root):
    raw = ed.EventDigits(root, "test")
    events, label = raw[7]
    frames, label2 = ed.EventDigits(root, "test", time_steps=6)[7]
    assert frames.shape == (6, 2, 34, 34) and frames.dtype == torch.float32
    assert label2 == label and frames.sum().item() == len(events)
    assert frames[:, 1].sum().item() == events["p"].sum()
    loaded = nd.load("event-digits", "test", root, time_steps=6, cache=False)
    frames3, label3 = loaded[7]
    assert frames3.shape == (6, 2, 34, 34) and label3 == label
    assert frames3.sum().item() == len(events)
    status = {d.name: d for d in nd.list_datasets(root)}["event-digits"]
    assert status.state == "generated" and status.splits == ("train", "test")


def test_event_count_images_are_learnable(root):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    def features(split):
        ds = ed.EventDigits(root, split)
        owner = np.repeat(np.arange(len(ds)), np.diff(ds._offsets))
        flat = (owner * 2 + ds._p) * 34 * 34 + ds._y.astype(np.int64) * 34 + ds._x
        img = np.bincount(flat, minlength=len(ds) * 2 * 34 * 34).reshape(len(ds), 2, 17, 2, 17, 2)
        x = img.sum(axis=(3, 5)).reshape(len(ds), -1).astype(np.float64)
        return x / x.max(axis=1, keepdims=True), ds.targets

    (x_train, y_train), (x_test, y_test) = features("train"), features("test")
    with threadpool_limits(1):  # BLAS threads fighting over 2 cores make lbfgs 30x slower
        clf = LogisticRegression(max_iter=300).fit(x_train, y_train)
    accuracy = clf.score(x_test, y_test)
    print(f"logistic regression on 2x17x17 event-count images: {accuracy:.3f}")
    assert accuracy > 0.8
