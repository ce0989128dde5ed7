"""Surrogate derivatives against independent truths: autograd of the published primitives, the
peer libraries' implementations, and each engine's backward pass."""

import math

import pytest
import torch

import neurogate as ng
from neurogate.errors import ConfigError
from neurogate.surrogate import SURROGATES, resolve

U = torch.linspace(-3, 3, 601, dtype=torch.float64)

# Primitives sigma(u) whose derivative is the surrogate (from the papers / library docs).
PRIMITIVES = {
    "atan": lambda u, a: torch.atan(math.pi * a / 2 * u) / math.pi + 0.5,
    "fast_sigmoid": lambda u, a: u / (1 + a * u.abs()),  # SuperSpike: d/du = 1 / (1 + a|u|)^2
    "sigmoid": lambda u, a: torch.sigmoid(a * u),
    "erf": lambda u, a: 0.5 * (1 + torch.erf(a * u)),
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
@pytest.mark.parametrize("alpha", [0.5, 2.0, 7.0])
def test_derivative_is_derivative_of_primitive(name, alpha):
    u = U.clone().requires_grad_()
    (g,) = torch.autograd.grad(PRIMITIVES[name](u, alpha).sum(), u)
    torch.testing.assert_close(SURROGATES[name].derivative(U, alpha), g, rtol=1e-10, atol=1e-12)


def test_piecewise_surrogates_hand_values():
    tri, rect = SURROGATES["triangle"], SURROGATES["rectangular"]
    u = torch.tensor([-1.5, -0.5, 0.0, 0.25, 0.5, 2.0], dtype=torch.float64)
    torch.testing.assert_close(tri.derivative(u, 1.0), torch.tensor([0, 0.5, 1, 0.75, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(tri.derivative(u, 2.0), torch.tensor([0, 0, 2, 1, 0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(rect.derivative(u, 1.0), torch.tensor([0, 0, 1, 1, 0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("name", ["atan", "sigmoid", "triangle", "rectangular", "erf"])
def test_unit_area(name):
    # A surrogate is the derivative of a smoothed step from 0 to 1: its integral is 1.
    u = torch.linspace(-60, 60, 2_000_001, dtype=torch.float64)
    area = torch.trapezoid(SURROGATES[name].derivative(u, SURROGATES[name].default_alpha), u)
    assert abs(area.item() - 1) < (2e-2 if name == "atan" else 1e-4)  # atan has heavy tails


def test_matches_snntorch_and_spikingjelly():
    snn_sg = pytest.importorskip("snntorch.surrogate")
    sj_sg = pytest.importorskip("spikingjelly.activation_based.surrogate")

    def grad_of(fn, u):
        u = u.clone().requires_grad_()
        fn(u).sum().backward()
        return u.grad

    u = torch.linspace(-2, 2, 401)
    cases = [
        ("atan", 2.0, lambda t: snn_sg.atan(alpha=2.0)(t)),
        ("fast_sigmoid", 25.0, lambda t: snn_sg.fast_sigmoid(slope=25)(t)),
        ("atan", 3.0, lambda t: sj_sg.ATan(alpha=3.0)(t)),
        ("sigmoid", 4.0, lambda t: sj_sg.Sigmoid(alpha=4.0)(t)),
        ("erf", 2.0, lambda t: sj_sg.Erf(alpha=2.0)(t)),
    ]
    for name, alpha, peer in cases:
        torch.testing.assert_close(SURROGATES[name].derivative(u, alpha), grad_of(peer, u), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_engine_backward_uses_the_same_derivative(backend, name):
    # One step from v0 = 0 with loss = sum(S): dL/dx = sigma'(x - threshold).
    alpha = {"rectangular": 1.3, "triangle": 0.8}.get(name, SURROGATES[name].default_alpha * 1.1)
    thr = 0.7
    x = (thr + torch.linspace(-1.5, 1.5, 257, dtype=torch.float64)).reshape(1, 1, -1).requires_grad_()
    s = ng.functional.lif_scan(x, decay=0.5, threshold=thr, surrogate=name, alpha=alpha, backend=backend)
    (g,) = torch.autograd.grad(s.sum(), x)
    want = SURROGATES[name].derivative(x.detach() - thr, alpha)
    torch.testing.assert_close(g, want, rtol=1e-12, atol=1e-12)


def test_resolve_errors():
    with pytest.raises(ConfigError, match="atan.*erf"):
        resolve("softplus")
    with pytest.raises(ConfigError, match="alpha"):
        resolve("atan", -1.0)
    assert resolve("superspike")[0].name == "fast_sigmoid"
    assert resolve("atan") == (SURROGATES["atan"], 2.0)
