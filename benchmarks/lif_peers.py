"""The LIF implementations that ``benchmarks/lif.py`` times: neurogate (exact and fp8), its
reference, snnTorch, SpikingJelly, Norse and plain PyTorch (eager and ``torch.compile``), each as
its documentation uses it, configured to neurogate's equations where the library allows."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

DECAY, THRESHOLD, ALPHA = 0.9, 1.0, 2.0
PEERS = ("neurogate", "fp8", "reference", "snntorch", "spikingjelly", "norse", "eager", "compile")
LABELS = {
    "neurogate": "neurogate cpu",
    "fp8": "neurogate fp8",
    "reference": "neurogate ref",
    "snntorch": "snnTorch",
    "spikingjelly": "SpikingJelly",
    "norse": "Norse",
    "eager": "eager unbind",
    "compile": "compiled step",
}
# Peers whose equations are neurogate's exactly: their spikes and grad_x are checked against it.
SAME_MODEL = {"fp8", "reference", "spikingjelly", "eager", "compile"}


@dataclass
class Peer:
    """One implementation under test: ``forward(x) -> spikes`` and how it was configured."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    settings: str
    notes: list[str] = field(default_factory=list)



# --------------------------------------------------------------------------- the peers
def make_neurogate(shape) -> Peer:
    from neurogate.functional import lif_scan

    return Peer(
        lambda x: lif_scan(x, decay=DECAY),
        "lif_scan(x, decay=0.9): h = 0.9 v + x, subtract reset, atan alpha 2, threshold 1",
    )


def make_fp8(shape) -> Peer:
    from neurogate.functional import lif_scan

    return Peer(
        lambda x: lif_scan(x, decay=DECAY, saved_membrane="fp8"),
        "same call, saved_membrane='fp8': a 1-byte code of h - threshold kept for backward "
        "(approximate surrogate gradients; not a speed mode)",
    )


def make_reference(shape) -> Peer:
    from neurogate.functional import lif_scan

    return Peer(lambda x: lif_scan(x, decay=DECAY, backend="reference"), "same call, backend='reference'")


def make_snntorch(shape) -> Peer:
    import snntorch as snn

    lif = snn.Leaky(beta=DECAY)

    def forward(x):
        mem = lif.init_leaky()
        spk_rec = []
        for t in range(x.shape[0]):
            spk, mem = lif(x[t], mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec)

    return Peer(
        forward,
        "snn.Leaky(beta=0.9), loop over x[t] as documented: subtract reset (applied one step "
        "late, not decayed), atan alpha 2",
    )


def make_spikingjelly(shape) -> Peer:
    from spikingjelly.activation_based import functional, neuron, surrogate

    # decay_input=False, v_reset=None: H = V - V/tau + X = 0.9 V + X with tau = 10, soft reset.
    node = neuron.LIFNode(
        tau=1.0 / (1.0 - DECAY), decay_input=False, v_threshold=THRESHOLD, v_reset=None,
        surrogate_function=surrogate.ATan(alpha=ALPHA), step_mode="m",
    )

    def forward(x):
        functional.reset_net(node)
        return node(x)

    return Peer(
        forward,
        "LIFNode(tau=10, decay_input=False, v_reset=None, ATan(2), step_mode='m'), reset_net "
        "before each forward (timed): neurogate's equations (not SJ's defaults)",
    )


def make_norse(shape) -> Peer:
    import norse.torch as norse

    dt = 1e-3
    p = norse.LIFParameters(
        tau_syn_inv=torch.as_tensor(1.0 / dt),  # the synaptic current is emptied every step
        tau_mem_inv=torch.as_tensor((1.0 - DECAY) / dt),
        # Norse's v is neurogate's scaled by 1 - decay (v = 0.9 v + 0.1 x), so is its threshold.
        v_th=torch.as_tensor((1.0 - DECAY) * THRESHOLD),
        v_reset=torch.as_tensor(0.0),
    )
    lif = norse.LIF(p=p, dt=dt)
    return Peer(
        lambda x: lif(x)[0],
        "norse.torch.LIF(tau_syn_inv=1/dt, tau_mem_inv=100, v_th=0.1, v_reset=0), dt=1e-3: "
        "v = 0.9 v + 0.1 x (neurogate's v / 10), reset to zero, SuperSpike surrogate (Norse has "
        "no atan), loop over x[ts]",
    )


class _ATanSpike(torch.autograd.Function):
    """Heaviside forward, atan surrogate backward: what a user writes without a library."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * ((ALPHA / 2) / (1 + (math.pi * ALPHA / 2 * u) ** 2))


def _lif_step(x_t, v):
    h = DECAY * v + x_t
    s = _ATanSpike.apply(h - THRESHOLD)
    return s, h - s * THRESHOLD


def _unbind_loop(step):
    def forward(x):
        v = x.new_zeros(x.shape[1:])
        spikes = []
        for x_t in x.unbind(0):
            s, v = step(x_t, v)
            spikes.append(s)
        return torch.stack(spikes)

    return forward


def make_eager(shape) -> Peer:
    return Peer(
        _unbind_loop(_lif_step), "for x_t in x.unbind(0): one step in PyTorch ops, atan autograd.Function"
    )


def make_compile(shape) -> Peer:
    torch._dynamo.reset()  # cold compile for every shape
    step = torch.compile(_lif_step, dynamic=False)
    forward = _unbind_loop(step)
    x = torch.rand(shape, requires_grad=True)
    t0 = time.perf_counter()
    forward(x).sum().backward()
    cold = time.perf_counter() - t0
    return Peer(
        forward,
        "torch.compile(step, dynamic=False), the unbind loop in eager",
        [f"cold compile (first forward + backward, dynamo reset per shape): {cold:.1f} s"],
    )


MAKERS = {
    "neurogate": make_neurogate,
    "fp8": make_fp8,
    "reference": make_reference,
    "snntorch": make_snntorch,
    "spikingjelly": make_spikingjelly,
    "norse": make_norse,
    "eager": make_eager,
    "compile": make_compile,
}
