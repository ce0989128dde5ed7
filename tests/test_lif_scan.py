"""lif_scan: hand-computed trajectories, engines against the reference, gradcheck, bad input."""

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neurogate as ng
from neurogate.errors import ConfigError, DTypeError, ShapeError, ValueRangeError
from neurogate.functional import lif_scan
from neurogate.surrogate import SURROGATES

F64 = torch.float64


# --------------------------------------------------------------------------- trajectories
X = torch.tensor([0.6, 0.6, 0.6, 0.0, 1.2], dtype=F64).reshape(5, 1, 1)
# decay 0.5, threshold 1, by hand:  h = 0.5 v + x ;  S = [h >= 1]
TRAJ = {
    "subtract": dict(h=[0.6, 0.9, 1.05, 0.025, 1.2125], s=[0, 0, 1, 0, 1], v_final=0.2125),
    "zero": dict(h=[0.6, 0.9, 1.05, 0.0, 1.2], s=[0, 0, 1, 0, 1], v_final=0.0),
    "none": dict(h=[0.6, 0.9, 1.05, 0.525, 1.4625], s=[0, 0, 1, 0, 1], v_final=1.4625),
}


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("reset", sorted(TRAJ))
def test_hand_computed_trajectory(backend, reset):
    s, v, h = lif_scan(X, decay=0.5, reset=reset, backend=backend, return_state=True)
    want = TRAJ[reset]
    torch.testing.assert_close(h.flatten(), torch.tensor(want["h"], dtype=F64), rtol=0, atol=1e-12)
    assert s.flatten().tolist() == want["s"]
    assert v.item() == pytest.approx(want["v_final"], abs=1e-12)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_decay_input_and_v0_trajectory(backend):
    # h = 0.75 v + 0.25 x from v0 = 2: h0 = 1.5 + 0.25 = 1.75 (spike, v = 0.75),
    # h1 = 0.5625 + 0.25 = 0.8125, h2 = 0.609375 + 0.25 = 0.859375
    x = torch.ones(3, 1, 1, dtype=F64)
    s, v, h = lif_scan(x, decay=0.75, decay_input=True, v0=torch.full((1, 1), 2.0, dtype=F64),
                       backend=backend, return_state=True)
    assert h.flatten().tolist() == [1.75, 0.8125, 0.859375]
    assert s.flatten().tolist() == [1, 0, 0]
    assert v.item() == 0.859375


def test_threshold_equality_spikes():
    # H(0) = 1: reaching the threshold exactly fires (as SpikingJelly and SpiNNaker do).
    x = torch.tensor([0.5, 0.5], dtype=F64).reshape(2, 1, 1)
    for backend in ("reference", "cpu"):
        assert lif_scan(x, decay=1.0, backend=backend).flatten().tolist() == [0, 1]


# --------------------------------------------------------------------------- engines vs reference
def _run(backend, x, v0, decay, thr, w, **kw):
    leaves = [t for t in (x, v0, decay, thr) if isinstance(t, torch.Tensor)]
    s, v, h = lif_scan(x, decay=decay, threshold=thr, v0=v0, backend=backend, return_state=True, **kw)
    loss = (s * w[0]).sum() + (v * w[1]).sum() + (h * w[2]).sum()
    return (s, v, h), torch.autograd.grad(loss, leaves, allow_unused=True)


def assert_engine_matches_reference(backend, x, v0, decay, thr, **kw):
    g = torch.Generator().manual_seed(0)
    w = [torch.randn(x.shape, generator=g), torch.randn(x.shape[1:], generator=g), 0.1 * torch.randn(x.shape, generator=g)]
    w = [t.to(x.dtype) for t in w]
    ref_out, ref_g = _run("reference", x, v0, decay, thr, w, **kw)
    out, grads = _run(backend, x, v0, decay, thr, w, **kw)
    for a, b in zip(out, ref_out):
        assert torch.equal(a, b), "forward differs from the reference"
    for a, b in zip(grads, ref_g):
        scale = b.abs().max().clamp_min(1.0)
        torch.testing.assert_close(a / scale, b / scale, rtol=1e-4, atol=2e-5)


