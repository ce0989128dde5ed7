"""The model registry, the per-step helpers, readouts and the spike-rate / SynOps monitor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import neurogate as ng
import neurogate.models as nm
from neurogate.errors import ConfigError, ShapeError
from neurogate.models.base import _synops


def test_registry_lists_and_builds_every_model_for_any_frame_shape():
    names = nm.list()
    assert {"lif-mlp", "lif-convnet"} <= set(names) and names == sorted(names)
    for name in names:
        net = nm.create(name, num_classes=7, in_shape=(2, 12, 12))
        assert isinstance(net, nm.SpikingModel)
        assert net(torch.rand(3, 5, 2, 12, 12)).shape == (5, 7)
        assert net.config["name"] == name and net.config["num_classes"] == 7
        assert net.config["in_shape"] == [2, 12, 12]
    assert nm.list("mlp") == [n for n in names if "mlp" in n]


def test_create_applies_overrides_and_config_rebuilds_the_same_architecture():
    net = nm.create("lif-convnet", num_classes=4, in_shape=(2, 16, 16), channels=(4, 6), hidden=9)
    assert net.config["channels"] == [4, 6] and net.config["hidden"] == 9
    assert net.conv2.module[0].out_channels == 6 and net.fc1.module[0].out_features == 9
    config = dict(net.config)
    again = nm.create(config.pop("name"), **config)
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()}


def test_unknown_model_name_lists_valid_names_and_the_closest():
    with pytest.raises(ConfigError, match=r"Did you mean 'lif-convnet'\?.*lif-mlp"):
        nm.create("lif-convent")


def test_unknown_option_names_the_nearest_valid_one():
    with pytest.raises(ConfigError, match=r"no option 'hiden'\. Did you mean 'hidden'"):
        nm.create("lif-mlp", hiden=3)


def test_register_model_adds_a_named_config_and_refuses_duplicates():
    @nm.register_model("test-tiny-mlp", hidden=(3,), description="tiny")
    def tiny(num_classes=10, in_shape=(2, 4, 4), *, hidden=(5,)):
        return nm.LIFMLP(num_classes, in_shape, hidden=hidden)

    try:
        net = nm.create("test-tiny-mlp", num_classes=2, in_shape=(1, 4))
        assert net.fc1.module.out_features == 3 and net.config["hidden"] == [3]
        assert nm.get_spec("test-tiny-mlp").description == "tiny"
        with pytest.raises(ConfigError, match="already registered"):
            nm.register_model("test-tiny-mlp")(tiny)
    finally:
        nm.registry._REGISTRY.pop("test-tiny-mlp")


def test_wrong_input_shape_raises_shape_error():
    net = nm.create("lif-mlp", num_classes=3, in_shape=(2, 4, 4))
    with pytest.raises(ShapeError, match=r"\[T, B, 2, 4, 4\]"):
        net(torch.zeros(5, 2, 4, 4))
    with pytest.raises(ConfigError, match="needs frames"):
        nm.create("lif-convnet", in_shape=(40,))


def test_time_distributed_equals_a_loop_over_steps():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(4, 5, 2, 6, 6)
    folded = nm.TimeDistributed(conv)(x)
    looped = torch.stack([conv(x_t) for x_t in x])
    torch.testing.assert_close(folded, looped)


def test_readouts_match_hand_computation():
    current = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]], [[1.0, 1.0]]])  # [T=3, B=1, K=2]
    torch.testing.assert_close(nm.Readout("mean")(current), torch.tensor([[2 / 3, 1.0]]))
    # u = [1, 0.5, 1.25] and [0, 2, 2], decay 0.5
    torch.testing.assert_close(nm.Readout("leaky", decay=0.5)(current),
                               torch.tensor([[2.75 / 3, 4 / 3]]))
    with pytest.raises(ConfigError):
        nm.Readout("max")


def test_monitor_rates_equal_the_lif_layers_own_spikes():
    torch.manual_seed(1)
    net = nm.create("lif-convnet", num_classes=3, in_shape=(2, 8, 8), channels=(4, 4), hidden=6,
                    threshold=0.3)
    x = (torch.rand(6, 3, 2, 8, 8) < 0.3).float()
    with net.monitor(keep_spikes=True) as mon:
        net(x)
    assert list(mon.rates()) == ["lif1", "lif2", "lif3"] == list(net.lif_layers())
    for name, spikes in mon.spikes.items():
        assert mon.rates()[name] == pytest.approx(float(spikes.mean()))
    assert 0 < mon.rates()["lif1"] < 1
    # hooks are gone after the block
    before = dict(mon.spike_sum)
    net(x)
    assert mon.spike_sum == before


def test_synops_linear_counts_spikes_times_fan_out():
    net = nm.create("lif-mlp", num_classes=4, in_shape=(3,), hidden=(5,), threshold=0.5)
    x = torch.tensor([[[1.0, 0.0, 2.0]], [[0.0, 1.0, 0.0]]])  # [T=2, B=1, 3]: 4 input events
    with net.monitor(keep_spikes=True) as mon:
        net(x)
    hidden_spikes = float(mon.spikes["lif1"].sum())
    assert mon.synops_per_sample() == pytest.approx(4 * 5 + hidden_spikes * 4)


def test_synops_conv_counts_exact_fan_out_at_the_borders():
    conv = nn.Conv2d(2, 3, 3, padding=1, stride=1)
    x = torch.zeros(1, 2, 4, 4)
    x[0, 0, 0, 0] = 1.0       # corner: reaches 4 output positions
    x[0, 1, 1, 2] = 1.0       # interior: reaches 9
    assert float(_synops(conv, x)) == (4 + 9) * 3
    brute = 0  # brute force: outputs whose receptive field holds each input event
    for c, i, j in [(0, 0, 0), (1, 1, 2)]:
        probe = torch.zeros_like(x)
        probe[0, c, i, j] = 1.0
        w = torch.ones(3, 2, 3, 3)
        brute += int((nn.functional.conv2d(probe, w, padding=1) != 0).sum())
    assert float(_synops(conv, x)) == brute


def test_every_parameter_gets_a_gradient_and_a_step_lowers_the_loss():
    torch.manual_seed(0)
    # threshold 0.5: at this tiny size (avg-pooled 2 x 2 maps) the hidden layer never fires at 1.0
    net = nm.create("lif-convnet", num_classes=2, in_shape=(2, 8, 8), channels=(4, 8), hidden=8, threshold=0.5)
    x = (torch.rand(4, 8, 2, 8, 8) < 0.2).float()
    y = torch.arange(8) % 2
    x[:, y == 1, 0] = (torch.rand(4, 4, 8, 8) < 0.6).float()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        losses.append(float(loss.detach()))
        if len(losses) == 1:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


def test_models_use_the_library_lif_layer():
    net = nm.create("lif-mlp", num_classes=2, in_shape=(4,), hidden=(3, 3), decay=0.7)
    assert all(isinstance(m, ng.LIF) for m in net.lif_layers().values())
    assert float(net.lif1.decay) == pytest.approx(0.7)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these models are tiny, and OpenMP threads spin on a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_synops_counts_delayed_synapses_once():
    layer = ng.layers.DelayedLinear(5, 7, max_delay=4)
    x = torch.tensor([[[1.0, 0, 2, 0, 1]], [[0, 1, 0, 0, 0]]])  # [T=2, B=1, 5]: 5 input events
    assert float(_synops(layer, x)) == 5 * 7
