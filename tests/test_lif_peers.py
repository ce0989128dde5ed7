"""Agreement with snnTorch ``Leaky`` and SpikingJelly ``LIFNode`` on matching settings.

Conventions matched (see the README's table): snnTorch ``Leaky(reset_delay=False)`` resets in the
same step as the spike and fires on ``mem > threshold``; its ``mem`` output is our post-reset
membrane. SpikingJelly ``LIFNode(tau)`` has decay ``1 - 1/tau``, fires on ``v >= threshold``,
``v_reset=None`` is our subtract reset and ``v_reset=0`` our zero reset; ``v_seq`` is post-reset.
Inputs avoid exact threshold hits, where the two libraries' ``>`` and ``>=`` differ.

snnTorch's same-step reset has a quirk: when the post-reset membrane is still above threshold
(input above twice the threshold), its next step undoes the reset ("avoid double reset") and
does not fire. The snnTorch test keeps inputs small enough that this never happens.
"""

import pytest
import torch

from neurogate.functional import lif_scan

snntorch = pytest.importorskip("snntorch")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
sj_functional = pytest.importorskip("spikingjelly.activation_based.functional")

T, B, N = 40, 3, 50


def _post_reset(h, s, thr, reset):
    return h - s * thr if reset == "subtract" else h * (1 - s)


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return (0.8 * torch.randn(T, B, N, generator=g) + 0.35).requires_grad_()


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_snntorch_leaky(backend, reset):
    # x <= 0.85 and v < 0.9 keep h below twice the threshold (see the module docstring).
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(T, B, N, generator=g) * 1.35 - 0.5).requires_grad_()
    w = torch.randn(T, B, N, generator=torch.Generator().manual_seed(9))
    beta, thr = 0.85, 0.9
    leaky = snntorch.Leaky(beta=beta, threshold=thr, reset_mechanism=reset, reset_delay=False,
                           spike_grad=snntorch.surrogate.atan(alpha=2.0))
    mem = leaky.init_leaky()
    spk_rec, mem_rec = [], []
    for t in range(T):
        spk, mem = leaky(x[t], mem)
        spk_rec.append(spk)
        mem_rec.append(mem)
    spk_ref, mem_ref = torch.stack(spk_rec), torch.stack(mem_rec)
    (g_ref,) = torch.autograd.grad((spk_ref * w).sum(), x)

    s, _, h = lif_scan(x, decay=beta, threshold=thr, reset=reset, surrogate="atan", alpha=2.0,
                       backend=backend, return_state=True)
    (g,) = torch.autograd.grad((s * w).sum(), x)
    assert torch.equal(s, spk_ref)
    torch.testing.assert_close(_post_reset(h, s, thr, reset), mem_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [True, False])
def test_spikingjelly_lifnode(backend, reset, decay_input, detach_reset):
    x = _inputs(1)
    w = torch.randn(T, B, N, generator=torch.Generator().manual_seed(8))
    tau, thr = 2.0, 0.8
    node = sj_neuron.LIFNode(tau=tau, decay_input=decay_input, v_threshold=thr,
                             v_reset=None if reset == "subtract" else 0.0,
                             surrogate_function=sj_surrogate.Sigmoid(alpha=4.0),
                             detach_reset=detach_reset, step_mode="m", store_v_seq=True)
    spk_ref = node(x)
    v_ref = node.v_seq
    (g_ref,) = torch.autograd.grad((spk_ref * w).sum(), x)
    sj_functional.reset_net(node)

    s, _, h = lif_scan(x, decay=1 - 1 / tau, threshold=thr, reset=reset, surrogate="sigmoid", alpha=4.0,
                       decay_input=decay_input, detach_reset=detach_reset, backend=backend, return_state=True)
    (g,) = torch.autograd.grad((s * w).sum(), x)
    assert torch.equal(s, spk_ref)
    torch.testing.assert_close(_post_reset(h, s, thr, reset), v_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)
