"""NIR interchange: unit conversions, neurogate round trips, snnTorch / Norse interoperability, errors."""

from __future__ import annotations

import math

import h5py
import nir
import numpy as np
import pytest
import torch
from torch import nn

import neurogate as ng
import neurogate.hw
from neurogate.errors import ConfigError, HardwareConstraintError, ShapeError
from neurogate.hw import units
from neurogate.models import Readout
from neurogate.models import TimeDistributed as TD


def _seq(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers).eval()


def _spiky_input(T: int, B: int, *shape: int, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, *shape, generator=g) * scale


# --------------------------------------------------------------------------- units
def test_units_hand_computed():
    # exact: tau = -dt / ln(beta); euler: tau = dt / (1 - beta); R = c / (1 - beta)
    assert units.decay_to_tau(0.9, 1e-3) == pytest.approx(-1e-3 / math.log(0.9), rel=1e-15)
    assert units.decay_to_tau(0.9, 1e-3) == pytest.approx(0.009491221581029, rel=1e-12)
    assert units.decay_to_tau(0.9, 1e-3, "euler") == pytest.approx(0.01, rel=1e-14)
    assert units.gain_to_r(0.9, 1.0) == pytest.approx(10.0)          # decay_input=False
    assert units.gain_to_r(0.9, 1 - 0.9) == pytest.approx(1.0)       # decay_input=True
    assert units.tau_to_decay(0.01, 1e-3, "euler") == pytest.approx(0.9)
    assert units.tau_to_decay(0.01, 1e-3) == pytest.approx(math.exp(-0.1))
    assert units.if_gain_to_r(1.0, 1e-3) == pytest.approx(1000.0)
    assert units.decay_to_tau(0.0, 1e-3) == 0.0 and units.tau_to_decay(0.0, 1e-3) == 0.0


@pytest.mark.parametrize("integration", units.INTEGRATIONS)
def test_units_round_trip_is_bit_exact_in_float32(integration):
    beta = np.random.default_rng(0).uniform(0.01, 0.999, 20000).astype(np.float32)
    tau = units.decay_to_tau(beta, 1e-3, integration)
    back = units.tau_to_decay(tau, 1e-3, integration).astype(np.float32)
    assert np.array_equal(back, beta)


def test_units_reject_bad_values():
    with pytest.raises(ConfigError, match="integration"):
        units.decay_to_tau(0.5, 1e-3, "rk4")
    with pytest.raises(ng.errors.ValueRangeError, match="tau >= dt"):
        units.tau_to_decay(1e-4, 1e-3, "euler")
    with pytest.raises(ng.errors.ValueRangeError, match="dt"):
        units.decay_to_tau(0.5, 0.0)


# --------------------------------------------------------------------------- export contents
def test_export_lif_mlp_nodes_parameters_and_metadata():
    torch.manual_seed(0)
    net = ng.models.create("lif-mlp", num_classes=3, in_shape=(2, 3, 3), hidden=(5,), decay=0.6, threshold=0.7)
    g = ng.hw.to_nir(net, dt=2e-3)
    assert [type(g.nodes[k]).__name__ for k in ("input", "flatten", "fc1", "lif1", "fc_out", "output")] == [
        "Input", "Flatten", "Affine", "LIF", "Affine", "Output"]
    assert g.edges == [("input", "flatten"), ("flatten", "fc1"), ("fc1", "lif1"), ("lif1", "fc_out"),
                       ("fc_out", "output")]
    assert np.array_equal(g.nodes["fc1"].weight, net.fc1.module.weight.detach().numpy())  # (out, in)
    lif = g.nodes["lif1"]
    beta = float(np.float32(0.6))
    assert lif.tau.shape == (5,) and lif.tau.dtype == np.float64
    np.testing.assert_allclose(lif.tau, -2e-3 / math.log(beta), rtol=1e-14)
    np.testing.assert_allclose(lif.r, 1 / (1 - beta), rtol=1e-14)
    np.testing.assert_allclose(lif.v_threshold, np.float32(0.7))
    assert np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    assert lif.metadata["reset"] == "subtract" and lif.metadata["decay_input"] is False
    m = g.metadata
    assert m["dt"] == 2e-3 and m["integration"] == "exact" and m["reset"] == "subtract"
    assert m["decay_input"] is False and m["readout"] == "mean" and ">=" in m["threshold"]


