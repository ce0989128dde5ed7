"""Resistive crossbar target: device model, lowering onto tiles, descriptor on disk, simulation."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from neurogate.errors import (
    ConfigError,
    HardwareConstraintError,
    ShapeError,
    ValueRangeError,
)
from neurogate.hw.crossbar import (
    PCM,
    RRAM,
    SCHEMA_VERSION,
    Array,
    Descriptor,
    Device,
    device_from_dict,
    ideal,
    lower,
    program_tile,
    programmed,
    simulate,
)

nir = pytest.importorskip("nir")
torch = pytest.importorskip("torch")


def mlp_graph(n_in: int = 70, n_hid: int = 50, n_out: int = 6, seed: int = 0, scale: float = 0.4):
    """Input -> Affine -> LIF -> Affine -> Output (a mean readout), weights ~ U(-scale, scale)."""
    rng = np.random.default_rng(seed)
    w1, w2 = rng.uniform(-scale, scale, (n_hid, n_in)), rng.uniform(-1, 1, (n_out, n_hid))
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc1": nir.Affine(weight=w1, bias=rng.uniform(-0.1, 0.1, n_hid)),
        "lif1": nir.LIF(tau=np.full(n_hid, 0.01), r=np.full(n_hid, 1 / (1 - np.exp(-0.1))),  # gain 1
                        v_leak=np.zeros(n_hid),
                        v_threshold=np.ones(n_hid), v_reset=np.zeros(n_hid), metadata={"reset": "subtract"}),
        "fc_out": nir.Affine(weight=w2, bias=np.zeros(n_out)),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc_out"), ("fc_out", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3})


@pytest.fixture
def spikes():
    return (np.random.default_rng(1).random((10, 4, 70)) < 0.3).astype(np.float64)


# ------------------------------------------------------------------ float model equivalence
@pytest.mark.parametrize("readout", ["mean", "leaky"])
def test_ideal_device_reproduces_model(readout, tmp_path):
    """lif-mlp-2 -> to_nir -> lower (ideal, small tiles) -> save/load -> simulate == model(x)."""
    import neurogate as ng
    import neurogate.hw

    torch.manual_seed(0)
    net = ng.models.create("lif-mlp-2", num_classes=10, in_shape=(2, 6, 6), hidden=(40, 24),
                           readout=readout).eval()
    for p in net.parameters():
        p.data.mul_(3.0)  # activity in both hidden layers
    graph = ng.hw.to_nir(net, dt=1e-3)
    d = Descriptor.load(lower(graph, array=Array(rows=32, cols=16)).save(tmp_path))
    assert len({t.layer for t in d.tiles}) == 3 and len(d.tiles) == 14  # 72x40 -> 3x3, 40x24 -> 2x2, 24x10
    x = (torch.rand(12, 5, 2, 6, 6) < 0.3).float()
    res = simulate(d, x.reshape(12, 5, -1).numpy())
    assert all(s.any() for s in res.spikes.values())
    got = res.output.mean(0)
    with torch.no_grad():
        want32 = net(x).double().numpy()  # the float32 model (measured: 6e-8 / 1.1e-7 relative)
        want = net.double()(x.double()).numpy()
    np.testing.assert_allclose(got, want32, rtol=1e-5, atol=1e-5 * np.abs(want32).max())
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("unrolled", [False, True])
def test_ideal_device_reproduces_convnet(unrolled, monkeypatch):
    """Convolutions map weight-stationary (kernel matrix once, one read per output position, pooling
    digital); forcing the unrolled sparse fallback must give the same outputs."""
    import neurogate as ng
    import neurogate.hw
    lower_mod = importlib.import_module("neurogate.hw.crossbar.lower")  # the module, not the function
    if unrolled:
        monkeypatch.setattr(lower_mod, "structured_projections", lambda *a: None)
    torch.manual_seed(0)
    net = ng.models.create("lif-convnet-small", num_classes=4, in_shape=(2, 8, 8)).eval()
    for p in net.parameters():
        p.data.mul_(2.0)
    d = lower_mod.lower(ng.hw.to_nir(net, dt=1e-3), array=Array(rows=64, cols=64))
    kinds = [(p.layer, p.kind, p.n_rows, p.n_cols, len(p.pre)) for p in d.projections]
    if unrolled:
        assert all(k[1] == "matrix" and k[4] == 0 for k in kinds)
        assert kinds[1][2:4] == (8 * 8 * 8, 16 * 4 * 4)  # lif1 (8x8x8) -> pool -> conv2 (16x4x4) unrolled
    else:  # conv1: 2*3*3 rows x 8; conv2 after 2x2 avg pooling: 8*3*3 rows x 16; fc1 16*2*2 -> 64; readout
        assert kinds == [("lif1", "conv", 18, 8, 0), ("lif2", "conv", 72, 16, 1), ("lif3", "matrix", 64, 64, 1),
                         ("fc_out_0", "matrix", 64, 4, 0)]
        assert len(d.tiles) == 5  # conv2's 72 rows take two 64-row tiles
        assert d.projections[1].reads_per_step == 16
    x = (torch.rand(5, 3, 2, 8, 8) < 0.3).double()
    with torch.no_grad():
        want = net.double()(x).numpy()
    got = simulate(d, x.reshape(5, 3, -1).numpy(), batch=2).output.mean(0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


# ------------------------------------------------------------------ tiling and descriptor
def test_tile_map_covers_every_weight(spikes):
    g = mlp_graph()
    d = lower(g, array=Array(rows=32, cols=20))
    assert [(t["layer"], t["rows"], t["cols"]) for t in d.tile_map][:4] == [
        ("lif1", [0, 32], [0, 20]), ("lif1", [0, 32], [20, 40]), ("lif1", [0, 32], [40, 50]),
        ("lif1", [32, 64], [0, 20])]
    np.testing.assert_allclose(d.weights("lif1"), g.nodes["fc1"].weight.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d.weights("fc_out"), g.nodes["fc_out"].weight.T, rtol=1e-12, atol=1e-14)
    used = 70 * 50 + 50 * 6
    assert d.utilisation["overall"] == pytest.approx(used / (len(d.tiles) * 32 * 20))
    lif = d.layer("lif1")
    assert lif.reset == "subtract" and np.allclose(lif.params["decay"], np.exp(-0.1))
    np.testing.assert_allclose(lif.bias, g.nodes["fc1"].bias)
    assert "tiles" in d.summary()


def test_program_tile_differential_pair():
    dev = Device(g_min=2.0, g_max=22.0)
    w = np.array([[0.5, -2.0, 0.0], [-1.0, 1.0, 0.0]])
    gp, gn, s = program_tile(w, dev)
    np.testing.assert_allclose(s, [1.0, 2.0, 1.0])
    np.testing.assert_allclose(gp, [[12.0, 2.0, 2.0], [2.0, 12.0, 2.0]])
    np.testing.assert_allclose(gn, [[2.0, 22.0, 2.0], [22.0, 2.0, 2.0]])
    np.testing.assert_allclose((gp - gn) * s / dev.g_range, w)


@pytest.mark.parametrize("levels", [2, 5, 16])
def test_quantisation_to_n_levels(levels):
    dev = Device(g_min=1.0, g_max=25.0, levels=levels)
    d = lower(mlp_graph(), device=dev, array=Array(rows=40, cols=30))
    w = mlp_graph().nodes["fc1"].weight.T
    for t in d.tiles:
        vals = np.unique(np.concatenate([t.g_pos.ravel(), t.g_neg.ravel()]))
        assert len(vals) <= levels
        k = (vals - dev.g_min) / dev.g_range * (levels - 1)
        np.testing.assert_allclose(k, np.rint(k), atol=1e-9)
    t0 = d.tiles[0]
    err = np.abs(d.weights("lif1") - w)[:40, :30]
    assert np.all(err <= t0.scale / (2 * (levels - 1)) + 1e-12)


def test_save_load_roundtrip_and_validation(tmp_path, spikes):
    d = lower(mlp_graph(), device=RRAM, array=Array(rows=32, cols=32, adc_bits=8), budget=10)
    d2 = Descriptor.load(d.save(tmp_path / "a"))
    assert d2.device == RRAM and d2.array == d.array and d2.budget == 10 and d2.tile_map == d.tile_map
    for a, b in zip(d.tiles, d2.tiles):
        assert np.array_equal(a.g_pos, b.g_pos) and np.array_equal(a.scale, b.scale)
    np.testing.assert_array_equal(simulate(d, spikes, seed=3).output, simulate(d2, spikes, seed=3).output)

    # a conductance outside [g_min, g_max] is refused, naming the tile
    z = dict(np.load(tmp_path / "a" / "arrays.npz"))
    z["tile2.g_neg"] = z["tile2.g_neg"].copy()
    z["tile2.g_neg"][0, 0] = 30.0
    np.savez(tmp_path / "a" / "arrays.npz", **z)
    with pytest.raises(HardwareConstraintError, match=r"tile 2 .*conductance range"):
        Descriptor.load(tmp_path / "a")
    # wrong schema version
    p = d.save(tmp_path / "b")
    meta = json.loads((p / "descriptor.json").read_text())
    meta["schema_version"] = 99
    (p / "descriptor.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="schema version"):
        Descriptor.load(p)
    with pytest.raises(ConfigError, match="descriptor.json"):
        Descriptor.load(tmp_path / "missing")
    (p / "arrays.npz").write_bytes(b"not a zip")
    meta["schema_version"] = SCHEMA_VERSION
    (p / "descriptor.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="arrays.npz"):
        Descriptor.load(p)


def test_budget_exceeded():
    with pytest.raises(HardwareConstraintError, match=r"lif1: tile budget \(3 tiles.*got 6 tiles") as e:
        lower(mlp_graph(), array=Array(rows=32, cols=32), budget=3)  # 70x50 needs 3x2 tiles
    assert "budget >= 6" in e.value.fix
    with pytest.raises(HardwareConstraintError, match=r"network: tile budget \(6 tiles\)"):
        lower(mlp_graph(), array=Array(rows=32, cols=32), budget=6)  # + 2 tiles for fc_out
    assert len(lower(mlp_graph(), array=Array(rows=32, cols=32), budget=8).tiles) == 8


# ------------------------------------------------------------------ non-idealities
def test_programming_and_read_noise_are_seeded(spikes):
    d = lower(mlp_graph(), device=PCM)
    a, b, c = programmed(d, seed=1), programmed(d, seed=1), programmed(d, seed=2)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])
    t = d.tiles[0]
    far = t.g_pos > 5 * PCM.prog_sigma(t.g_pos)  # the clamp at 0 S truncates the noise near g_min
    rel = (a[0][0] - t.g_pos)[far] / PCM.prog_sigma(t.g_pos[far])
    assert abs(rel.std() - 1) < 0.05 and abs(rel.mean()) < 0.05  # sigma(g) as specified
    r1, r2, r3 = (simulate(d, spikes, seed=s).output for s in (1, 1, 2))
    np.testing.assert_array_equal(r1, r2)
    assert not np.array_equal(r1, r3)
    ref = simulate(lower(mlp_graph()), spikes).output
    assert 0 < np.abs(r1 - ref).max() < 0.5 * np.abs(ref).max()


def test_read_noise_statistics():
    """Per-read noise: column current std = sigma_r sqrt(sum V^2 (G+^2 + G-^2)), mean unbiased."""
    n, w = 64, np.random.default_rng(0).uniform(-1, 1, (3, 64))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([n])),
                            "fc": nir.Affine(weight=w, bias=np.zeros(3)),
                            "output": nir.Output(output_type=np.array([3]))},
                     edges=[("input", "fc"), ("fc", "output")], metadata={"dt": 1e-3})
    dev = Device(read_noise=0.05)
    d = lower(g, device=dev)
    out = simulate(d, np.ones((4000, 1, n)), seed=7).output[:, 0]
    t, v = d.tiles[0], d.array.v_read
    sd = 0.05 * v * np.sqrt((t.g_pos**2 + t.g_neg**2).sum(0)) * t.scale / (v * dev.g_range)
    np.testing.assert_allclose(out.std(0), sd, rtol=0.05)
    np.testing.assert_allclose(out.mean(0), w.sum(1), atol=4 * sd.max() / np.sqrt(4000))


def test_drift_follows_power_law():
    dev = Device(g_min=1.0, g_max=25.0, drift_nu=0.06)
    d = lower(mlp_graph(), device=dev)
    for t_read in (20.0, 3600.0, 1e6):
        for (gp, gn), tile in zip(programmed(d, t_read=t_read), d.tiles):
            np.testing.assert_allclose(gp, tile.g_pos * (t_read / 20.0) ** -0.06, rtol=1e-12)
            np.testing.assert_allclose(gn, tile.g_neg * (t_read / 20.0) ** -0.06, rtol=1e-12)
    spread = lower(mlp_graph(), device=Device(drift_nu=0.06, drift_nu_std=0.02))
    ratio = programmed(spread, t_read=2000.0)[0][0] / spread.tiles[0].g_pos
    nu = -np.log(ratio) / np.log(100.0)
    assert abs(nu.mean() - 0.06) < 0.005 and abs(nu.std() - 0.02) < 0.005
    with pytest.raises(ValueRangeError, match="t_read"):
        programmed(d, t_read=1.0)
    # global drift compensation undoes a drift without spread exactly
    x = (np.random.default_rng(0).random((6, 2, 70)) < 0.3).astype(float)
    ref = simulate(lower(mlp_graph()), x).output
    comp = simulate(d, x, t_read=1e5, drift_compensation=True).output
    np.testing.assert_allclose(comp, ref, rtol=1e-9, atol=1e-9)


def test_stuck_at_fractions():
    dev = Device(g_min=1.0, g_max=25.0, stuck_lrs=0.1, stuck_hrs=0.05)
    w = np.full((256, 256), 0.5)
    w[0] = 1.0  # column max on row 0: every other G+ targets mid-range, G- targets g_min
    gp = dev.program(program_tile(w, dev)[0][1:], np.random.default_rng(0))
    assert (gp == dev.g_max).mean() == pytest.approx(0.1, abs=0.006)
    assert (gp == dev.g_min).mean() == pytest.approx(0.05, abs=0.005)
    assert ((gp > dev.g_min) & (gp < dev.g_max)).mean() == pytest.approx(0.85, abs=0.007)


def test_converters_count_saturation(spikes):
    g = mlp_graph()
    ref = simulate(lower(g), spikes)
    # spikes are exact on any DAC; a fine ADC over the full range only flips a few spikes
    fine = simulate(lower(g, array=Array(dac_bits=4, adc_bits=16)), spikes)
    assert fine.dac_saturations == 0 and fine.adc_saturations == 0
    assert (fine.spikes["lif1"] == ref.spikes["lif1"]).mean() > 0.98
    np.testing.assert_allclose(fine.output.mean(0), ref.output.mean(0), atol=0.1 * np.abs(ref.output).max())
    coarse = simulate(lower(g, array=Array(adc_bits=4, adc_range=1.0)), spikes)
    assert coarse.adc_saturations > 0
    clip = simulate(lower(g, array=Array(dac_bits=8, input_range=0.5)), spikes)
    assert clip.dac_saturations == int(spikes.sum() + clip.spikes["lif1"].sum())  # every spike > 0.5


def test_rram_preset_end_to_end(spikes):
    d = lower(mlp_graph(), device="rram", array=Array(rows=128, cols=128, dac_bits=8, adc_bits=9))
    for t in d.tiles:
        assert len(np.unique(np.concatenate([t.g_pos.ravel(), t.g_neg.ravel()]))) <= 64
    ref = simulate(lower(mlp_graph()), spikes).output.mean(0)
    got = simulate(d, spikes, seed=0, t_read=3600.0, drift_compensation=True).output.mean(0)
    assert np.all(np.isfinite(got)) and np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9


def test_sample_conductances():
    g = RRAM.sample_conductances((200, 300), seed=4, p_lrs=0.3)
    assert g.shape == (200, 300) and g.min() >= RRAM.g_min and g.max() <= RRAM.g_max
    np.testing.assert_array_equal(g, RRAM.sample_conductances((200, 300), seed=4, p_lrs=0.3))
    assert not np.array_equal(g, RRAM.sample_conductances((200, 300), seed=5, p_lrs=0.3))
    assert (g > np.sqrt(RRAM.g_min * RRAM.g_max)).mean() == pytest.approx(0.3, abs=0.01)  # bimodal
    with pytest.raises(ValueRangeError, match="p_lrs"):
        RRAM.sample_conductances(3, p_lrs=1.5)


# ------------------------------------------------------------------ configuration errors
def test_device_and_array_validation():
    with pytest.raises(ValueRangeError, match="g_max"):
        Device(g_min=5.0, g_max=1.0)
    with pytest.raises(ValueRangeError, match="levels"):
        Device(levels=1)
    with pytest.raises(ValueRangeError, match="stuck_lrs"):
        Device(stuck_lrs=1.5)
    with pytest.raises(ValueRangeError, match="adc_bits"):
        Array(adc_bits=0)
    with pytest.raises(ValueRangeError, match="dac_bits"):
        Array(dac_bits=1)
    with pytest.raises(ValueRangeError, match="rows"):
        Array(rows=0)
    with pytest.raises(ValueRangeError, match="wire_resistance"):
        Array(wire_resistance=-1.0)
    with pytest.raises(ConfigError, match="preset"):
        device_from_dict("flash")
    assert device_from_dict(PCM.to_dict()) == PCM and ideal().noiseless and not RRAM.noiseless


def test_simulate_and_lower_errors(spikes):
    d = lower(mlp_graph())
    with pytest.raises(ShapeError, match=r"\[T, B, 70\]"):
        simulate(d, spikes[..., :10])
    with pytest.raises(ValueRangeError, match="finite"):
        simulate(d, np.full((2, 1, 70), np.nan))
    with pytest.raises(ConfigError, match="dt"):
        lower(nir.NIRGraph(nodes=mlp_graph().nodes, edges=mlp_graph().edges, metadata={}))
    g = mlp_graph()
    g.nodes["lif1"].v_leak = np.full(50, 0.1)
    with pytest.raises(HardwareConstraintError, match="v_leak"):
        lower(g)


# ------------------------------------------------------------------ reference column and IR drop
def _fc_graph(w: np.ndarray) -> object:
    n_out, n = w.shape
    return nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([n])),
                               "fc": nir.Affine(weight=w, bias=np.zeros(n_out)),
                               "output": nir.Output(output_type=np.array([n_out]))},
                        edges=[("input", "fc"), ("fc", "output")], metadata={"dt": 1e-3})


def test_reference_column_programming():
    """One device per weight around the mid level g_ref = g_min + M step, M = (N-1)//2 steps a sign."""
    w = np.array([[1.0, -0.5, 0.0], [-1.0, 0.25, 0.0]])  # [rows, cols]; column 2 all zero
    dev = Device(g_min=1.0, g_max=25.0, levels=64)
    arr = Array(differential=False)
    g, ref, s = arr.program(w, dev)
    step = 24.0 / 63
    assert arr.unit(dev) == pytest.approx(31 * step) and ref.shape == (2, 1)
    np.testing.assert_allclose(ref, 1.0 + 31 * step)
    np.testing.assert_allclose(s, [1.0, 0.5, 1.0])
    np.testing.assert_allclose(g, 1.0 + step * (31 + np.array([[31, -31, 0], [-31, 16, 0]])))  # 0.5*31 -> 16
    assert g.min() >= dev.g_min and g.max() <= dev.g_max
    g_ideal, ref_ideal, _ = Array(differential=False).program(w, ideal(0.0, 20.0))
    np.testing.assert_allclose(ref_ideal, 10.0)
    np.testing.assert_allclose((g_ideal - ref_ideal) * s / 10.0, w)


