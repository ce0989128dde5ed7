"""The Triton LIF engine (:mod:`neurogate.cuda.lif`) against the reference ``lif_scan``.

Runs in process on a GPU, or on CPU tensors when ``TRITON_INTERPRET=1`` is already set. Otherwise
(a plain CPU ``pytest`` run) one test re-runs this file in a child pytest with
``TRITON_INTERPRET=1``: the variable only takes effect before triton decorates the kernels, and
setting it in this process would also change what other tests see (``backend="triton"`` on CPU is
an error without it).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from neurogate import surrogate as ng_surrogate
from neurogate.errors import ConfigError, ValueRangeError
from neurogate.functional import lif as L

_HAS_TRITON = importlib.util.find_spec("triton") is not None
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_NATIVE = torch.cuda.is_available() and not _INTERPRET
IN_PROCESS = _HAS_TRITON and (_INTERPRET or _NATIVE)
DEVICE = "cuda" if _NATIVE else "cpu"

needs_engine = pytest.mark.skipif(
    not IN_PROCESS, reason="runs under TRITON_INTERPRET=1 or on a GPU (see test_in_interpreter_subprocess)"
)
SURROGATES = ["atan", "fast_sigmoid", "sigmoid", "triangle", "rectangular", "erf"]
SURROGATE_IDS = {name: sg.id for name, sg in ng_surrogate.SURROGATES.items()}


@pytest.mark.skipif(IN_PROCESS or not _HAS_TRITON, reason="the tests run in this process")
def test_in_interpreter_subprocess() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    proc = subprocess.run(
        cmd, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"child pytest failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"


# --------------------------------------------------------------------------- helpers
def _problem(T: int, B: int, N: int, dtype=torch.float32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs that fire often and sit near the threshold, with per-neuron decay and threshold."""
    g = torch.Generator().manual_seed(seed)
    normal = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    p = {
        "x": normal(T, B, N) * 0.8 + 0.5,
        "decay": torch.rand(N, generator=g, dtype=torch.float64) * 0.5 + 0.4,
        "threshold": torch.rand(N, generator=g, dtype=torch.float64) + 0.5,
        "v0": normal(B, N) * 0.3,
        "gs": normal(T, B, N),
        "gv": normal(B, N),
        "gh": normal(T, B, N),
    }
    return {k: v.to(device=DEVICE, dtype=dtype) for k, v in p.items()}


def _run(backend: str, p: dict, *, loss: str = "all", **kw) -> list[torch.Tensor]:
    """``[spikes, v_final, v_trace, dx, dv0, ddecay, dthreshold]`` for one engine."""
    leaves = {k: p[k].clone().requires_grad_() for k in ("x", "decay", "threshold", "v0")}
    s, vT, tr = L.lif_scan(
        leaves["x"], decay=leaves["decay"], threshold=leaves["threshold"], v0=leaves["v0"],
        backend=backend, return_state=True, **kw,
    )
    if loss == "all":
        total = (s * p["gs"]).sum() + (vT * p["gv"]).sum() + (tr * p["gh"]).sum()
    elif loss == "spikes":  # .sum() hands the kernel a stride-0 gradient
        total = s.sum()
    elif loss == "v_final":  # no gradient reaches the spikes or the trace
        total = (vT * p["gv"]).sum()
    else:
        total = (tr * p["gh"]).sum()
    total.backward()
    return [s, vT, tr] + [leaves[k].grad for k in ("x", "v0", "decay", "threshold")]