def test_export_euler_and_decay_input_conversion():
    net = _seq(TD(nn.Linear(4, 3)), ng.LIF(decay=0.75, decay_input=True, reset="zero"))
    lif = ng.hw.to_nir(net, dt=1e-4, integration="euler").nodes["1"]
    np.testing.assert_allclose(lif.tau, 1e-4 / 0.25)
    np.testing.assert_allclose(lif.r, 1.0)


# --------------------------------------------------------------------------- neurogate round trips
@pytest.mark.parametrize("readout", ["mean", "leaky"])
@pytest.mark.parametrize("integration", units.INTEGRATIONS)
def test_round_trip_registered_model_exact(readout, integration, tmp_path):
    torch.manual_seed(1)
    net = ng.models.create("lif-mlp-2", num_classes=4, in_shape=(2, 4, 4), hidden=(16, 8), readout=readout).eval()
    x = (torch.rand(15, 3, 2, 4, 4) < 0.4).float() * 3
    g = ng.hw.to_nir(net, dt=1e-3, integration=integration)
    same = ng.hw.from_nir(g)
    assert torch.equal(net(x), same(x))
    nir.write(tmp_path / "net.nir", g)
    from_file = ng.hw.from_nir(tmp_path / "net.nir")
    assert torch.equal(net(x), from_file(x))
    assert from_file.metadata["readout"] == readout and from_file.dt == 1e-3


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("decay_input", [False, True])
def test_round_trip_per_neuron_parameters_and_resets(reset, decay_input):
    torch.manual_seed(2)
    lif = ng.LIF(shape=(7,), reset=reset, decay_input=decay_input, learn_decay=True, learn_threshold=True)
    with torch.no_grad():
        lif.decay_logit.copy_(torch.randn(7))
        lif.threshold.copy_(torch.rand(7) + 0.3)
    net = _seq(TD(nn.Linear(5, 7)), lif, TD(nn.Linear(7, 3, bias=False)))
    x = _spiky_input(25, 4, 5, scale=4.0)
    g = ng.hw.to_nir(net, dt=5e-4)
    assert isinstance(g.nodes["2"], nir.Linear)
    back = ng.hw.from_nir(g)
    assert back[1].reset == reset and back[1].decay_input == decay_input
    assert torch.equal(back[1].decay, lif.decay.detach()) and torch.equal(back[1].threshold, lif.threshold.detach())
    assert torch.equal(net(x), back(x))
    spikes = net[:2](x)
    assert 0 < spikes.mean() < 1


def test_round_trip_conv_avgpool_sumpool():
    torch.manual_seed(3)
    net = _seq(
        TD(nn.Conv2d(2, 4, 3, padding=1)), ng.LIF(decay=0.5, reset="zero"),
        TD(nn.AvgPool2d(2)),
        TD(nn.Conv2d(4, 6, 3, stride=1, padding=0, bias=False)), ng.LIF(decay=0.6),
        TD(ng.hw.SumPool2d(2)),
        TD(nn.Flatten()), TD(nn.Linear(6, 3)), ng.LIF(decay=0.9),
    )
    g = ng.hw.to_nir(net, dt=1e-3, input_shape=(2, 8, 8))
    kinds = [type(g.nodes[k]).__name__ for k in ("0", "2", "3", "5", "6")]
    assert kinds == ["Conv2d", "AvgPool2d", "Conv2d", "SumPool2d", "Flatten"]
    assert tuple(g.nodes["output"].output_type["output"]) == (3,)
    x = _spiky_input(12, 2, 2, 8, 8, scale=2.0)
    back = ng.hw.from_nir(g)
    assert torch.equal(net(x), back(x))
    assert net[:2](x).sum() > 0