def test_reference_column_ideal_equals_float_and_shares_noise(spikes, tmp_path):
    """Ideal device: same outputs as differential pairs; read noise: the reference column's noise is
    common to every column (covariance sigma^2 sum V^2 G_ref^2), as on the hardware."""
    g = mlp_graph()
    d_ref = Descriptor.load(lower(g, array=Array(rows=32, cols=32, differential=False)).save(tmp_path))
    d_pair = lower(g, array=Array(rows=32, cols=32))
    assert d_ref.tiles[0].g_neg.shape[1] == 1
    np.testing.assert_allclose(simulate(d_ref, spikes).output, simulate(d_pair, spikes).output, rtol=1e-9, atol=1e-9)
    n, w = 48, np.random.default_rng(0).uniform(-1, 1, (2, 48))
    dev = Device(read_noise=0.05)
    d = lower(_fc_graph(w), device=dev, array=Array(differential=False))
    out = simulate(d, np.ones((6000, 1, n)), seed=3).output[:, 0]  # [reads, 2]
    t, u = d.tiles[0], d.array.unit(dev)
    k = 0.05 * t.scale / u  # volts cancel: y = s I / (v_read u)
    var = k**2 * ((t.g_pos**2).sum(0) + (t.g_neg**2).sum())
    cov = k[0] * k[1] * (t.g_neg**2).sum()
    np.testing.assert_allclose(out.var(0), var, rtol=0.06)
    np.testing.assert_allclose(np.cov(out.T)[0, 1], cov, rtol=0.15)
    np.testing.assert_allclose(out.mean(0), w.sum(1), atol=4 * np.sqrt(var.max() / 6000))


