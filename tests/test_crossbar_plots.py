"""Crossbar plots and accuracy sweeps: files written, one rectangle per tile, ideal device = float model."""

from __future__ import annotations

import numpy as np
import pytest

import neurogate as ng
import neurogate.hw
from neurogate.errors import ConfigError, NeurogateError, ShapeError, ValueRangeError
from neurogate.hw.crossbar import Array, lower

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
pytest.importorskip("nir")
torch = pytest.importorskip("torch")

import matplotlib.pyplot as plt

from neurogate.hw.crossbar import plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = ng.models.create("lif-mlp", num_classes=5, in_shape=(2, 6, 6), hidden=(40,)).eval()
    for p in net.parameters():
        p.data.mul_(3.0)  # hidden activity
    return net.double()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(10, 32, 2, 6, 6, generator=g) < 0.3).double()
    y = torch.randint(0, 5, (32,), generator=g)
    return x, y


def desc_of(net, device="ideal", **array):
    return lower(ng.hw.to_nir(net, dt=1e-3), device=device, array=Array(**({"rows": 32, "cols": 16} | array)))


def is_png(path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def test_tile_map_one_rectangle_per_tile(net, tmp_path):
    d = desc_of(net)
    assert len(d.tiles) == 3 * 3 + 2  # 72x40 on 32x16 -> 3x3, 40x5 -> 2x1
    ax = plots.plot_tile_map(d, path=tmp_path / "tiles.png")
    assert is_png(tmp_path / "tiles.png")
    assert len(ax.patches) == len(d.tiles)
    for rect, t in zip(ax.patches, d.tiles):
        assert (rect.get_width(), rect.get_height()) == (t.cols[1] - t.cols[0], t.rows[1] - t.rows[0])
    # one colour per layer, utilisation in the title and the legend
    assert len({r.get_facecolor() for r in ax.patches}) == 2
    assert f"{d.utilisation['overall']:.1%}" in ax.get_title()
    assert len(ax.get_legend().get_texts()) == 2


def test_tile_map_into_given_axes(net):
    _, ax = plt.subplots()
    assert plots.plot_tile_map(desc_of(net), ax=ax, title=None) is ax


def test_conductances_target_and_programmed(net, tmp_path):
    d = desc_of(net, device="rram")
    fig = plots.plot_conductances(d, tile=1, path=tmp_path / "target.png")
    assert is_png(tmp_path / "target.png") and len(fig.axes) >= 3
    fig = plots.plot_conductances(d, tile=1, seed=0, t_read=3600.0, path=tmp_path / "prog.png")
    assert is_png(tmp_path / "prog.png")
    hist = fig.axes[2]
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["target", "programmed"]


def test_sweep_shapes_and_plot(net, data, tmp_path):
    x, y = data
    d = desc_of(net, device="rram")
    xs = x.reshape(10, 32, -1)
    s = plots.sweep(d, xs, y, "adc_bits", [3, 6, None], seeds=[0, 1])
    assert s.accs.shape == (3, 2) and s.mean.shape == (3,) and s.std.shape == (3,)
    assert np.all((s.accs >= 0) & (s.accs <= 1))
    np.testing.assert_allclose(s.mean, s.accs.mean(1))
    ax = plots.plot_sweep([3, 6, 12], s.accs, "ADC bits", float_acc=0.5, path=tmp_path / "sweep.png")
    assert is_png(tmp_path / "sweep.png")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), s.mean)
    # the same seed gives the same accuracy (one programming of the chip per seed)
    again = plots.sweep(d, xs, y, "t_read", [20.0, 3.15e7], seeds=[0, 1])
    np.testing.assert_array_equal(again.accs, plots.sweep(d, xs, y, "t_read", [20.0, 3.15e7], seeds=[0, 1]).accs)


@pytest.mark.parametrize("param, values", [("t_read", [20.0, 3600.0, 3.15e7]), ("noise_scale", [0.0, 1.0, 5.0]),
                                           ("adc_bits", [None]), ("dac_bits", [None])])
def test_ideal_device_gives_float_accuracy(net, data, param, values):
    x, y = data
    with torch.no_grad():
        float_acc = float((net(x).argmax(1) == y).double().mean())
    s = plots.sweep(desc_of(net), x.reshape(10, 32, -1).numpy(), y.numpy(), param, values, seeds=[0, 3])
    np.testing.assert_array_equal(s.accs, float_acc)
    assert np.all(s.std == 0)


def test_noise_scale_zero_removes_programming_noise(net):
    d = desc_of(net, device="rram")
    quiet = plots._with(d, "noise_scale", 0.0)
    assert not any(quiet.device.prog_coeffs) and quiet.device.read_noise == 0
    assert d.device.read_noise > 0  # the original is untouched


def test_bad_input_raises_neurogate_errors(net, data):
    x, y = data
    d = desc_of(net)
    xs = x.reshape(10, 32, -1).numpy()
    bad = [
        (ConfigError, lambda: plots.plot_tile_map("not a descriptor")),
        (ConfigError, lambda: plots.plot_conductances(d, tile=len(d.tiles))),
        (ConfigError, lambda: plots.plot_conductances(d, tile=-1)),
        (ConfigError, lambda: plots.plot_conductances(d, t_read=100.0)),
        (ConfigError, lambda: plots.sweep(d, xs, y, "temperature", [1])),
        (ConfigError, lambda: plots.sweep(d, xs, y, "adc_bits", [])),
        (ConfigError, lambda: plots.sweep(d, xs, y, "adc_bits", [4], seeds=[])),
        (ShapeError, lambda: plots.sweep(d, xs, y[:5], "adc_bits", [4])),
        (ShapeError, lambda: plots.sweep(d, xs[0], y, "adc_bits", [4])),
        (ValueRangeError, lambda: plots.sweep(d, xs, y, "adc_bits", [1])),
        (ValueRangeError, lambda: plots.sweep(d, xs, y, "noise_scale", [-1.0])),
        (ValueRangeError, lambda: plots.sweep(d, xs, y, "t_read", [1.0])),
        (ShapeError, lambda: plots.plot_sweep([1, 2], [0.5], "x")),
        (ShapeError, lambda: plots.plot_sweep([], [], "x")),
        (ValueRangeError, lambda: plots.plot_sweep([1, 2], [0.5, 1.5], "x")),
        (ValueRangeError, lambda: plots.plot_sweep([1, 2], [0.5, 0.6], "x", float_acc=2.0)),
    ]
    for err, call in bad:
        with pytest.raises(err) as info:
            call()
        assert isinstance(info.value, NeurogateError)