def test_round_trip_conv1d():
    torch.manual_seed(4)
    net = _seq(TD(nn.Conv1d(3, 4, 5, stride=2, padding=2, dilation=1)), ng.LIF(decay=0.7),
               TD(nn.Flatten()), TD(nn.Linear(4 * 8, 2)))
    g = ng.hw.to_nir(net, dt=1e-3, input_shape=(3, 16))
    assert isinstance(g.nodes["0"], nir.Conv1d)
    x = _spiky_input(10, 2, 3, 16)
    assert torch.equal(net(x), ng.hw.from_nir(g)(x))


def test_batchnorm_is_folded_into_the_preceding_layer():
    torch.manual_seed(5)
    conv, bn = nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3)
    fc, bn1 = nn.Linear(3 * 16, 4), nn.BatchNorm1d(4)
    with torch.no_grad():
        for b in (bn, bn1):
            b.running_mean.uniform_(-0.5, 0.5)
            b.running_var.uniform_(0.5, 2.0)
            b.weight.uniform_(0.5, 1.5)
            b.bias.uniform_(-0.2, 0.2)
    net = _seq(TD(nn.Sequential(conv, bn)), ng.LIF(decay=0.5), TD(nn.Flatten()), TD(fc), TD(bn1))
    g = ng.hw.to_nir(net, dt=1e-3, input_shape=(2, 4, 4))
    assert [type(n).__name__ for n in g.nodes.values()] == ["Input", "Conv2d", "LIF", "Flatten", "Affine", "Output"]
    assert g.nodes["0_0"].metadata["folded_batchnorm"] == "0.1"
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    np.testing.assert_allclose(g.nodes["0_0"].weight, conv.weight.detach().numpy() * scale[:, None, None, None],
                               rtol=1e-6)
    x = _spiky_input(10, 3, 2, 4, 4)
    back = ng.hw.from_nir(g)
    torch.testing.assert_close(back(x), net(x), rtol=1e-5, atol=1e-5)   # folding rounds differently
    assert torch.equal(back[:2](x), net[:2](x))                         # same spikes


def test_non_leaky_neuron_is_an_if_node():
    net = _seq(TD(nn.Linear(4, 3)), ng.LIF(decay=1.0, threshold=2.0, reset="zero"))
    g = ng.hw.to_nir(net, dt=1e-3)
    node = g.nodes["1"]
    assert isinstance(node, nir.IF)
    np.testing.assert_allclose(node.r, 1000.0)   # per-step gain R dt = 1
    x = _spiky_input(20, 2, 4)
    back = ng.hw.from_nir(g)
    assert torch.equal(back(x), net(x)) and net(x).sum() > 0


def test_foreign_li_node_integrates_by_hand():
    # tau = 10 ms, R = 2, dt = 1 ms, exact: beta = exp(-0.1), gain = R (1 - beta)
    li = nir.LI(tau=np.full(2, 0.01), r=np.full(2, 2.0), v_leak=np.zeros(2))
    g = nir.NIRGraph.from_list(nir.Input(input_type=np.array([2])), li, nir.Output(output_type=np.array([2])))
    net = ng.hw.from_nir(g, dt=1e-3)
    x = torch.ones(3, 1, 2)
    b, c = math.exp(-0.1), 2 * (1 - math.exp(-0.1))
    expected = torch.tensor([c, b * c + c, b * (b * c + c) + c])
    torch.testing.assert_close(net(x)[:, 0, 0], expected.float(), rtol=1e-6, atol=0)
    again = ng.hw.to_nir(net, dt=1e-3, input_shape=(2,))    # and back to NIR
    (node,) = [n for n in again.nodes.values() if isinstance(n, nir.LI)]
    np.testing.assert_allclose(node.tau, 0.01, rtol=1e-6)
    np.testing.assert_allclose(node.r, 2.0, rtol=1e-6)