@settings(max_examples=60, deadline=None)
@given(
    T=st.integers(1, 24), B=st.integers(1, 3), N=st.integers(1, 70),
    reset=st.sampled_from(["subtract", "zero", "none"]),
    surrogate=st.sampled_from(sorted(SURROGATES)),
    decay_input=st.booleans(), detach_reset=st.booleans(),
    per_neuron=st.booleans(), with_v0=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_cpu_engine_matches_reference(T, B, N, reset, surrogate, decay_input, detach_reset, per_neuron, with_v0, seed):
    g = torch.Generator().manual_seed(seed)
    x = (1.2 * torch.randn(T, B, N, generator=g) + 0.3).requires_grad_()
    v0 = torch.randn(B, N, generator=g).requires_grad_() if with_v0 else None
    if per_neuron:
        decay = torch.rand(N, generator=g).requires_grad_()
        thr = (0.5 + torch.rand(N, generator=g)).requires_grad_()
    else:
        decay = float(torch.rand((), generator=g))
        thr = float(0.5 + torch.rand((), generator=g))
    assert_engine_matches_reference(
        "cpu", x, v0, decay, thr, reset=reset, surrogate=surrogate,
        decay_input=decay_input, detach_reset=detach_reset,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_engine_conv_shape_per_channel(dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 2, 3, 4, 5, generator=g, dtype=dtype).requires_grad_()
    decay = torch.rand(3, 1, 1, generator=g, dtype=dtype).requires_grad_()
    thr = (0.5 + torch.rand(3, 1, 1, generator=g, dtype=dtype)).requires_grad_()
    assert_engine_matches_reference("cpu", x, None, decay, thr, surrogate="sigmoid")


def test_stride0_and_contiguous_grad_paths_agree():
    x = torch.randn(20, 4, 33).requires_grad_()
    (g1,) = torch.autograd.grad(lif_scan(x, decay=0.8).sum(), x)  # stride-0 gradient
    (g2,) = torch.autograd.grad((lif_scan(x, decay=0.8) * torch.ones(20, 4, 33)).sum(), x)
    (g3,) = torch.autograd.grad(lif_scan(x, decay=0.8, backend="reference").sum(), x)
    assert torch.equal(g1, g2)
    torch.testing.assert_close(g1, g3)


def test_no_grad_path_and_half_inputs():
    x = torch.randn(10, 3, 50)
    with torch.no_grad():
        s = lif_scan(x, decay=0.9)
    assert torch.equal(s, lif_scan(x, decay=0.9, backend="reference"))
    for dt in (torch.float16, torch.bfloat16):
        xh = x.to(dt)
        s, v, h = lif_scan(xh, decay=0.9, return_state=True)
        assert s.dtype == dt and v.dtype == dt and h.dtype == dt
        # The cpu engine integrates half inputs in float32, with parameters in the input's dtype.
        decay = torch.tensor(0.9, dtype=dt).float()
        ref = lif_scan(xh.float(), decay=decay, backend="reference")
        assert torch.equal(s.float(), ref)


# --------------------------------------------------------------------------- gradcheck
def _far_from_threshold(x, **kw):
    _, _, h = lif_scan(x, backend="reference", return_state=True, **kw)
    return (h - kw.get("threshold", 1.0)).abs().min().item() > 1e-3


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("decay_input", [False, True])
def test_gradcheck_float64(backend, reset, decay_input):
    # The surrogate is not the step's true derivative, so finite differences can only check the
    # rest of the backward pass: a rectangular window of half-width 1e-4 contributes exactly 0
    # when every membrane stays 1e-3 away from the threshold (checked), and then the analytic
    # gradient of the piecewise-smooth dynamics (decay, reset, v0, threshold) must be exact.
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        x = torch.randn(7, 2, 5, generator=g, dtype=F64)
        v0 = torch.randn(2, 5, generator=g, dtype=F64)
        decay = 0.2 + 0.7 * torch.rand(5, generator=g, dtype=F64)
        thr = 0.5 + torch.rand(5, generator=g, dtype=F64)
        if _far_from_threshold(x, decay=decay, threshold=thr, v0=v0, reset=reset, decay_input=decay_input):
            break
    inputs = tuple(t.requires_grad_() for t in (x, v0, decay, thr))

    def f(x, v0, decay, thr):
        return lif_scan(x, decay=decay, threshold=thr, v0=v0, reset=reset, decay_input=decay_input,
                        surrogate="rectangular", alpha=5000.0, backend=backend, return_state=True)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-6)


# --------------------------------------------------------------------------- bad input
def test_errors_name_the_argument():
    x = torch.randn(4, 2, 3)
    with pytest.raises(ShapeError, match=r"\[T, B, \.\.\.\].*\(4,\)"):
        lif_scan(torch.randn(4), decay=0.9)
    with pytest.raises(DTypeError, match="int64"):
        lif_scan(torch.ones(4, 2, dtype=torch.int64), decay=0.9)
    with pytest.raises(DTypeError, match="complex"):
        lif_scan(torch.ones(4, 2, dtype=torch.complex64), decay=0.9)
    with pytest.raises(DTypeError, match="x must be a torch.Tensor"):
        lif_scan([[1.0]], decay=0.9)
    for backend in ("reference", "cpu"):
        for bad in (float("nan"), float("inf")):
            xb = x.clone()
            xb[2, 1, 0] = bad
            with pytest.raises(ValueRangeError, match="NaN or inf"):
                lif_scan(xb, decay=0.9, backend=backend)
    with pytest.raises(ValueRangeError, match=r"decay must be in \[0.0, 1.0\]; got 1.5"):
        lif_scan(x, decay=1.5)
    with pytest.raises(ValueRangeError, match="decay"):
        lif_scan(x, decay=torch.tensor([0.5, -0.1, 0.5]))
    with pytest.raises(ShapeError, match=r"decay has shape \(4,\).*\(3,\)"):
        lif_scan(x, decay=torch.full((4,), 0.5))
    with pytest.raises(ShapeError, match=r"threshold has shape \(2, 3\).*shared over time and batch"):
        lif_scan(x, decay=0.5, threshold=torch.ones(2, 3))
    with pytest.raises(ShapeError, match=r"v0 has shape \(5,\)"):
        lif_scan(x, decay=0.5, v0=torch.zeros(5))
    with pytest.raises(ConfigError, match="subtract, zero, none"):
        lif_scan(x, decay=0.5, reset="hard")
    with pytest.raises(ConfigError, match="use one of: atan"):
        lif_scan(x, decay=0.5, surrogate="relu")
    with pytest.raises(ConfigError, match="reference, cpu, triton"):
        lif_scan(x, decay=0.5, backend="cuda")
    with pytest.raises(ValueRangeError, match="threshold must be finite"):
        lif_scan(x, decay=0.5, threshold=float("nan"))
    if os.environ.get("TRITON_INTERPRET") != "1":
        with pytest.raises(ConfigError, match="TRITON_INTERPRET"):
            lif_scan(x, decay=0.5, backend="triton")


def test_errors_are_neurogate_and_builtin():
    with pytest.raises(ng.errors.NeurogateError):
        lif_scan(torch.randn(3), decay=0.9)
    with pytest.raises(ValueError):
        lif_scan(torch.randn(3), decay=0.9)


# --------------------------------------------------------------------------- fused-engine paths
def test_gradients_through_the_state_alone():
    # No gradient reaches the spikes (grad_s is None): only v_final, or only the trace, is used.
    g = torch.Generator().manual_seed(5)
    for per_neuron in (False, True):
        x = (1.2 * torch.randn(9, 2, 33, generator=g, dtype=F64) + 0.3).requires_grad_()
        decay = torch.rand(33, generator=g, dtype=F64) if per_neuron else torch.rand((), generator=g, dtype=F64)
        thr = 0.5 + torch.rand_like(decay)
        decay.requires_grad_()
        thr.requires_grad_()
        w = torch.randn(9, 2, 33, generator=g, dtype=F64)
        for pick in (lambda s, v, h: v.sum(), lambda s, v, h, w=w: (h * w).sum()):
            grads = [
                torch.autograd.grad(pick(*lif_scan(x, decay=decay, threshold=thr, backend=be, return_state=True)),
                                    (x, decay, thr))
                for be in ("reference", "cpu")
            ]
            for a, b in zip(*grads):
                torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 8, 9])