def _compare(ref: list, tri: list, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    names = ["spikes", "v_final", "v_trace", "grad x", "grad v0", "grad decay", "grad threshold"]
    for name, r, t in zip(names[:3], ref[:3], tri[:3]):
        assert t.dtype == r.dtype and torch.equal(t, r), f"{name} differs from the reference"
    for name, r, t in zip(names[3:], ref[3:], tri[3:]):
        scale = 1.0 + r.abs().max().item()
        torch.testing.assert_close(t, r, rtol=rtol, atol=atol * scale, msg=lambda m, n=name: f"{n}: {m}")


# --------------------------------------------------------------------------- tests
@needs_engine
@pytest.mark.parametrize(
    "reset,surrogate,decay_input,detach_reset",
    list(itertools.product(L.RESETS, SURROGATES, [False, True], [False, True])),
)
def test_matches_reference(reset: str, surrogate: str, decay_input: bool, detach_reset: bool) -> None:
    p = _problem(T=5, B=3, N=7)  # M = 21: a partial block exercises the masks
    kw = dict(reset=reset, surrogate=surrogate, decay_input=decay_input, detach_reset=detach_reset)
    _compare(_run("reference", p, **kw), _run("triton", p, **kw))


@needs_engine
@pytest.mark.parametrize("reset", list(L.RESETS))
def test_float64_matches_reference(reset: str) -> None:
    p = _problem(T=6, B=2, N=5, dtype=torch.float64, seed=1)
    kw = dict(reset=reset, surrogate="sigmoid", decay_input=True, alpha=3.3)
    _compare(_run("reference", p, **kw), _run("triton", p, **kw), rtol=1e-12, atol=1e-12)


@needs_engine
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32(dtype: torch.dtype) -> None:
    p = _problem(T=6, B=4, N=9, dtype=dtype, seed=2)
    tri = _run("triton", p, reset="subtract")
    # The engine upcasts the (already rounded) half inputs and keeps its state in float32: the
    # float32 reference on the upcast inputs is the same computation.
    ref = _run("reference", {k: v.float() for k, v in p.items()}, reset="subtract")
    assert tri[0].dtype == dtype and torch.equal(tri[0].float(), ref[0])
    assert torch.equal(tri[1], ref[1].to(dtype))
    assert torch.equal(tri[2], ref[2].to(dtype))
    for t, r in zip(tri[3:], ref[3:]):
        assert t.dtype == dtype
        torch.testing.assert_close(t.float(), r, rtol=2e-2, atol=2e-2 * (1 + r.abs().max().item()))


@needs_engine
@pytest.mark.parametrize("loss", ["spikes", "v_final", "v_trace"])
def test_partial_and_stride0_gradients(loss: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from neurogate.cuda import lif as engine

    strides = []
    original = engine.backward

    def spy(*args, **kw):
        strides.append(args[0].stride())  # grad_s
        return original(*args, **kw)

    monkeypatch.setattr(engine, "backward", spy)
    p = _problem(T=4, B=2, N=6, seed=3)
    _compare(_run("reference", p, loss=loss), _run("triton", p, loss=loss))
    # spikes.sum() hands over an expanded scalar, lif_op zeros expanded when no spike gradient
    # exists: either way the kernel reads a stride-0 tensor, uncopied.
    assert strides == [(0, 0)]


@needs_engine
def test_several_blocks_scalar_decay_and_strided_input(monkeypatch: pytest.MonkeyPatch) -> None:
    # M = 1100 spans two programs under the interpreter; a float decay reaches backward as a
    # stride-0 tensor; x = base[..., ::2] with B = 1 stays a strided view through lif_scan's
    # reshape, and decay_input makes backward read it with its strides.
    from neurogate.cuda import lif as engine

    seen = []
    original = engine.backward

    def spy(*args, **kw):
        seen.append((args[4].stride(), args[6].stride()))  # x, decay
        return original(*args, **kw)

    monkeypatch.setattr(engine, "backward", spy)
    p = _problem(T=3, B=1, N=2200, seed=4)
    outs = []
    for backend in ("reference", "triton"):
        base = p["x"].clone().requires_grad_()
        s, vT, tr = L.lif_scan(base[..., ::2], decay=0.8, threshold=0.7, backend=backend,
                               decay_input=True, return_state=True)
        ((s * p["gs"][..., ::2]).sum() + (tr * p["gh"][..., ::2]).sum()).backward()
        outs.append([s, vT, tr, base.grad])
    assert seen == [((2200, 2), (0,))]
    for r, t in zip(outs[0][:3], outs[1][:3]):
        assert torch.equal(r, t)
    torch.testing.assert_close(outs[1][3], outs[0][3], rtol=1e-4, atol=1e-5)


@needs_engine
def test_single_step_and_empty_time() -> None:
    p = _problem(T=1, B=2, N=3, seed=5)
    _compare(_run("reference", p), _run("triton", p))
    from neurogate.cuda import lif as engine

    x = torch.zeros((0, 6), device=DEVICE)
    v0 = torch.randn(6, device=DEVICE)
    ones = torch.ones(6, device=DEVICE)
    s, vT, h, n_bad = engine.forward(x, v0, ones * 0.5, ones, reset=0, decay_input=False, store_trace=True)
    assert s.shape == (0, 6) and torch.equal(vT, v0) and h.shape == (0, 6) and n_bad == 0


@needs_engine
def test_no_grad_does_not_store_the_trace() -> None:
    p = _problem(T=5, B=2, N=8, seed=6)
    with torch.no_grad():
        s_ref = L.lif_scan(p["x"], decay=p["decay"], threshold=p["threshold"], backend="reference")
        s_tri = L.lif_scan(p["x"], decay=p["decay"], threshold=p["threshold"], backend="triton")
    assert torch.equal(s_ref, s_tri)
    from neurogate.cuda import lif as engine

    x = p["x"].reshape(5, 16)
    d, th = p["decay"].repeat(2), p["threshold"].repeat(2)
    s, _, h, _ = engine.forward(x, torch.zeros(16, device=DEVICE), d, th, reset=0,
                                 decay_input=False, store_trace=False)
    assert h.shape == (0, 16) and torch.equal(s, s_ref.reshape(5, 16))


@needs_engine
def test_non_finite_input_is_counted_and_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    if DEVICE == "cuda":  # by default only CPU tensors are checked (a GPU read-back is a host sync)
        monkeypatch.setenv("NEUROGATE_CHECK_FINITE", "1")
    x = torch.rand(4, 2, 3, device=DEVICE)
    x[1, 0, 2] = float("nan")
    x[3, 1, 0] = float("-inf")
    with pytest.raises(ValueRangeError, match="2 NaN or inf"):
        L.lif_scan(x, decay=0.9, backend="triton")
    monkeypatch.setenv("NEUROGATE_CHECK_FINITE", "0")
    L.lif_scan(x, decay=0.9, backend="triton")  # no raise: the caller asked not to check
    from neurogate.cuda import lif as engine

    ones = torch.ones(6, device=DEVICE)
    *_, n_bad = engine.forward(x.reshape(4, 6), ones * 0, ones * 0.9, ones, reset=0,
                               decay_input=False, store_trace=False)
    assert n_bad == 2


@needs_engine
def test_fp8_saved_membrane_matches_the_cpu_engine() -> None:
    # The fp8 code is made and decoded by torch around the engine: the triton engine's gradients
    # at the decoded membrane equal the cpu engine's (both approximate the exact ones alike).
    if DEVICE != "cpu":
        pytest.skip("compares against the cpu engine on CPU tensors (interpreter)")
    p = _problem(9, 3, 70)
    grads = []
    for backend in ("cpu", "triton"):
        leaves = {k: p[k].clone().requires_grad_() for k in ("x", "decay", "threshold", "v0")}
        s = L.lif_scan(leaves["x"], decay=leaves["decay"], threshold=leaves["threshold"], v0=leaves["v0"],
                       backend=backend, saved_membrane="fp8")
        (s * p["gs"]).sum().backward()
        grads.append([s] + [leaves[k].grad for k in ("x", "v0", "decay", "threshold")])
    assert torch.equal(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1:], grads[1][1:]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- saved_membrane="recompute"
def _run_recompute(p: dict, loss: str = "spikes", **kw) -> list[torch.Tensor]:
    """``[spikes, dx, dv0, ddecay, dthreshold]`` without return_state (the fused recompute path)."""
    leaves = {k: p[k].clone().requires_grad_() for k in ("x", "decay", "threshold", "v0")}
    s = L.lif_scan(leaves["x"], decay=leaves["decay"], threshold=leaves["threshold"], v0=leaves["v0"], **kw)
    total = (s * p["gs"]).sum() if loss == "dense" else s.sum()
    total.backward()
    return [s] + [leaves[k].grad for k in ("x", "v0", "decay", "threshold")]


@needs_engine
@pytest.mark.parametrize(
    "reset,surrogate,decay_input,detach_reset",
    [(r, s, bool(i & 1), bool(i & 2)) for i, (r, s) in enumerate(itertools.product(L.RESETS, SURROGATES))],
)
def test_recompute_equals_the_float_mode_and_the_reference(reset, surrogate, decay_input, detach_reset) -> None:
    # T = 13: one full block of 8 steps and a partial one, whose extra steps must change nothing.
    p = _problem(T=13, B=3, N=7, seed=7)
    kw = dict(reset=reset, surrogate=surrogate, decay_input=decay_input, detach_reset=detach_reset)
    rec = _run_recompute(p, "dense", backend="triton", saved_membrane="recompute", **kw)
    flt = _run_recompute(p, "dense", backend="triton", **kw)
    ref = _run_recompute(p, "dense", backend="reference", **kw)
    assert torch.equal(rec[0], ref[0])
    for a, b in zip(rec, flt):
        assert torch.equal(a, b)  # bit-identical recomputed membrane
    for a, r in zip(rec[1:], ref[1:]):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-5 * (1 + r.abs().max().item()))


@needs_engine
@pytest.mark.parametrize("every,T", [(1, 3), (2, 5), (4, 4), (16, 5), (8, 1)])
def test_recompute_any_checkpoint_interval(every: int, T: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from neurogate.cuda import lif_recompute

    monkeypatch.setattr(lif_recompute, "CHECKPOINT_EVERY", every)
    p = _problem(T=T, B=2, N=5, seed=8)
    rec = _run_recompute(p, "dense", backend="triton", saved_membrane="recompute", reset="zero")
    flt = _run_recompute(p, "dense", backend="triton", reset="zero")
    for a, b in zip(rec, flt):
        assert torch.equal(a, b)


@needs_engine
def test_recompute_checkpoint_interval_must_be_a_power_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    from neurogate.cuda import lif_recompute

    monkeypatch.setattr(lif_recompute, "CHECKPOINT_EVERY", 6)
    x = _problem(T=7, B=1, N=3)["x"].requires_grad_()
    with pytest.raises(ConfigError, match="checkpoint_every=6 must be a power of two"):
        L.lif_scan(x, decay=0.5, backend="triton", saved_membrane="recompute")


@needs_engine
def test_recompute_stride0_gradient_strided_input_and_scalar_params() -> None:
    p = _problem(T=10, B=1, N=600, seed=9)
    outs = []
    for mode in ("float", "recompute"):
        base = p["x"].clone().requires_grad_()
        s = L.lif_scan(base[..., ::2], decay=0.8, threshold=0.7, backend="triton", decay_input=True,
                       saved_membrane=mode)
        s.sum().backward()
        outs.append([s, base.grad])
    for a, b in zip(*outs):
        assert torch.equal(a, b)


@needs_engine
@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_recompute_half_and_double(dtype: torch.dtype) -> None:
    p = _problem(T=9, B=2, N=6, dtype=dtype, seed=10)
    rec = _run_recompute(p, "dense", backend="triton", saved_membrane="recompute")
    flt = _run_recompute(p, "dense", backend="triton")
    for a, b in zip(rec, flt):
        assert a.dtype == dtype and torch.equal(a, b)



# --------------------------------------------------------------------------- saved_membrane="fp8", fused
if IN_PROCESS:
    import triton
    import triton.language as tl

    from neurogate.cuda import fp8 as cuda_fp8

    @triton.jit
    def _fp8_roundtrip(u_ptr, th_ptr, c_ptr, h_ptr, N, BLOCK: tl.constexpr):
        o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = o < N
        c = cuda_fp8.encode(tl.load(u_ptr + o, mask=m, other=0.0))
        tl.store(c_ptr + o, c, mask=m)
        tl.store(h_ptr + o, cuda_fp8.decode(c, tl.load(th_ptr + o, mask=m, other=0.0)), mask=m)

@needs_engine
def test_fp8_code_and_decode_helpers_equal_the_torch_reference() -> None:
    # Every e4m3 value, every midpoint between two (ties round to even), a dense log sweep from
    # 1e-12 to 1e3 (subnormals, saturation), signed zeros, NaN, and thresholds of 0, -0 and 1e-30
    # (where "just below the threshold" is a subnormal).
    import triton

    from neurogate.functional.saved_membrane import decode_reference, encode

    g = torch.Generator().manual_seed(0)
    table = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    table = table[torch.isfinite(table)].unique()
    mids = (table[1:] + table[:-1]) / 2
    sweep = torch.logspace(-12, 3, 4000, dtype=torch.float64).float()
    special = torch.tensor([0.0, -0.0, 448.0, 449.0, 464.0, 465.0, 1e30, -1e30, float("nan")])
    u = torch.cat([table, mids, -mids, sweep, -sweep, special, 3 * torch.randn(2000, generator=g)])
    th = torch.rand(u.numel(), generator=g) * 4 - 2
    th[:50], th[50:100], th[100:150] = 0.0, -0.0, 1e-30
    n = u.numel()
    code, h = torch.empty(n, dtype=torch.uint8, device=DEVICE), torch.empty(n, device=DEVICE)
    _fp8_roundtrip[(triton.cdiv(n, 1024),)](u.to(DEVICE), th.to(DEVICE), code, h, n, BLOCK=1024)
    code, h = code.cpu(), h.cpu()
    assert torch.equal(code, encode(u.clone(), torch.zeros(())).view(torch.uint8))
    expect = decode_reference(code.view(torch.float8_e4m3fn), th, torch.empty(n))
    assert torch.equal(h.isnan(), expect.isnan()) and torch.equal(h.nan_to_num(), expect.nan_to_num())


@needs_engine
@pytest.mark.parametrize("reset,surrogate", [("subtract", "atan"), ("zero", "sigmoid"), ("none", "triangle")])
def test_fp8_fused_in_the_kernels_equals_torch_coding(reset: str, surrogate: str) -> None:
    # The forward kernel writes the code that saved_membrane.encode makes from the float trace,
    # and the backward kernel decoding it equals the float backward run on decode_reference's h.
    from neurogate.cuda import lif as engine
    from neurogate.functional.saved_membrane import decode_reference, encode

    p = _problem(T=12, B=3, N=30, seed=12)
    T, M = 12, 90
    x, v0, gs = p["x"].reshape(T, M), p["v0"].reshape(M), p["gs"].reshape(T, M)
    d, th = p["decay"].repeat(3), p["threshold"].repeat(3)
    rid, sid = L.RESETS[reset], SURROGATE_IDS[surrogate]
    s_f, v_f, h, _ = engine.forward(x, v0, d, th, reset=rid, decay_input=False, store_trace=True)
    s_c, v_c, code, _ = engine.forward(x, v0, d, th, reset=rid, decay_input=False, store_trace=True, fp8_code=True)
    assert code.dtype == torch.float8_e4m3fn and code.shape == (T, M)
    assert torch.equal(s_c, s_f) and torch.equal(v_c, v_f)
    assert torch.equal(code.view(torch.uint8), encode(h.clone(), th).view(torch.uint8))
    kw = dict(alpha=2.0, reset=rid, surrogate=sid, decay_input=False, detach_reset=False)
    fused = engine.backward(gs, None, None, code, None, v0, d, th, **kw)
    torch_coded = engine.backward(gs, None, None, decode_reference(code, th, torch.empty(T, M, device=DEVICE)),
                                  None, v0, d, th, **kw)
    for a, b in zip(fused, torch_coded):
        assert torch.equal(a, b)


@needs_engine
@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_fp8_half_fused_double_torch_coded(dtype: torch.dtype) -> None:
    # float16 integrates in float32: coded in the kernel; float64 state is coded by torch.
    p = _problem(T=7, B=2, N=9, dtype=dtype, seed=13)
    grads = []
    for mode in ("fp8", "float"):
        x = p["x"].clone().requires_grad_()
        s = L.lif_scan(x, decay=p["decay"], threshold=p["threshold"], backend="triton", saved_membrane=mode)
        grads.append((s, torch.autograd.grad((s * p["gs"]).sum(), x)[0]))
    assert torch.equal(grads[0][0], grads[1][0])
    a, b = grads[0][1].double(), grads[1][1].double()
    assert float((a - b).norm() / b.norm()) < 0.1  # approximate surrogate factors, exact spikes


@needs_engine
@pytest.mark.parametrize("mode", ["recompute", "fp8"])
def test_modes_through_the_custom_operator(mode: str) -> None:
    # torch.compile sees the custom operator: its fake implementation must give the shapes the
    # engine gives (checkpoints every K steps, fp8 codes), and the gradients must equal eager's.
    if DEVICE != "cpu":
        pytest.skip("torch.compile on CPU tensors under the interpreter")
    p = _problem(T=10, B=2, N=12, seed=14)

    def f(x, thr):
        return L.lif_scan(x, decay=0.7, threshold=thr, backend="triton", saved_membrane=mode)

    out = []
    for fn in (f, torch.compile(f, fullgraph=True, backend="aot_eager")):
        x, thr = p["x"].clone().requires_grad_(), p["threshold"].clone().requires_grad_()
        s = fn(x, thr)
        out.append([s, *torch.autograd.grad((s * p["gs"]).sum(), (x, thr))])
    for a, b in zip(*out):
        assert torch.equal(a, b)