def test_delayed_linear_exports_as_delay_branches():
    delay = pytest.importorskip("neurogate.layers.delay")
    torch.manual_seed(12)
    layer = delay.DelayedLinear(6, 5, max_delay=5, bias=True).eval()
    net = _seq(layer, ng.LIF(decay=0.8), TD(nn.Linear(5, 3)), ng.LIF())
    g = ng.hw.to_nir(net, dt=1e-3)
    sub = g.nodes["0"]
    assert isinstance(sub, nir.NIRGraph) and sub.metadata["layer"] == "DelayedLinear"
    w, d = layer.export_weights()
    for k in torch.unique(d).tolist():
        branch = sub.nodes[f"w{k}"]
        np.testing.assert_array_equal(branch.weight, torch.where(d == k, w, 0).numpy())
        if k:
            np.testing.assert_allclose(sub.nodes[f"delay{k}"].delay, k * 1e-3)
    x = _spiky_input(20, 2, 6)
    back = ng.hw.from_nir(g)
    assert torch.equal(back[0].delays, d) and torch.equal(back(x), net(x)) and net(x).sum() > 0


def test_lazy_public_names():
    assert ng.hw.to_nir is ng.hw.nir.to_nir and ng.hw.from_nir is ng.hw.nir.from_nir
    assert {"LIF", "Linear", "Conv2d", "AvgPool2d", "Readout", "BatchNorm2d"} <= set(ng.hw.supported_layers())


def test_registered_convnet_without_maxpool_round_trips():
    torch.manual_seed(13)
    net = ng.models.create("lif-convnet-small", num_classes=3, in_shape=(2, 6, 6), pool=1, hidden=8,
                           threshold=0.3, readout="leaky")
    x = (torch.rand(6, 2, 2, 6, 6) < 0.3).float() * 2
    net.train()(x)      # running statistics for the BatchNorm fold
    net.eval()
    g = ng.hw.to_nir(net, dt=1e-3)
    assert [type(n).__name__ for n in g.nodes.values()] == [
        "Input", "Conv2d", "LIF", "Conv2d", "LIF", "Flatten", "Affine", "LIF", "Affine", "LI", "Output"]
    torch.testing.assert_close(ng.hw.from_nir(g)(x), net(x), rtol=1e-5, atol=1e-6)


def test_default_convnet_exports_and_round_trips():
    # The model `neurogate train` trains by default must reach hardware: avg pooling, BN folded.
    torch.manual_seed(5)
    net = ng.models.create("lif-convnet", num_classes=10, in_shape=(2, 34, 34))
    x = (torch.rand(4, 2, 2, 34, 34) < 0.2).float()
    net.train()(x)
    net.eval()
    g = ng.hw.to_nir(net, dt=1e-3)
    assert "AvgPool2d" in {type(n).__name__ for n in g.nodes.values()}
    torch.testing.assert_close(ng.hw.from_nir(g)(x), net(x), rtol=1e-4, atol=1e-5)


def test_graph_without_metadata_needs_dt():
    g = ng.hw.to_nir(_seq(TD(nn.Linear(3, 2)), ng.LIF()), dt=1e-3)
    g.metadata = {}
    with pytest.raises(ConfigError, match="dt"):
        ng.hw.from_nir(g)
    assert isinstance(ng.hw.from_nir(g, dt=1e-3)[1], ng.LIF)


# --------------------------------------------------------------------------- snnTorch
snn = pytest.importorskip("snntorch")


def _run_stepwise(module, x: torch.Tensor, stateful: bool) -> torch.Tensor:
    outs, state = [], None
    for x_t in x:
        if stateful:
            out, state = module(x_t, state)
        else:
            out = module(x_t)
            out = out[0] if isinstance(out, tuple) else out
        outs.append(out)
    return torch.stack(outs)


def _zero_reset_net(decay_input: bool, per_neuron: bool = True) -> nn.Sequential:
    torch.manual_seed(6)
    fc1, fc2 = nn.Linear(6, 10), nn.Linear(10, 4)
    with torch.no_grad():
        fc1.weight.mul_(3 if decay_input else 1.5)
        fc2.weight.mul_(4 if decay_input else 2)
    lif1 = ng.LIF(decay=0.8, shape=(10,), reset="zero", decay_input=decay_input)
    if per_neuron:
        with torch.no_grad():
            lif1.decay_value.copy_(torch.linspace(0.5, 0.9, 10))
    return _seq(TD(fc1), lif1, TD(fc2), ng.LIF(decay=0.7, threshold=0.5, reset="zero", decay_input=decay_input))


