"""Learnable delays (DCLS): the convention, the DCLS package as an independent truth, every engine
against the reference (forward and gradients), the truncation bound, the layer's hooks, errors."""

from __future__ import annotations

import math

import pytest
import torch

from neurogate.errors import CheckpointError, ConfigError, DTypeError, ShapeError, ValueRangeError
from neurogate.functional import delay as D
from neurogate.layers.delay import DelayedLinear, clamp_positions, delay_layers, schedule_sigma


def _hand_loop(x: torch.Tensor, W: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The independent truth: y[t, b, o] = sum_i W[o, i] x[t - d[o, i], b, i], zero before t = 0."""
    T, B, _ = x.shape
    y = torch.zeros(T, B, W.shape[0], dtype=torch.float64)
    for o in range(W.shape[0]):
        for i in range(W.shape[1]):
            k = int(d[o, i])
            if k < T:
                y[k:, :, o] += float(W[o, i]) * x[: T - k, :, i].double()
    return y


def _params(O, I, K, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    lo, hi = D.position_range(K)
    w = torch.randn(O, I, generator=g, dtype=dtype)
    P = (torch.rand(O, I, generator=g, dtype=dtype) * (hi - lo) + lo)
    return w, P


# ----------------------------------------------------------------------------- convention
@pytest.mark.parametrize("K", [1, 6, 25])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_integer_delays_equal_the_hand_loop(K, backend):
    torch.manual_seed(K)
    T, B, I, O = 30, 3, 5, 7
    x = torch.randn(T, B, I)
    W = torch.randn(O, I)
    d = torch.randint(0, K, (O, I))
    d[0, 0], d[-1, -1] = 0, K - 1  # both ends of the range
    y = D.delayed_linear_integer(x, W, d, K, backend=backend)
    torch.testing.assert_close(y.double(), _hand_loop(x, W, d), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("K", [7, 8, 25])
def test_position_maps_to_causal_delay(K):
    """A narrow Gaussian at position P peaks at delay (K-1)//2 - P: output t sees input t - d only."""
    T = 40
    lo, hi = D.position_range(K)
    for P in range(lo, hi + 1):
        d = (K - 1) // 2 - P
        x = torch.zeros(T, 1, 1)
        x[5, 0, 0] = 1.0  # an impulse at step 5
        y = D.delayed_linear(x, torch.ones(1, 1), torch.tensor([[float(P)]]), 0.27, K, backend="reference")
        assert int(y[:, 0, 0].argmax()) == 5 + d
        assert float(y[:5].abs().max()) == 0.0  # causal: nothing before the impulse
        assert int(D.positions_to_delays(torch.tensor([[float(P)]]), K)) == d
        assert float(D.delays_to_positions(torch.tensor(d), K)) == P


def test_causality_of_every_engine():
    K, T = 9, 16
    w, P = _params(4, 3, K)
    x = torch.randn(T, 2, 3, requires_grad=True)
    for y in (
        D.delayed_linear(x, w, P, 0.5, K, backend="reference"),
        D.delayed_linear(x, w, P, 0.5, K, backend="cpu"),
        D.delayed_linear_integer(x, w, D.positions_to_delays(P, K), K, backend="cpu"),
    ):
        (g,) = torch.autograd.grad(y[12].sum(), x)  # sees steps 12 - (K - 1) .. 12 only
        assert float(g[13:].abs().max()) == 0.0 and float(g[: 12 - K + 1].abs().max()) == 0.0
        assert float(g[12 - K + 1 :].abs().max()) > 0.0


# ----------------------------------------------------------------------------- the DCLS package
@pytest.mark.parametrize("K", [25, 8])
def test_gaussian_kernel_and_output_match_dcls_package(K):
    """Our reference equals DCLS 0.1.1's Dcls1d (gauss) for the same w, P, SIG: sigma = SIG + 0.27,
    input left-padded with K - 1 steps, time-major permuted to [B, C, T]."""
    modules = pytest.importorskip("DCLS.construct.modules")
    torch.manual_seed(1)
    I, O, T, B = 6, 5, 40, 3
    m = modules.Dcls1d(I, O, kernel_count=1, dilated_kernel_size=K, version="gauss", bias=False)
    w, P = _params(O, I, K, seed=2)
    for sig in (K // 2, 1.7, 0.23):
        with torch.no_grad():
            m.weight.copy_(w.unsqueeze(-1))
            m.P.copy_(P.view(1, O, I, 1))
            m.SIG.fill_(sig)
        k_dcls = m.DCK(m.weight, m.P, m.SIG)
        k_ours = D.gaussian_delay_kernel(w, P, sig + D.SIGMA_OFFSET, K)
        torch.testing.assert_close(k_ours, k_dcls, atol=1e-6, rtol=1e-5)
        x = torch.randn(T, B, I)
        y_dcls = m(torch.nn.functional.pad(x.permute(1, 2, 0), (K - 1, 0))).permute(2, 0, 1)
        for backend in ("reference", "cpu"):
            y = D.delayed_linear(x, w, P, sig + D.SIGMA_OFFSET, K, backend=backend)
            torch.testing.assert_close(y, y_dcls, atol=2e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- truncation
def test_truncation_bound_holds_and_is_tight_enough():
    K = 25
    w = torch.ones(1, 1, dtype=torch.float64)
    for sigma in (0.3, 0.5, 0.8):
        for r in (2, 3, 4):
            worst = 0.0
            for c in torch.linspace(0, K - 1, 801, dtype=torch.float64):
                P = (c - K // 2).view(1, 1)
                k = D.gaussian_delay_kernel(w, P, sigma, K)[0, 0]
                coef, dmin = D.gaussian_taps(w, P, sigma, K, r)
                kt = torch.zeros(K, dtype=torch.float64)
                for j in range(2 * r):
                    if 0 <= int(dmin) + j < K:
                        kt[K - 1 - int(dmin) - j] += coef[0, 0, j]
                worst = max(worst, float((kt - k).abs().sum()))
            assert worst <= D.truncation_bound(sigma, r) + 1e-14  # + float64 rounding
            if (sigma, r) == (0.5, 2):
                assert worst > 1e-4  # 4 taps at the floor are NOT fp32-exact: the engine uses 6
            if (sigma, r) == (0.5, 3):
                assert worst < 1e-7
    assert D.truncation_radius(0.5, 1e-6) == 3
    assert D.truncation_bound(0.5, 3) < 1e-6 < D.truncation_bound(0.5, 2)


# ----------------------------------------------------------------------------- engines vs reference
@pytest.mark.parametrize(
    "T,B,I,O,K,sigma",
    [
        (50, 4, 9, 13, 25, 0.5),  # the floor: 6 taps
        (20, 1, 3, 2, 8, 0.5),  # even K, batch 1
        (7, 3, 5, 4, 25, 0.5),  # T < K
        (30, 2, 4, 6, 25, 0.9),  # 10 taps
        (30, 2, 4, 6, 11, 4.0),  # 2r >= K: all taps, exact
    ],
)
def test_sparse_gaussian_matches_reference_with_gradients(T, B, I, O, K, sigma):
    w, P = _params(O, I, K, seed=T + K)
    x = torch.randn(T, B, I)
    bias = torch.randn(O)
    outs = []
    for backend in ("reference", "cpu"):
        xx, ww, PP, bb = (t.clone().requires_grad_() for t in (x, w, P, bias))
        y = D.delayed_linear(xx, ww, PP, sigma, K, bb, backend=backend)
        gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
        outs.append((y, *torch.autograd.grad(y, (xx, ww, PP, bb), gy)))
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(b, a, atol=5e-5, rtol=1e-4)


def test_integer_engine_matches_reference_with_gradients():
    T, B, I, O, K = 40, 5, 11, 7, 25
    w, _ = _params(O, I, K)
    d = torch.randint(0, K, (O, I))
    x = torch.randn(T, B, I)
    outs = []
    for backend in ("reference", "cpu"):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = D.delayed_linear_integer(xx, ww, d, K, backend=backend)
        outs.append((y, *torch.autograd.grad(y, (xx, ww), torch.cos(y.detach()))))
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("K,sigma", [(25, 0.5), (8, 0.5), (25, 0.9), (11, 4.0)])  # 6, 6, 10 taps; all 11
def test_fused_gaussian_taps_match_the_reference_taps(K, sigma):
    """The numba op equals gaussian_taps of the clamped positions, values and gradients, positions
    past both ends of the range and exactly at them included."""
    r = D.truncation_radius(sigma, 1e-6)
    w, P = _params(9, 7, K, seed=K)
    lo, hi = D.position_range(K)
    P[0, :4] = torch.tensor([lo - 1.5, lo, hi, hi + 0.7])
    G = torch.randn(9, 7, min(K, 2 * r), generator=torch.Generator().manual_seed(2))
    outs = []
    for fused in (False, True):
        ww, PP = w.clone().requires_grad_(), P.clone().requires_grad_()
        if fused:
            coef, dmin, _ = torch.ops.neurogate.gaussian_taps(ww, PP, sigma, K, r)
        else:
            coef, dmin = D.gaussian_taps(ww, PP.clamp(lo, hi), sigma, K, r)
        outs.append((coef, dmin, *torch.autograd.grad(coef, (ww, PP), G)))
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)
    torch.library.opcheck(torch.ops.neurogate.gaussian_taps.default, (w.requires_grad_(), P, sigma, K, r))


# ----------------------------------------------------------------------------- event engine
def _spikes(T, B, I, density, seed, values="binary"):
    """Sparse input: each (t, b, i) non-zero with probability ``density``; binary spikes, spike
    counts (1..4, as SHD frames binned from 700 to 140 channels hold) or graded reals of either sign."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(T, B, I, generator=g) < density).float()
    if values == "counts":
        return mask * torch.randint(1, 5, (T, B, I), generator=g).float()
    if values == "graded":
        return mask * torch.randn(T, B, I, generator=g)
    return mask


def _takes_events(x: torch.Tensor, J: int) -> bool:
    from neurogate.cpu.delay import event_max_density

    ptr, _, _ = torch.ops.neurogate.delay_events(x, event_max_density(J))
    return int(ptr[0]) >= 0


@pytest.mark.parametrize(
    "T,B,I,O,K,sigma,density,values,events",
    [
        (40, 6, 20, 24, 25, 0.5, 0.05, "binary", True),  # SHD-like spikes at the floor: 6 taps
        (40, 6, 20, 24, 25, 0.5, 0.05, "counts", True),  # spike counts
        (30, 3, 7, 70, 25, 0.9, 0.04, "graded", True),  # 10 taps (two lane groups), several output blocks
        (30, 2, 4, 6, 11, 4.0, 0.05, "graded", True),  # 2r >= K: all 11 taps, exact
        (7, 3, 5, 4, 25, 0.5, 0.1, "graded", True),  # T < K
        (30, 3, 5, 7, 25, 0.5, 0.0, "binary", True),  # no input at all
        (30, 3, 6, 5, 25, 0.5, 0.9, "graded", False),  # too dense: the dense engine
    ],
)
@pytest.mark.parametrize("x_grad", [False, True])  # a first layer on data, a hidden layer
def test_event_engine_matches_reference_with_gradients(T, B, I, O, K, sigma, density, values, events, x_grad):
    w, P = _params(O, I, K, seed=T + O)
    x = _spikes(T, B, I, density, seed=O, values=values)
    if B > 2:
        x[:, 1] = 0  # an all-zero batch entry between non-empty ones
    x[:, -1] = 0  # and one at the end
    J = 2 * D.truncation_radius(sigma, 1e-6)
    assert _takes_events(x, min(J, K)) == events
    outs = []
    for backend in ("reference", "cpu"):
        xx, ww, PP = x.clone().requires_grad_(x_grad), w.clone().requires_grad_(), P.clone().requires_grad_()
        y = D.delayed_linear(xx, ww, PP, sigma, K, backend=backend)
        gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
        grads = torch.autograd.grad(y, (xx, ww, PP) if x_grad else (ww, PP), gy)
        outs.append((y, *grads))
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(b, a, atol=5e-5, rtol=1e-4)


@pytest.mark.parametrize("density", [0.02, 0.5])  # both sides of the density threshold for J = 1
def test_integer_delays_eval_mode_both_engines(density):
    """Eval mode: one rounded integer delay per synapse, equal to the hand loop on either engine."""
    torch.manual_seed(12)
    layer = DelayedLinear(30, 40, 25, bias=True).eval()
    x = _spikes(60, 5, 30, density, seed=4, values="counts")
    assert _takes_events(x, 1) == (density < 0.05)
    W, d = layer.export_weights()
    with torch.no_grad():
        y = layer(x)
    torch.testing.assert_close(y.double(), _hand_loop(x, W, d) + layer.bias.double(), atol=1e-4, rtol=1e-5)


def test_event_engine_negative_delays_and_float64():
    """The operator's full contract: taps before and after the kernel's ends, float64."""
    g = torch.Generator().manual_seed(13)
    x = _spikes(12, 3, 4, 0.06, seed=5, values="graded").double()
    coef = torch.randn(5, 4, 3, dtype=torch.float64, generator=g)
    dmin = torch.randint(-4, 14, (5, 4), generator=g)
    assert _takes_events(x, 3)
    y = D.delay_taps(x, coef, dmin)
    ref = torch.zeros(12, 3, 5, dtype=torch.float64)
    for o in range(5):
        for i in range(4):
            for j in range(3):
                dd = int(dmin[o, i]) + j
                for t in range(12):
                    if 0 <= t - dd < 12:
                        ref[t, :, o] += coef[o, i, j] * x[t - dd, :, i]
    torch.testing.assert_close(y, ref, atol=1e-12, rtol=1e-12)
    xx, cc = x.clone().requires_grad_(), coef.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, c: D.delay_taps(a, c, dmin), (xx, cc))


def _taps_by_shifts(x: torch.Tensor, coef: torch.Tensor, dmin: torch.Tensor) -> torch.Tensor:
    """The independent truth of delay_taps, differentiable: one shifted copy of x per (o, i, j)."""
    T = x.shape[0]
    y = x.new_zeros((T, x.shape[1], coef.shape[0]))
    for o in range(coef.shape[0]):
        for i in range(coef.shape[1]):
            for j in range(coef.shape[2]):
                dd = int(dmin[o, i]) + j
                if -T < dd < T:
                    src = x[max(0, -dd) : T - max(0, dd), :, i]
                    y[max(0, dd) : T - max(0, -dd), :, o] += coef[o, i, j] * src
    return y


@pytest.mark.parametrize("J", [6, 10])  # one lane group (8 taps), two (16)
def test_event_engine_groups_of_events(J):
    """The event walk takes a channel's events 4, 2 or 1 at a time, the forward pass only those whose
    tap windows (8 or 16 taps) do not overlap: event trains with gaps just at, below and above the
    window, on both sides of the 4/2/1 boundaries, against the shifted-copies truth, values and gradients."""
    g = torch.Generator().manual_seed(21)
    T, B, I, O = 80, 3, 4, 19
    x = torch.zeros(T, B, I, dtype=torch.float64)
    w = 8 if J <= 8 else 16
    trains = [
        [0, w, 2 * w, 3 * w, 3 * w + w - 1, 3 * w + w + 1, 70],  # a group of 4, a gap one short, 2, 1
        [5, 6, 7, 8, 9, 10, 11, 12, 13],  # every step: groups of 4 in the gradient, one at a time forward
        [1, 1 + w, 3 + 2 * w, 3 + 3 * w, 79],
        [],
    ]
    for b in range(B):
        for i, steps in enumerate(trains):
            for t in steps:
                x[(t + b) % T, b, (i + b) % I] = float(torch.randn((), generator=g, dtype=torch.float64))
    coef = torch.randn(O, I, J, dtype=torch.float64, generator=g)
    dmin = torch.randint(-3, 30, (O, I), generator=g)
    assert _takes_events(x, J)
    gy = torch.randn(T, B, O, generator=g, dtype=torch.float64)
    outs = []
    for fn in (_taps_by_shifts, D.delay_taps):
        xx, cc = x.clone().requires_grad_(), coef.clone().requires_grad_()
        y = fn(xx, cc, dmin)
        outs.append((y, *torch.autograd.grad(y, (xx, cc), gy)))
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-12)


def test_float32_exp_of_the_gaussian_taps():
    """The taps kernel's float32 exponential (a vectorisable polynomial) against numpy's, over the
    range its arguments take (-h u^2 <= 0), down to and past float32's normal range."""
    import numpy as np

    from neurogate.cpu.delay import _exp32

    x = np.concatenate([np.linspace(-87.0, 0.0, 20001), [-87.5, -100.0, -1e4, -np.inf]]).astype(np.float32)
    got = np.array([_exp32(v) for v in x])
    ref = np.exp(x.astype(np.float64))
    normal = ref >= np.finfo(np.float32).tiny
    assert np.all(np.abs(got[normal] - ref[normal]) <= 3e-7 * ref[normal])
    assert np.all(got[~normal] <= np.finfo(np.float32).tiny)


def test_first_layer_skips_the_input_gradient(monkeypatch):
    """Input without grad (a first layer on data): the dense grad_x kernel never runs."""
    from neurogate.cpu import delay_dense

    calls = []
    real = delay_dense._grad_x_kernel
    monkeypatch.setattr(delay_dense, "_grad_x_kernel", lambda *a: calls.append(1) or real(*a))
    w, P = _params(8, 6, 25, seed=1)
    w.requires_grad_(), P.requires_grad_()
    x = _spikes(20, 2, 6, 0.05, seed=2)
    D.delayed_linear(x, w, P, 0.5, 25, backend="cpu").sum().backward()
    assert calls == [] and w.grad is not None and P.grad is not None
    D.delayed_linear(x.requires_grad_(), w, P, 0.5, 25, backend="cpu").sum().backward()
    assert calls == [1] and x.grad is not None


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(9, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    coef = torch.randn(4, 3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    dmin = torch.randint(-2, 6, (4, 3), generator=g)
    assert torch.autograd.gradcheck(lambda a, c: D.delay_taps(a, c, dmin), (x, coef))
    w, P = _params(4, 3, 9, seed=6, dtype=torch.float64)
    w.requires_grad_(), P.requires_grad_()
    for backend in ("reference", "cpu"):

        def fn(a, b, c, be=backend):
            return D.delayed_linear(a, b, c, 0.5, 9, backend=be)

        assert torch.autograd.gradcheck(fn, (x, w, P))


@pytest.mark.parametrize("density", [0.2, 0.9])  # the event engine, the dense engine
def test_custom_op_registration(density):
    g = torch.Generator().manual_seed(7)
    x = ((torch.rand(6, 2, 3, generator=g) < density) * torch.randn(6, 2, 3, generator=g)).requires_grad_()
    coef = torch.randn(4, 3, 2, generator=g, requires_grad=True)
    dmin = torch.randint(-1, 4, (4, 3), generator=g)
    torch.library.opcheck(torch.ops.neurogate.delay_events.default, (x.detach(), 0.5))
    ptr, step, val = torch.ops.neurogate.delay_events(x.detach(), 0.5)
    assert (int(ptr[0]) >= 0) == (density < 0.5)
    torch.library.opcheck(torch.ops.neurogate.delay_taps.default, (x, coef, dmin, ptr, step, val))


def test_layer_compiles_without_graph_breaks():
    torch.manual_seed(11)
    layer = DelayedLinear(4, 3, 9)
    layer.sigma_schedule(10, 10)  # the floor: the sparse custom operator
    x = torch.rand(12, 2, 4, requires_grad=True)
    compiled = torch.compile(layer, fullgraph=True, dynamic=False)
    torch.testing.assert_close(compiled(x), layer(x))
    layer.sigma_schedule(0, 10)  # a new sigma recompiles instead of reusing a stale constant
    torch.testing.assert_close(compiled(x), layer(x))


def test_auto_backend_uses_sparse_taps_only_where_they_pay(monkeypatch):
    calls = []
    real = D.delay_taps
    monkeypatch.setattr(D, "delay_taps", lambda *a: calls.append(a[1].shape[-1]) or real(*a))
    w, P = _params(3, 2, 25)
    x = torch.randn(10, 1, 2)
    D.delayed_linear(x, w, P, 12.27, 25)  # early schedule: dense reference
    assert calls == []
    D.delayed_linear(x, w, P, 0.5, 25)  # at the floor: 6 taps
    D.delayed_linear_integer(x, w, D.positions_to_delays(P, 25), 25)
    assert calls == [6, 1]


# ----------------------------------------------------------------------------- the layer
def test_layer_eval_export_and_round():
    torch.manual_seed(8)
    layer = DelayedLinear(6, 4, 10, bias=True)
    x = torch.randn(25, 3, 6)
    layer.eval()
    W, d = layer.export_weights()
    assert d.dtype == torch.int64 and d.shape == (4, 6) and int(d.min()) >= 0 and int(d.max()) <= 9
    torch.testing.assert_close(layer(x).double(), _hand_loop(x, W, d) + layer.bias.double(), atol=1e-5, rtol=1e-5)
    layer.train()
    P_before = layer.P.detach().clone()
    layer.round_delays()
    assert torch.equal(layer.P, torch.round(P_before)) and torch.equal(layer.delays, d)
    y = layer(x)  # train mode, integer path: weights learn, positions do not
    y.sum().backward()
    assert layer.P.grad is None and layer.weight.grad is not None


def test_layer_training_step_moves_positions_and_clamp():
    torch.manual_seed(9)
    model = torch.nn.Sequential(DelayedLinear(5, 4, 9), torch.nn.ReLU(), torch.nn.Sequential(DelayedLinear(4, 2, 9)))
    assert len(delay_layers(model)) == 2
    opt = torch.optim.SGD(model.parameters(), lr=100.0)
    model(torch.rand(12, 2, 5)).square().sum().backward()
    assert all(float(m.P.grad.abs().sum()) > 0 for m in delay_layers(model))
    opt.step()
    assert clamp_positions(model) == 2
    lo, hi = D.position_range(9)
    assert all(float(m.P.detach().min()) >= lo and float(m.P.detach().max()) <= hi for m in delay_layers(model))


def test_sigma_schedule_follows_the_paper():
    layer = DelayedLinear(2, 2, 25)
    assert layer.sigma_init == 12 and math.isclose(layer.sigma, 12.27)
    final = 37
    alpha = (D.SIG_FLOOR / 12) ** (1 / final)
    sig = 12.0  # the paper's loop: multiply by alpha once per epoch while above the floor
    for epoch in range(final + 5):
        assert math.isclose(layer.sigma_schedule(epoch, final), max(sig, D.SIG_FLOOR), rel_tol=1e-9)
        sig = sig * alpha if epoch < final else sig
    assert math.isclose(float(layer.SIG), D.SIG_FLOOR, rel_tol=1e-6) and math.isclose(layer.sigma, 0.5, rel_tol=1e-6)
    model = torch.nn.Sequential(layer, DelayedLinear(2, 2, 7))
    assert schedule_sigma(model, 0, 10) == [12.0, 3.0]
    state = layer.state_dict()
    fresh = DelayedLinear(2, 2, 25)
    fresh.load_state_dict(state)
    assert float(fresh.SIG) == 12.0
    with pytest.raises(ValueRangeError, match="final_epoch"):
        layer.sigma_schedule(3, 0)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_max_delay(bad):
    with pytest.raises(ValueRangeError, match="max_delay"):
        DelayedLinear(3, 4, bad)
    with pytest.raises(ValueRangeError, match="max_delay"):
        D.delayed_linear(torch.rand(5, 1, 3), torch.rand(4, 3), torch.rand(4, 3), 0.5, bad)


def test_bad_inputs():
    layer = DelayedLinear(3, 4, 5)
    with pytest.raises(ShapeError, match=r"\[T, B, in_features\].*unsqueeze"):
        layer(torch.rand(10, 3))
    with pytest.raises(ShapeError, match="3-D"):
        layer(torch.rand(10, 2, 3, 1))
    with pytest.raises(ShapeError, match="in_features=3"):
        layer(torch.rand(10, 2, 2))
    with pytest.raises(DTypeError, match="floating"):
        layer(torch.ones(10, 2, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="backend"):
        DelayedLinear(3, 4, 5, backend="cuda")
    with pytest.raises(ValueRangeError, match="sigma_init"):
        DelayedLinear(3, 4, 5, sigma_init=float("nan"))
    with pytest.raises(ValueRangeError, match=r"delays must be in \[0, 4\]"):
        D.delayed_linear_integer(torch.rand(6, 1, 3), torch.rand(4, 3), torch.full((4, 3), 5), 5)
    with pytest.raises(DTypeError, match="integer"):
        D.delayed_linear_integer(torch.rand(6, 1, 3), torch.rand(4, 3), torch.rand(4, 3), 5)


def test_checkpoint_with_nan_position_is_refused():
    model = torch.nn.Sequential(DelayedLinear(3, 4, 5))
    state = model.state_dict()
    state["0.P"] = state["0.P"].clone()
    state["0.P"][1, 2] = float("nan")
    with pytest.raises(CheckpointError, match=r"0\.P holds 1 NaN"):
        model.load_state_dict(state)
    state = model.state_dict()
    state["0.P"] = torch.zeros(4, 2)
    with pytest.raises(CheckpointError, match=r"0\.P has shape \(4, 2\)"):
        model.load_state_dict(state)
