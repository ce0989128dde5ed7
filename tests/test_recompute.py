"""``saved_membrane="recompute"``: keep x, recompute the membrane in the backward (exact).

The Triton engine's fused recompute kernel is tested in ``tests/test_triton_lif.py`` (interpreter);
here the CPU path (the forward run again in the backward) and the mode's contract; its error paths
are in ``tests/test_saved_membrane.py``.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import neurogate as ng
from neurogate.functional import lif_scan

CASES = list(itertools.product(["subtract", "zero", "none"], ["atan", "sigmoid", "rectangular"], [False, True]))


def _grads(mode, x, decay, thr, v0, w, **kw):
    xs, ds, ts, vs = (t.detach().clone().requires_grad_() for t in (x, decay, thr, v0))
    s = lif_scan(xs, decay=ds, threshold=ts, v0=vs, saved_membrane=mode, **kw)
    return s, torch.autograd.grad((s * w).sum(), (xs, ds, ts, vs))


def _problem(T=15, B=3, N=40, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (0.8 * torch.randn(T, B, N, generator=g) + 0.4).to(dtype)
    decay, thr = (torch.rand(N, generator=g) * 0.5 + 0.4).to(dtype), (0.6 + torch.rand(N, generator=g)).to(dtype)
    v0, w = torch.randn(B, N, generator=g).to(dtype), torch.randn(T, B, N, generator=g).to(dtype)
    return x, decay, thr, v0, w


@pytest.mark.parametrize("reset,surrogate,decay_input", CASES)
def test_equals_the_float_mode_bit_for_bit_and_the_reference(reset, surrogate, decay_input):
    x, decay, thr, v0, w = _problem()
    kw = dict(reset=reset, surrogate=surrogate, decay_input=decay_input, detach_reset=reset == "zero")
    s_r, g_r = _grads("recompute", x, decay, thr, v0, w, backend="cpu", **kw)
    s_f, g_f = _grads("float", x, decay, thr, v0, w, backend="cpu", **kw)
    s_ref, g_ref = _grads("float", x, decay, thr, v0, w, backend="reference", **kw)
    assert torch.equal(s_r, s_f) and torch.equal(s_r, s_ref)
    for a, b, r in zip(g_r, g_f, g_ref):
        assert torch.equal(a, b)  # the same h, recomputed by the same kernel
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-5 * (1 + r.abs().max().item()))


def test_keeps_x_and_no_membrane():
    x = torch.rand(40, 4, 256, requires_grad=True)
    for mode, expect in (("float", 1), ("recompute", 0)):
        kept: list[torch.Tensor] = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
            lif_scan(x, decay=0.9, saved_membrane=mode)
        large = [t for t in kept if t.numel() >= x.numel()]
        new = [t for t in large if t.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()]
        assert len(new) == expect, mode  # recompute: only x itself (no copy), float: h as well


def test_float64_gradcheck_away_from_threshold():
    g = torch.Generator().manual_seed(1)
    x = (0.3 * torch.rand(6, 2, 3, generator=g, dtype=torch.float64)).requires_grad_()
    decay = torch.full((3,), 0.7, dtype=torch.float64, requires_grad=True)

    def f(x, decay):
        s, = (lif_scan(x, decay=decay, threshold=5.0, surrogate="sigmoid", saved_membrane="recompute",
                       backend="cpu"),)
        return s

    # threshold 5 is never reached: spikes are constant and the surrogate term is smooth
    assert torch.autograd.gradcheck(f, (x, decay))


def test_module_and_return_state():
    x = torch.rand(20, 2, 16, requires_grad=True)
    lif = ng.LIF(tau=3.0, learn_decay=True, shape=(16,), saved_membrane="recompute")
    ref = ng.LIF(tau=3.0, learn_decay=True, shape=(16,))
    (lif(x) * torch.arange(16.0)).sum().backward()
    gx = x.grad.clone()
    x.grad = None
    (ref(x) * torch.arange(16.0)).sum().backward()
    assert torch.equal(gx, x.grad) and torch.equal(lif.decay_logit.grad, ref.decay_logit.grad)
    # with return_state the float trace exists anyway: it is returned (and kept)
    s, v, h = lif_scan(x, decay=0.8, saved_membrane="recompute", return_state=True)
    assert h.shape == x.shape and torch.autograd.grad((s * h).sum(), x)[0].shape == x.shape


def test_input_modified_in_place_after_the_forward_is_an_error():
    # x is kept for the backward: changing it in place must not give silently wrong gradients.
    w = torch.rand(8, 8, requires_grad=True)
    x = torch.rand(10, 2, 8) @ w
    s = lif_scan(x, decay=0.9, saved_membrane="recompute")
    x.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        s.sum().backward()



@pytest.mark.parametrize("mode", ["recompute", "fp8"])
def test_torch_compile_fullgraph_keeps_the_mode(mode):
    # Under torch.compile the custom operator carries the mode: the compiled gradients equal the
    # eager ones of the same mode, and the compiled graph keeps what the mode keeps.
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 16)
    lif = ng.LIF(tau=3.0, learn_threshold=True, shape=(16,), saved_membrane=mode)
    lif_float = ng.LIF(tau=3.0, learn_threshold=True, shape=(16,))
    net = torch.nn.Sequential(lin, lif)
    x = torch.randn(12, 3, 8) * 2

    def grads(model):
        net.zero_grad()
        model(x).sum(0).pow(2).sum().backward()
        return [p.grad.clone() for p in net.parameters()]

    eager = grads(net)
    compiled = grads(torch.compile(net, fullgraph=True))
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    net = torch.nn.Sequential(lin, lif_float)
    float_grads = grads(net)
    if mode == "recompute":  # exact
        for a, b in zip(compiled, float_grads):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