@pytest.mark.parametrize("decay_input", [False, True])
def test_neurogate_to_snntorch_same_spikes(decay_input):
    from snntorch.import_nir import import_from_nir

    # snnTorch imports a gain r dt / tau != 1 by dividing v_th by ONE value (np.unique(...)[0]):
    # exact only when that gain is the same for every neuron, i.e. one decay per layer
    net = _zero_reset_net(decay_input, per_neuron=not decay_input)
    x = _spiky_input(40, 3, 6, seed=7)
    ref = net(x)
    g = ng.hw.to_nir(net, dt=1e-4, integration="euler")   # snnTorch reads NIR at dt = 1e-4, Euler
    theirs = _run_stepwise(import_from_nir(g), x, stateful=False)
    assert ref.sum() > 5 and torch.equal(theirs, ref)


@pytest.mark.parametrize("reset_delay", [False, True])
def test_snntorch_to_neurogate_same_spikes(reset_delay):
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(8)
    # per-neuron beta/threshold: snnTorch writes scalars as 0-d arrays, which NIR's type check rejects
    net = nn.Sequential(
        nn.Linear(6, 8),
        snn.Leaky(beta=torch.rand(8) * 0.5 + 0.4, threshold=torch.ones(8), init_hidden=True,
                  reset_mechanism="zero", reset_delay=reset_delay),
        nn.Linear(8, 4),
        snn.Leaky(beta=torch.full((4,), 0.7), threshold=torch.full((4,), 0.5), init_hidden=True,
                  reset_mechanism="zero", reset_delay=reset_delay),
    )
    x = _spiky_input(40, 3, 6, seed=9)
    with torch.no_grad():
        ref = torch.stack([net(x_t) for x_t in x])
    g = export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0])
    ours = ng.hw.from_nir(g, dt=1e-4, integration="euler")
    assert isinstance(ours[1], ng.LIF) and ours[1].reset == "zero"
    torch.testing.assert_close(ours[1].decay, net[1].beta.detach(), rtol=0, atol=1e-7)
    assert ref.sum() > 5 and torch.equal(ours(x), ref)


# --------------------------------------------------------------------------- Norse
norse = pytest.importorskip("norse.torch")


def test_neurogate_to_norse_same_spikes():
    net = _zero_reset_net(decay_input=True)    # Norse ignores r, i.e. reads r = 1 = decay_input
    x = _spiky_input(40, 3, 6, seed=10)
    ref = net(x)
    g = ng.hw.to_nir(net, dt=1e-3, integration="euler")
    theirs = _run_stepwise(norse.from_nir(g, dt=1e-3), x, stateful=True)
    assert ref.sum() > 5 and torch.equal(theirs, ref)


def test_norse_to_neurogate_same_spikes():
    from norse.torch.functional.lif_box import LIFBoxParameters
    from norse.torch.module.lif_box import LIFBoxCell
    from norse.torch.utils.export_nir import to_nir as norse_to_nir

    torch.manual_seed(11)
    fc = nn.Linear(6, 8)
    with torch.no_grad():
        fc.weight.mul_(4)
    cell = LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.linspace(100.0, 400.0, 8), v_th=torch.full((8,), 0.8),
                                       v_leak=torch.zeros(8)), dt=1e-3)
    model = norse.SequentialState(fc, cell)
    x = _spiky_input(40, 3, 6, seed=12)
    with torch.no_grad():
        ref = _run_stepwise(model, x, stateful=True)
    g = norse_to_nir(model, torch.zeros(1, 6), dt=1e-3)
    # Norse 1.1 writes tau = dt / tau_mem_inv (its own from_nir then reads 1/tau: 1000x too fast);
    # the membrane time constant is 1 / tau_mem_inv, so undo the factor dt before importing
    inv = cell.p.tau_mem_inv.numpy()
    np.testing.assert_allclose(g.nodes["1"].tau, 1e-3 / inv, rtol=1e-6)
    g.nodes["1"].tau = g.nodes["1"].tau / 1e-3
    ours = ng.hw.from_nir(g, dt=1e-3, integration="euler")
    assert ours[1].decay_input is True                  # gain dt/tau = 1 - beta
    assert ref.sum() > 5 and torch.equal(ours(x), ref)


