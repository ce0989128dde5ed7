"""neurogate.viz: files are real PNGs, the raster plots exactly the input's spikes, bad input raises."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import neurogate as ng
from neurogate.data import make_events, to_frames
from neurogate.errors import ConfigError, ShapeError, ValueRangeError

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.image as mpimg
import matplotlib.pyplot as plt

from neurogate import viz


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_png(path, min_size=(100, 100)):
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1]
    assert image[..., :3].std() > 0  # not a blank canvas


def random_spikes(shape, p=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def raster_points(ax):
    (collection,) = ax.collections
    return np.asarray(collection.get_offsets())


# -- plot_raster ----------------------------------------------------------------------------------


def test_raster_plots_exactly_the_nonzero_entries(tmp_path):
    spikes = random_spikes((50, 40), p=0.15)
    ax = viz.plot_raster(spikes, path=tmp_path / "raster.png")
    np.testing.assert_array_equal(raster_points(ax), torch.nonzero(spikes).numpy())
    assert_png(tmp_path / "raster.png")


def test_raster_flattens_trailing_dims_row_major_and_accepts_numpy_bool():
    spikes = random_spikes((20, 3, 4, 5), p=0.2, seed=1)
    ax = viz.plot_raster(spikes.numpy().astype(bool))
    np.testing.assert_array_equal(raster_points(ax), torch.nonzero(spikes.reshape(20, -1)).numpy())


def test_raster_keeps_the_first_max_neurons():
    spikes = random_spikes((30, 100), p=0.2, seed=2)
    ax = viz.plot_raster(spikes, max_neurons=10)
    np.testing.assert_array_equal(raster_points(ax), torch.nonzero(spikes[:, :10]).numpy())
    assert "of 100" in ax.get_title()
    assert ax.get_ylim() == (-0.5, 9.5)


def test_raster_without_spikes_draws_nothing_but_works(tmp_path):
    ax = viz.plot_raster(torch.zeros(10, 5), path=tmp_path / "empty.png")
    assert raster_points(ax).shape[0] == 0
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_raster_draws_into_a_given_axes():
    _, (left, right) = plt.subplots(1, 2)
    spikes = random_spikes((10, 6), p=0.3)
    assert viz.plot_raster(spikes, ax=right) is right
    assert not left.collections and len(right.collections) == 1


def test_raster_of_a_lif_layer_matches_its_spikes():
    torch.manual_seed(0)
    spikes = ng.LIF(decay=0.8, backend="reference")(torch.rand(40, 2, 16) * 0.6)
    ax = viz.plot_raster(spikes[:, 1])
    assert len(raster_points(ax)) == int(spikes[:, 1].sum()) > 0
    np.testing.assert_array_equal(raster_points(ax), torch.nonzero(spikes[:, 1]).numpy())


@pytest.mark.parametrize("shape", [(10,), ()])
def test_raster_rejects_fewer_than_two_dims(shape):
    with pytest.raises(ShapeError, match=r"\[T, N\].*x\[:, None\]"):
        viz.plot_raster(torch.zeros(shape))


@pytest.mark.parametrize("bad", [0.5, 2.0, -1.0, float("nan")])
def test_raster_rejects_non_binary_values(bad):
    spikes = torch.zeros(8, 4)
    spikes[3, 2] = bad
    with pytest.raises(ValueRangeError, match=r"0/1.*t=3, neuron=2"):
        viz.plot_raster(spikes)


def test_raster_rejects_bad_max_neurons():
    with pytest.raises(ConfigError, match="max_neurons"):
        viz.plot_raster(torch.zeros(3, 3), max_neurons=0)


# -- plot_membrane --------------------------------------------------------------------------------


def test_membrane_traces_thresholds_and_spike_markers(tmp_path):
    lif = ng.LIF(decay=0.9, threshold=1.0, backend="reference")
    torch.manual_seed(1)
    spikes, v = lif.trace(torch.rand(60, 1, 8) * 0.4)
    ax = viz.plot_membrane(
        v[:, 0], spikes[:, 0], threshold=1.0, neurons=[1, 6], path=tmp_path / "v.png"
    )
    traces = [line for line in ax.lines if line.get_label().startswith("neuron")]
    assert [line.get_label() for line in traces] == ["neuron 1", "neuron 6"]
    np.testing.assert_allclose(traces[1].get_ydata(), v[:, 0, 6].numpy())
    markers = [line for line in ax.lines if line.get_marker() == "^"]
    hits = np.concatenate([m.get_xdata() for m in markers])
    assert len(hits) == int(spikes[:, 0, [1, 6]].sum()) > 0
    threshold_lines = [line for line in ax.lines if line.get_label() == "threshold"]
    assert len(threshold_lines) == 1 and set(threshold_lines[0].get_ydata()) == {1.0}
    assert_png(tmp_path / "v.png")


def test_membrane_first_k_neurons_and_per_neuron_threshold():
    v = torch.randn(20, 5)
    ax = viz.plot_membrane(v, threshold=torch.arange(5.0), neurons=2)
    assert sum(line.get_label().startswith("neuron") for line in ax.lines) == 2
    levels = sorted(line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--")
    assert levels == [0.0, 1.0]


def test_membrane_rejects_bad_input():
    with pytest.raises(ShapeError, match=r"\[T, N\]"):
        viz.plot_membrane(torch.zeros(10))
    with pytest.raises(ShapeError, match="same shape"):
        viz.plot_membrane(torch.zeros(10, 3), spikes=torch.zeros(10, 4))
    with pytest.raises(ShapeError, match="threshold has 2 values"):
        viz.plot_membrane(torch.zeros(10, 3), threshold=[1.0, 2.0])
    with pytest.raises(ConfigError, match="out of range"):
        viz.plot_membrane(torch.zeros(10, 3), neurons=[3])


# -- plot_event_frames ----------------------------------------------------------------------------


def digit_events():
    """A bar moving right: ON events at its leading edge, OFF at its trailing edge, 8x6 sensor."""
    t, x, y, p = [], [], [], []
    for step in range(6):
        for row in range(1, 5):
            t += [1000 * step] * 2
            x += [step + 1, step]
            y += [row, row]
            p += [1, 0]
    return make_events(t=t, x=x, y=y, p=p)


def test_event_frames_from_a_tensor(tmp_path):
    frames = to_frames(digit_events(), (8, 6, 2), time_steps=6)
    fig = viz.plot_event_frames(frames, path=tmp_path / "frames.png")
    images = [a.images[0].get_array() for a in fig.axes if a.images]
    assert len(images) == 6
    # ON only (channel 1): red, i.e. (1, 1 - on, 1 - on); OFF only: blue.
    on = np.asarray(images[0][1, 1])
    off = np.asarray(images[0][1, 0])
    assert on[0] == 1.0 and on[2] < 1.0 and off[2] == 1.0 and off[0] < 1.0
    assert_png(tmp_path / "frames.png")


def test_event_frames_from_an_event_array_bins_like_to_frames(tmp_path):
    events = digit_events()
    fig = viz.plot_event_frames(
        events, sensor_size=(8, 6, 2), time_steps=3, mode="diverging", path=tmp_path / "ev.png"
    )
    want = to_frames(events, (8, 6, 2), time_steps=3)
    drawn = [np.asarray(a.images[0].get_array()) for a in fig.axes if a.images]
    assert len(drawn) == 3
    for k in range(3):
        np.testing.assert_array_equal(drawn[k], (want[k, 1] - want[k, 0]).numpy())
    assert fig.axes[0].get_title().endswith("ms")
    assert_png(tmp_path / "ev.png")


def test_event_frames_limits_panels_and_uses_given_axes():
    frames = torch.rand(20, 2, 5, 5)
    fig = viz.plot_event_frames(frames, max_panels=4)
    assert sum(bool(a.images) for a in fig.axes) == 4
    assert "first 4 of 20" in fig._suptitle.get_text()
    fig2, axes = plt.subplots(2, 3)
    assert viz.plot_event_frames(frames[:5], ax=axes) is fig2
    assert sum(bool(a.images) for a in axes.ravel()) == 5


def test_event_frames_rejects_bad_input():
    with pytest.raises(ShapeError, match=r"frames\[:, 0\]"):
        viz.plot_event_frames(torch.zeros(4, 3, 2, 5, 5))
    with pytest.raises(ShapeError, match="P = 1 or 2"):
        viz.plot_event_frames(torch.zeros(4, 3, 5, 5))
    with pytest.raises(ConfigError, match="sensor_size"):
        viz.plot_event_frames(digit_events())
    with pytest.raises(ValueRangeError, match="counts"):
        viz.plot_event_frames(-torch.ones(2, 2, 3, 3))
    with pytest.raises(ConfigError, match="mode"):
        viz.plot_event_frames(torch.zeros(2, 2, 3, 3), mode="rainbow")
    _, axes = plt.subplots(1, 2)
    with pytest.raises(ShapeError, match="ax holds 2"):
        viz.plot_event_frames(torch.zeros(3, 2, 3, 3), ax=axes)


# -- plot_training_curves -------------------------------------------------------------------------


# The columns neurogate.train writes to metrics.csv (plus ones the plot ignores).
ROWS = [
    {"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.5 + 0.1 * e, "test_loss": 2.5 / e,
     "test_acc": 0.45 + 0.1 * e, "spike_rate_lif1": 0.1, "spike_rate_lif2": 0.05 + 0.01 * e,
     "synops_per_sample": 1e5 * e, "lr": 0.001, "epoch_time_s": 3.2}
    for e in range(1, 5)
]


def test_training_curves_from_metrics_csv(tmp_path):
    file = tmp_path / "metrics.csv"
    with file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    fig = viz.plot_training_curves(file, path=tmp_path / "curves.png")
    loss_ax, acc_ax, rate_ax = fig.axes[:3]
    loss, test_loss = loss_ax.lines
    np.testing.assert_allclose(loss.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(loss.get_ydata(), [2.0, 1.0, 2 / 3, 0.5])
    assert test_loss.get_label() == "test loss"
    assert {line.get_label() for line in acc_ax.lines} == {"train acc", "test acc"}
    np.testing.assert_allclose(acc_ax.lines[1].get_ydata(), [55, 65, 75, 85])  # percent
    assert {line.get_label() for line in rate_ax.lines} == {"lif1", "lif2"}
    assert len(fig.axes) == 4  # the synops twin axis
    assert_png(tmp_path / "curves.png")


def test_training_curves_short_rate_and_synops_names():
    fig = viz.plot_training_curves(
        {"epoch": [1, 2], "train_acc": [0.2, 0.4], "rate_fc": [0.1, 0.2], "synops": [5.0, 6.0]}
    )
    rate_ax, ops_ax = fig.axes[2:]
    assert [line.get_label() for line in rate_ax.lines] == ["fc"]
    np.testing.assert_allclose(ops_ax.lines[0].get_ydata(), [5.0, 6.0])


def test_training_curves_from_columns_without_rates(tmp_path):
    fig = viz.plot_training_curves(
        {"train_loss": [1.0, 0.5, float("nan")], "test_acc": [30.0, 60.0, 70.0]},
        path=tmp_path / "c.png",
    )
    assert len(fig.axes) == 2
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [30, 60, 70])  # kept as given
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [1, 2, 3])
    assert_png(tmp_path / "c.png")


def test_training_curves_reject_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="no metrics file"):
        viz.plot_training_curves(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="no loss or accuracy"):
        viz.plot_training_curves([{"epoch": 1, "lr": 0.1}])
    with pytest.raises(ShapeError, match="differ in length"):
        viz.plot_training_curves({"train_loss": [1.0, 2.0], "test_acc": [0.5]})
    with pytest.raises(ConfigError, match="no rows"):
        viz.plot_training_curves([])
