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

from neurogate.errors import ValueRangeError
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
