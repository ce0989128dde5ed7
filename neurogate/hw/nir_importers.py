"""NIR node -> time-major neurogate modules: the importer registry and the importers of every node
type :func:`~neurogate.hw.nir_import.from_nir` reads (affine, convolution, pooling, scale, delay,
LIF/IF/LI neurons and the nested graph of a synaptic-delay layer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, HardwareConstraintError, ShapeError, ValueRangeError
from ..layers import LIF
from . import units
from .nir_modules import Delay, LeakyIntegrator, Scale, SumPool2d
from .nir_read import plain_metadata

__all__ = ["IMPORTERS", "ImportContext", "Importer", "register_importer"]


@dataclass
class ImportContext:
    """What a node importer sees: the step, the integrator, one sample's current shape."""

    dt: float
    integration: str
    shape: tuple[int, ...]
    metadata: dict[str, Any]
    last: bool = False


Importer = Callable[[ImportContext, str, nir.NIRNode], list[nn.Module]]
IMPORTERS: dict[type, Importer] = {}


def register_importer(node_type: type, fn: Importer | None = None):
    """Register ``fn(ctx, name, node) -> [modules]`` for a NIR node type (usable as a decorator).

    The importer validates the node against ``ctx.shape`` and returns time-major modules;
    :func:`~neurogate.hw.nir_import.from_nir` then runs them on a zero sample to learn the next shape.
    """
    def deco(f: Importer) -> Importer:
        IMPORTERS[node_type] = f
        return f
    return deco(fn) if fn is not None else deco


