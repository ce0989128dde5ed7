"""neurogate.LIF: statelessness, explicit state, streaming steps, learnable parameters, compile."""

import math

import pytest
import torch
from torch import nn

import neurogate as ng
from neurogate.errors import ConfigError, ValueRangeError


@pytest.fixture
def x():
    return torch.randn(30, 4, 16, generator=torch.Generator().manual_seed(0)) + 0.4


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_stateless_and_explicit_state(x, backend):
    lif = ng.LIF(decay=0.8, backend=backend)
    assert torch.equal(lif(x), lif(x))  # no hidden state leaks between calls
    s1, st = lif(x[:12], return_state=True)
    s2, st2 = lif(x[12:], st, return_state=True)
    s_full, st_full = lif(x, return_state=True)
    assert torch.equal(torch.cat([s1, s2]), s_full)
    assert torch.equal(st2.v, st_full.v)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_step_equals_multistep_exactly(x, reset):
    lif = ng.LIF(decay=0.7, threshold=0.9, reset=reset, decay_input=True)
    want, want_state = lif(x, return_state=True)
    state, got = None, []
    for x_t in x:
        s_t, state = lif.step(x_t, state)
        got.append(s_t)
    assert torch.equal(torch.stack(got), want)
    assert torch.equal(state.v, want_state.v)


def test_step_gradients_match_multistep(x):
    lif = ng.LIF(decay=0.7, learn_decay=True, learn_threshold=True, shape=(16,))
    xs = x.clone().requires_grad_()
    lif(xs).sum().backward()
    g_multi = (xs.grad.clone(), lif.decay_logit.grad.clone(), lif.threshold.grad.clone())
    lif.zero_grad()
    xs.grad = None
    state, outs = None, []
    for x_t in xs.unbind(0):
        s_t, state = lif.step(x_t, state)
        outs.append(s_t)
    torch.stack(outs).sum().backward()
    for a, b in zip(g_multi, (xs.grad, lif.decay_logit.grad, lif.threshold.grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_tau_sets_exponential_decay():
    lif = ng.LIF(tau=5.0, dt=0.5)
    assert lif.decay.item() == pytest.approx(math.exp(-0.1))
    assert lif.tau.item() == pytest.approx(10.0, rel=1e-5)  # in steps of dt


def test_learnable_per_neuron_parameters_train(x):
    torch.manual_seed(0)
    lif = ng.LIF(decay=0.5, learn_decay=True, learn_threshold=True, shape=(16,))
    opt = torch.optim.Adam(lif.parameters(), lr=0.05)
    target = 0.05  # the initial rate is about 0.3
    first = None
    for _ in range(30):
        loss = (lif(x).mean() - target) ** 2
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    assert lif.decay_logit.grad.shape == (16,) and lif.threshold.grad.shape == (16,)
    assert 0 < lif.decay.min() and lif.decay.max() < 1


def test_state_dict_round_trip(x):
    a = ng.LIF(decay=0.6, learn_threshold=True, shape=(16,))
    with torch.no_grad():
        a.threshold.uniform_(0.5, 1.5)
    b = ng.LIF(decay=0.6, learn_threshold=True, shape=(16,))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x), b(x))


def test_bad_options():
    with pytest.raises(ValueRangeError, match="decay=1.5"):
        ng.LIF(decay=1.5)
    with pytest.raises(ValueRangeError, match="tau"):
        ng.LIF(tau=-1.0)
    with pytest.raises(ValueRangeError, match="learn_decay"):
        ng.LIF(decay=1.0, learn_decay=True)
    with pytest.raises(ConfigError, match="subtract"):
        ng.LIF(reset="soft")


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.lif1 = ng.LIF(decay=0.9, learn_threshold=True, shape=(32,))
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):  # x: [T, B, 8]
        return self.fc2(self.lif1(self.fc1(x))).sum(0)


def test_torch_compile_fullgraph_forward_and_backward():
    torch.manual_seed(0)
    net = _Net()
    x = torch.randn(10, 3, 8) * 2
    eager_out = net(x)
    eager_out.sum().backward()
    eager_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    compiled = torch.compile(net, fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager_out, rtol=1e-5, atol=1e-5)
    for p, g in zip(net.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)