# --------------------------------------------------------------------------- bad input
def test_maxpool_is_refused_with_the_layer_and_the_alternatives():
    net = ng.models.create("lif-convnet-small", num_classes=3, in_shape=(2, 8, 8), pool_mode="max")
    with pytest.raises(HardwareConstraintError, match=r"pool1.*MaxPool2d.*AvgPool2d") as err:
        ng.hw.to_nir(net)
    assert err.value.layer == "pool1"


def test_unsupported_layer_names_it_and_lists_supported():
    net = _seq(TD(nn.Linear(4, 3)), TD(nn.ReLU()), ng.LIF())
    with pytest.raises(HardwareConstraintError, match=r"^1: .*ReLU.*Affine|^1: .*ReLU.*Linear") as err:
        ng.hw.to_nir(net)
    assert "LIF" in str(err.value) and "Conv2d" in str(err.value)


def test_custom_container_is_refused():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(ConfigError, match="Branchy"):
        ng.hw.to_nir(_seq(Branchy(), ng.LIF()), input_shape=(3,))


def test_export_shape_mismatch_names_layer():
    net = nn.Sequential()
    net.add_module("fc", TD(nn.Linear(4, 2)))
    with pytest.raises(ShapeError, match="fc"):
        ng.hw.to_nir(net, input_shape=(5,))


def test_unknown_node_type_in_file_is_named(tmp_path):
    g = ng.hw.to_nir(_seq(TD(nn.Linear(3, 2)), ng.LIF()), dt=1e-3)
    path = tmp_path / "bad.nir"
    nir.write(path, g)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/1/type"]
        f["node/nodes/1"].create_dataset("type", data="Banana", dtype=h5py.string_dtype())
    with pytest.raises(ConfigError, match=r"'1'.*'Banana'"):
        ng.hw.from_nir(path)


def test_known_but_unsupported_node_is_named():
    g = nir.NIRGraph.from_list(nir.Input(input_type=np.array([3])), nir.Threshold(threshold=np.ones(3)),
                               nir.Output(output_type=np.array([3])))
    with pytest.raises(ConfigError, match=r"Threshold.*Affine"):
        ng.hw.from_nir(g, dt=1e-3)


def test_inconsistent_shapes_in_graph():
    nodes = {"input": nir.Input(input_type=np.array([6])),
             "a": nir.Affine(weight=np.ones((5, 6), np.float32), bias=np.zeros(5, np.float32)),
             "b": nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)),
             "output": nir.Output(output_type=np.array([3]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("a", "b"), ("b", "output")], type_check=False)
    with pytest.raises(ShapeError, match=r"'b'.*\(4,\).*'a'.*\(5,\)"):
        ng.hw.from_nir(g, dt=1e-3)


def test_branching_graph_and_nonzero_reset_are_refused():
    lin = {"input": nir.Input(input_type=np.array([2])),
           "a": nir.Affine(weight=np.eye(2, dtype=np.float32), bias=np.zeros(2, np.float32)),
           "b": nir.Affine(weight=np.eye(2, dtype=np.float32), bias=np.zeros(2, np.float32)),
           "output": nir.Output(output_type=np.array([2]))}
    g = nir.NIRGraph(nodes=lin, edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")],
                     type_check=False)
    with pytest.raises(ConfigError, match="'input' has 2 outgoing"):
        ng.hw.from_nir(g, dt=1e-3)
    lif = nir.LIF(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                  v_reset=np.full(2, -0.5))
    g = nir.NIRGraph.from_list(nir.Input(input_type=np.array([2])), lif, nir.Output(output_type=np.array([2])))
    with pytest.raises(HardwareConstraintError, match="v_reset"):
        ng.hw.from_nir(g, dt=1e-3)


def test_readout_must_be_last():
    net = _seq(TD(nn.Linear(3, 2)), Readout("mean"), ng.LIF())
    with pytest.raises(ConfigError, match="Readout"):
        ng.hw.to_nir(net)