def test_ir_drop_first_order_matches_nodal_solution():
    """The first-order effective conductances agree with the exact resistive network to second order."""
    from neurogate.hw.crossbar import irdrop

    rng = np.random.default_rng(0)
    g, v = rng.uniform(1, 25, (24, 12)), rng.uniform(0, 0.2, 24)
    ideal_i = v @ g
    for r in (0.5, 2.0):
        exact = irdrop.exact_currents(v, g, r)
        drop = np.abs(exact - ideal_i).max()
        assert drop > 1e-3 * np.abs(ideal_i).max()  # the wires matter at these values
        assert np.abs(v @ irdrop.effective(g, r) - exact).max() < 0.03 * drop
    # hand check on one cell: 1x1 tile, driver segment + sense segment = 2 r in series
    e = irdrop.exact_currents(np.array([0.2]), np.array([[10.0]]), 1000.0)
    np.testing.assert_allclose(e, 0.2 / (1e5 + 2000.0) * 1e6)
    np.testing.assert_allclose(irdrop.effective(np.array([[10.0]]), 1000.0), 10.0 * (1 - 2 * 1000.0 * 1e-5))


@pytest.mark.parametrize("differential", [True, False])
def test_ir_drop_in_simulation(differential, spikes):
    """wire_resistance makes the programmed tiles the first-order effective conductances of the
    physical layout (pairs interleaved, or the reference column last); currents only shrink."""
    from neurogate.hw.crossbar import irdrop

    g = mlp_graph()
    base = lower(g, array=Array(rows=32, cols=32, differential=differential))
    wired = lower(g, array=Array(rows=32, cols=32, differential=differential, wire_resistance=0.5))
    (gp, gn), (gp0, gn0) = programmed(wired)[0], programmed(base)[0]
    want = irdrop.split(irdrop.effective(irdrop.physical(gp0, gn0), 0.5), gp0.shape, gn0.shape)
    np.testing.assert_allclose(gp, want[0])
    np.testing.assert_allclose(gn, want[1])
    assert np.all(gp <= gp0) and np.all(gp[gp0 > 0] < gp0[gp0 > 0])
    y0, y1 = simulate(base, spikes).output, simulate(wired, spikes).output
    rel = np.abs(y1 - y0).max() / np.abs(y0).max()
    assert 1e-4 < rel < 0.5  # spike flips in the hidden layer amplify the drop