def _td(m: nn.Module) -> nn.Module:
    from ..models.base import TimeDistributed

    return TimeDistributed(m)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def _param(name: str, field: str, value, shape: tuple[int, ...]) -> np.ndarray:
    """A neuron parameter as float64, checked to broadcast to the layer's shape."""
    arr = np.asarray(value, dtype=np.float64)
    try:
        if np.broadcast_shapes(arr.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ShapeError(f"NIR node {name!r}: {field} has shape {arr.shape}, which does not fit the layer's "
                         f"input shape {shape}") from None
    return arr


# --------------------------------------------------------------------------- node importers
@register_importer(nir.Affine)
@register_importer(nir.Linear)
def _affine(ctx: ImportContext, name: str, node) -> list[nn.Module]:
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise ShapeError(f"NIR node {name!r}: weight has shape {w.shape}; neurogate imports (out, in) matrices")
    has_bias = isinstance(node, nir.Affine) and node.bias is not None
    m = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
    with torch.no_grad():
        m.weight.copy_(_t(w))
        if has_bias:
            m.bias.copy_(_t(node.bias).reshape(-1))
    return [_td(m)]


def _ints(v, n: int) -> tuple[int, ...]:
    a = np.asarray(v).reshape(-1)
    return tuple(int(x) for x in (a if a.size == n else np.repeat(a, n)))


@register_importer(nir.Conv1d)
@register_importer(nir.Conv2d)
def _conv(ctx: ImportContext, name: str, node) -> list[nn.Module]:
    w = np.asarray(node.weight)
    n = w.ndim - 2
    cls = {1: nn.Conv1d, 2: nn.Conv2d}[n]
    pad = node.padding
    pad = pad.decode() if isinstance(pad, bytes) else pad
    pad = str(pad) if isinstance(pad, (str, np.str_)) else _ints(pad, n)
    groups = int(np.asarray(node.groups))
    m = cls(w.shape[1] * groups, w.shape[0], w.shape[2:], stride=_ints(node.stride, n), padding=pad,
            dilation=_ints(node.dilation, n), groups=groups, bias=True)
    with torch.no_grad():
        m.weight.copy_(_t(w))
        m.bias.copy_(_t(node.bias).reshape(-1))
    return [_td(m)]


@register_importer(nir.Flatten)
def _flatten(ctx: ImportContext, name: str, node: nir.Flatten) -> list[nn.Module]:
    s, e = int(node.start_dim), int(node.end_dim)
    return [_td(nn.Flatten(s + 1 if s >= 0 else s, e + 1 if e >= 0 else e))]


@register_importer(nir.AvgPool2d)
@register_importer(nir.SumPool2d)
def _pool(ctx: ImportContext, name: str, node) -> list[nn.Module]:
    k, s, p = _ints(node.kernel_size, 2), _ints(node.stride, 2), _ints(node.padding, 2)
    return [_td(nn.AvgPool2d(k, s, p) if isinstance(node, nir.AvgPool2d) else SumPool2d(k, s, p))]


@register_importer(nir.Scale)
def _scale(ctx: ImportContext, name: str, node: nir.Scale) -> list[nn.Module]:
    return [Scale(_t(_param(name, "scale", node.scale, ctx.shape)))]


@register_importer(nir.Delay)
def _delay(ctx: ImportContext, name: str, node: nir.Delay) -> list[nn.Module]:
    steps = _param(name, "delay", node.delay, ctx.shape) / ctx.dt
    k = np.round(steps)
    if np.any(np.abs(steps - k) > 1e-6 * np.maximum(1, np.abs(k))) or np.any(k < 0):
        raise HardwareConstraintError(name, "delays must be whole, non-negative multiples of dt",
                                      f"{steps.min()}..{steps.max()} steps", "export with the dt the delays were trained at")
    return [Delay(torch.as_tensor(np.broadcast_to(k, ctx.shape).copy()).long())]


def _neuron_values(name: str, node, ctx: ImportContext) -> tuple[np.ndarray, np.ndarray]:
    """``(beta, gain)`` per neuron of a NIR LIF/LI/IF node at ``ctx.dt``."""
    v_leak = _param(name, "v_leak", getattr(node, "v_leak", 0.0), ctx.shape)
    v_reset = _param(name, "v_reset", getattr(node, "v_reset", 0.0) if getattr(node, "v_reset", None) is not None else 0.0, ctx.shape)
    for field, v in (("v_leak", v_leak), ("v_reset", v_reset)):
        if np.any(v != 0):
            raise HardwareConstraintError(name, f"neurogate neurons rest and reset at 0 ({field} = 0)",
                                          f"{field} = {v.min()}..{v.max()}", "shift the potentials so that "
                                          "v_leak = v_reset = 0 (and move v_threshold with them)")
    r = _param(name, "r", node.r, ctx.shape)
    if isinstance(node, nir.IF):
        return np.ones_like(r), units.if_r_to_gain(r, ctx.dt)
    tau = _param(name, "tau", node.tau, ctx.shape)
    try:
        beta = units.tau_to_decay(tau, ctx.dt, ctx.integration)
    except ValueRangeError as err:
        raise ValueRangeError(f"NIR node {name!r}: {err}") from None
    return beta, units.r_to_gain(r, beta)


def _uniform(a: np.ndarray) -> np.ndarray | float:
    return float(a.reshape(-1)[0]) if a.size and np.all(a == a.reshape(-1)[0]) else a


@register_importer(nir.LIF)
@register_importer(nir.IF)
def _lif(ctx: ImportContext, name: str, node) -> list[nn.Module]:
    beta, gain = _neuron_values(name, node, ctx)
    thr = _param(name, "v_threshold", node.v_threshold, ctx.shape)
    meta = plain_metadata(dict(node.metadata or {}))
    reset = str(meta.get("reset", "zero"))  # NIR: v -> v_reset (= 0) after a spike
    modules: list[nn.Module] = []
    if np.allclose(gain, 1 - beta, rtol=1e-5, atol=0):  # Norse's r = 1 is this case too
        decay_input = True
    else:
        decay_input = False
        if not np.allclose(gain, 1.0, rtol=1e-5, atol=0):
            modules.append(Scale(_t(np.broadcast_to(gain, np.broadcast_shapes(gain.shape, ctx.shape)))))
    b, th = _uniform(np.broadcast_to(beta, np.broadcast_shapes(beta.shape, thr.shape))), _uniform(thr)
    shape = () if not isinstance(b, np.ndarray) and not isinstance(th, np.ndarray) else ctx.shape
    lif = LIF(decay=0.5, threshold=1.0, reset=reset, decay_input=decay_input, shape=shape)
    with torch.no_grad():
        lif.decay_value.copy_(torch.as_tensor(np.broadcast_to(b, shape).astype(np.float32)))
        lif.threshold.copy_(torch.as_tensor(np.broadcast_to(th, shape).astype(np.float32)))
    if bool(((lif.decay_value < 0) | (lif.decay_value > 1)).any()):
        raise ValueRangeError(f"NIR node {name!r}: decay {beta.min()}..{beta.max()} is outside [0, 1]")
    return [*modules, lif]


@register_importer(nir.LI)
def _li(ctx: ImportContext, name: str, node: nir.LI) -> list[nn.Module]:
    beta, gain = _neuron_values(name, node, ctx)
    meta = plain_metadata(dict(node.metadata or {}))
    b = _uniform(beta)
    if ctx.last and ctx.metadata.get("readout") == "leaky" and meta.get("readout") == "leaky" \
            and not isinstance(b, np.ndarray) and np.allclose(gain, 1.0, rtol=1e-5, atol=0):
        from ..models.base import Readout

        return [Readout("leaky", decay=float(b))]
    return [LeakyIntegrator(_t(beta), _t(gain))]


@register_importer(nir.NIRGraph)
def _subgraph(ctx: ImportContext, name: str, g: nir.NIRGraph) -> list[nn.Module]:
    """A nested graph of parallel ``[Delay ->] Affine/Linear`` branches from its Input to its Output
    (what neurogate writes for :class:`~neurogate.layers.delay.DelayedLinear`) -> one
    ``DelayedLinear`` with integer delays. Any other nested graph is refused."""
    from ..functional.delay import delays_to_positions
    from ..layers.delay import DelayedLinear

    refuse = ConfigError(f"NIR node {name!r} is a nested graph; from_nir imports nested graphs only as parallel "
                         "[Delay ->] Affine/Linear branches (a synaptic-delay layer)")
    ins = [k for k, n in g.nodes.items() if isinstance(n, nir.Input)]
    outs = [k for k, n in g.nodes.items() if isinstance(n, nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise refuse
    succ: dict[str, list[str]] = {k: [] for k in g.nodes}
    for a, b in g.edges:
        succ.setdefault(a, []).append(b)
    weight = bias = delays = None
    for first in succ[ins[0]]:
        path = [first]
        while path[-1] != outs[0]:
            if len(succ.get(path[-1], [])) != 1 or len(path) > 3:
                raise refuse
            path.append(succ[path[-1]][0])
        body = [g.nodes[k] for k in path[:-1]]
        if not (isinstance(body[-1], (nir.Affine, nir.Linear))
                and all(isinstance(n, nir.Delay) for n in body[:-1]) and len(body) <= 2):
            raise refuse
        w = np.asarray(body[-1].weight, dtype=np.float32)
        steps = np.zeros(w.shape[1]) if len(body) == 1 else _param(name, "delay", body[0].delay, (w.shape[1],)) / ctx.dt
        k = np.round(np.broadcast_to(steps, (w.shape[1],)))
        if np.any(np.abs(steps - k) > 1e-6 * np.maximum(1, k)) or np.any(k < 0):
            raise HardwareConstraintError(name, "delays must be whole, non-negative multiples of dt",
                                          f"{np.min(steps)}..{np.max(steps)} steps", "import with the dt they were written for")
        dk = np.broadcast_to(k, w.shape)
        if weight is None:
            weight, delays = np.zeros_like(w), np.zeros(w.shape, dtype=np.int64)
        elif w.shape != weight.shape:
            raise ShapeError(f"NIR node {name!r}: branches have weight shapes {weight.shape} and {w.shape}")
        clash = (w != 0) & (weight != 0) & (delays != dk)
        if clash.any():
            raise HardwareConstraintError(name, "one delay per synapse", "a synapse with two delays",
                                          "split the layer into one layer per delay")
        delays = np.where(w != 0, dk, delays).astype(np.int64)
        weight = weight + w
        if isinstance(body[-1], nir.Affine) and body[-1].bias is not None:
            bias = (0 if bias is None else bias) + np.asarray(body[-1].bias, dtype=np.float32)
    if weight is None:
        raise refuse
    max_delay = int(plain_metadata(dict(g.metadata or {})).get("max_delay", int(delays.max()) + 1))
    layer = DelayedLinear(weight.shape[1], weight.shape[0], max_delay=max(max_delay, int(delays.max()) + 1),
                          bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.P.copy_(delays_to_positions(torch.as_tensor(delays), layer.max_delay))
        if bias is not None:
            layer.bias.copy_(torch.as_tensor(bias))
    layer.round_delays()
    return [layer.eval()]