def test_every_remainder_of_the_unrolled_time_loop(T):
    # The kernels take 2 steps per pass (forward and backward); every remainder must agree.
    g = torch.Generator().manual_seed(T)
    x = (1.2 * torch.randn(T, 3, 40, generator=g) + 0.3).requires_grad_()
    for decay, thr in ((0.8, 0.9), (torch.rand(40, generator=g).requires_grad_(), (0.5 + torch.rand(40, generator=g)).requires_grad_())):
        assert_engine_matches_reference("cpu", x, None, decay, thr)


@pytest.mark.parametrize("per_neuron", [False, True])
def test_many_chunks_on_several_threads(monkeypatch, per_neuron):
    # Shrink the chunking so that a small layer is split into many chunks over 2 threads: the
    # per-chunk parameter expansion and the per-chunk partial sums of scalar gradients run.
    from neurogate.cpu import lif as cpu_lif

    monkeypatch.setattr(cpu_lif, "MAX_CHUNK", 48)
    monkeypatch.setattr(cpu_lif, "MIN_CHUNK", 16)
    monkeypatch.setattr(cpu_lif, "PARALLEL_MIN", 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(11)
        x = (1.2 * torch.randn(7, 4, 50, generator=g) + 0.3).requires_grad_()
        v0 = torch.randn(4, 50, generator=g).requires_grad_()
        if per_neuron:
            decay = torch.rand(50, generator=g).requires_grad_()
            thr = (0.5 + torch.rand(50, generator=g)).requires_grad_()
        else:
            decay, thr = torch.tensor(0.85, requires_grad=True), torch.tensor(0.95, requires_grad=True)
        assert cpu_lif._plan(7, 200)[1] < 200
        assert_engine_matches_reference("cpu", x, v0, decay, thr, decay_input=True)
        (gs,) = torch.autograd.grad(lif_scan(x, decay=decay, threshold=thr).sum(), x)  # stride-0 grad
        (gr,) = torch.autograd.grad(lif_scan(x, decay=decay, threshold=thr, backend="reference").sum(), x)
        torch.testing.assert_close(gs, gr)
    finally:
        torch.set_num_threads(threads)


def test_eager_fast_path_equals_the_custom_operator():
    # Eager calls run the engines through a plain autograd.Function; the registered operator
    # (used while tracing) must give the same values and gradients.
    from neurogate.functional.lif import _resolve

    g = torch.Generator().manual_seed(2)
    x = (1.2 * torch.randn(10, 3, 20, generator=g) + 0.3).requires_grad_()
    decay = torch.tensor(0.8, requires_grad=True)
    thr = (0.5 + torch.rand(20, generator=g)).requires_grad_()
    w = torch.randn(10, 3, 20, generator=g)
    p = _resolve("zero", "sigmoid", None, True, False)
    s, v, h = lif_scan(x, decay=decay, threshold=thr, reset="zero", surrogate="sigmoid", decay_input=True,
                       return_state=True)
    ge = torch.autograd.grad((s * w).sum() + v.sum() + h.sum(), (x, decay, thr))
    so, vo, ho, kept = torch.ops.neurogate.lif_scan(
        x.reshape(10, 60), torch.zeros(()).expand(60), decay.expand(3, 20).reshape(60),
        thr.expand(3, 20).reshape(60), p.alpha, p.reset, p.surrogate, p.decay_input, p.detach_reset,
        True, "cpu", "float",
    )
    assert kept.shape == (0, 60)  # the float mode keeps h itself
    go = torch.autograd.grad((so.view(10, 3, 20) * w).sum() + vo.sum() + ho.sum(), (x, decay, thr))
    assert torch.equal(s.view(10, 60), so) and torch.equal(v.view(60), vo) and torch.equal(h.view(10, 60), ho)
    for a, b in zip(ge, go):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_inference_mode_then_training():
    # Cached float-parameter tensors must not be inference tensors (they are saved for backward).
    x = torch.randn(6, 2, 30)
    with torch.inference_mode():
        lif_scan(x, decay=0.7, threshold=0.6)
    xg = x.clone().requires_grad_()
    for backend in ("cpu", "reference"):
        lif_scan(xg, decay=0.7, threshold=0.6, backend=backend).sum().backward()


def test_parameter_validation_fast_path():
    x = torch.randn(4, 2, 3)
    with pytest.raises(ValueRangeError, match="threshold must be finite"):
        lif_scan(x, decay=0.5, threshold=torch.tensor([1.0, float("nan"), 1.0]))
    with pytest.raises(ValueRangeError, match=r"decay must be in \[0.0, 1.0\]"):
        lif_scan(x, decay=torch.tensor([0.5, 1.5, 0.5], dtype=F64))
    with pytest.raises(ValueRangeError, match="decay"):
        lif_scan(x, decay=1.0000001)
    lif_scan(x, decay=torch.tensor([0.0, 1.0, 0.5]), threshold=torch.tensor(-2.0))  # bounds inclusive
