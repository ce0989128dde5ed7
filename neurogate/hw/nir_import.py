"""NIR graph -> runnable neurogate module (:func:`from_nir`); conventions in :mod:`neurogate.hw.nir`.

The graph must be a chain ``Input -> ... -> Output`` (what neurogate, snnTorch and Norse write for
feed-forward networks); a branch, a merge or a recurrent edge is refused with the node's name.
Every node becomes a time-major module, so the result maps ``[T, B, *input]`` to
``[T, B, *output]`` (or to logits ``[B, K]`` when the graph carries a neurogate readout).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, HardwareConstraintError, ShapeError, ValueRangeError
from ..layers import LIF
from . import units

__all__ = [
    "IMPORTERS",
    "Delay",
    "LeakyIntegrator",
    "NIRNetwork",
    "Scale",
    "SumPool2d",
    "from_nir",
    "register_importer",
]


# --------------------------------------------------------------------------- runtime modules
class SumPool2d(nn.Module):
    """Sum pooling (NIR ``SumPool2d``): average pooling without the division, exact in float."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, divisor_override=1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Scale(nn.Module):
    """Elementwise gain (NIR ``Scale``): ``y = x * scale``, ``scale`` over one sample's shape."""

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class LeakyIntegrator(nn.Module):
    r"""Non-spiking leaky integrator (NIR ``LI``): :math:`u_t = \beta u_{t-1} + c\, x_t`,
    :math:`u_{-1} = 0`; ``[T, B, ...]`` -> the membrane trajectory ``[T, B, ...]``."""

    def __init__(self, decay: torch.Tensor, gain: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("decay", torch.as_tensor(decay, dtype=torch.float32))
        self.register_buffer("gain", torch.as_tensor(gain, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, out = torch.zeros_like(x[0]), []
        for x_t in x.unbind(0):
            u = self.decay * u + self.gain * x_t
            out.append(u)
        return torch.stack(out) if out else x.clone()


class Delay(nn.Module):
    """Per-element integer delay (NIR ``Delay``): ``y[t, b, i] = x[t - d_i, b, i]``, zero before."""

    def __init__(self, steps: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("steps", torch.as_tensor(steps, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[0]
        t = torch.arange(T, device=x.device).view(T, *([1] * (x.dim() - 1)))
        src = t - self.steps.to(x.device)
        idx = src.clamp(min=0).expand(T, *x.shape[1:])
        return torch.gather(x, 0, idx) * (src >= 0)


class NIRNetwork(nn.Sequential):
    """The module :func:`from_nir` returns: a chain of time-major layers named after the nodes.

    Attributes:
        dt: the step the continuous-time parameters were discretised with (seconds).
        metadata: the graph's metadata as read.
    """

    def __init__(self, layers: list[tuple[str, nn.Module]], dt: float, metadata: dict[str, Any]) -> None:
        super().__init__()
        for name, m in layers:
            self.add_module(name, m)
        self.dt, self.metadata = dt, dict(metadata)

    def __getitem__(self, idx):
        if isinstance(idx, slice):  # a slice is a plain nn.Sequential of the same modules
            return nn.Sequential(*list(self._modules.values())[idx])
        return super().__getitem__(idx)


# --------------------------------------------------------------------------- registry
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
    :func:`from_nir` then runs them on a zero sample to learn the next shape.
    """
    def deco(f: Importer) -> Importer:
        IMPORTERS[node_type] = f
        return f
    return deco(fn) if fn is not None else deco


def from_nir(graph_or_path: nir.NIRGraph | str | pathlib.Path, dt: float | None = None, *,
             integration: str | None = None) -> NIRNetwork:
    """Build a runnable neurogate module from a NIR graph or a ``.nir`` file.

    Args:
        graph_or_path: a :class:`nir.NIRGraph` or the path of a file written by ``nir.write``.
        dt: the step to discretise with, in seconds (default: ``graph.metadata["dt"]``, which
            neurogate writes; graphs from snnTorch (written with dt = 1e-4) or Norse carry none).
        integration: ``"exact"`` or ``"euler"`` (default: ``graph.metadata["integration"]``, else
            ``"exact"``). snnTorch's and Norse's graphs were written for ``"euler"``.

    Example:
        >>> net = ng.hw.from_nir("net.nir")                    # a graph neurogate wrote
        >>> net = ng.hw.from_nir(snntorch_graph, dt=1e-4, integration="euler")
        >>> spikes = net(x)                                    # x: [T, B, *input_shape]
    """
    graph = _read(graph_or_path) if isinstance(graph_or_path, (str, pathlib.Path)) else graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise ConfigError(f"from_nir expects a nir.NIRGraph or a path; got {type(graph).__name__}")
    meta = _plain(dict(graph.metadata or {}))
    if dt is None:
        if "dt" not in meta:
            raise ConfigError("the NIR graph carries no 'dt' in its metadata (NIR is continuous-time); pass "
                              "from_nir(graph, dt=...) in seconds (snnTorch exports assume dt = 1e-4)")
        dt = float(meta["dt"])
    integration = units.check_integration(integration or str(meta.get("integration", "exact")))
    units._check_dt(dt)
    chain = _chain(graph)
    shape = _shape_of(graph.nodes[chain[0]].output_type.get("output"), chain[0])
    shape = _drop_sample_batch(graph, chain, shape)
    in_shape = shape
    ctx = ImportContext(float(dt), integration, shape, meta)
    layers: list[tuple[str, nn.Module]] = []
    body = chain[1:-1]
    for i, name in enumerate(body):
        node = graph.nodes[name]
        ctx.last = i == len(body) - 1
        _check_input_shape(name, node, ctx.shape, layers[-1][0] if layers else chain[0])
        importer = next((IMPORTERS[t] for t in type(node).__mro__ if t in IMPORTERS), None)
        if importer is None:
            raise ConfigError(
                f"NIR node {name!r} has type {type(node).__name__}, which neurogate cannot import; supported: "
                f"{', '.join(sorted(t.__name__ for t in IMPORTERS))}"
            )
        modules = importer(ctx, name, node)
        for j, m in enumerate(modules):
            key = _module_name(name if len(modules) == 1 else f"{name}_{j}", layers)
            layers.append((key, m))
            if not _is_readout(m):  # a readout reduces over time; its output is the graph's
                ctx.shape = _dry_run(name, m, ctx.shape)
    out_node = graph.nodes[chain[-1]]
    expected = out_node.input_type.get("input") if out_node.input_type else None
    if expected is not None and np.size(expected) and tuple(int(s) for s in expected) not in (ctx.shape, (1, *ctx.shape)):
        raise ShapeError(f"NIR output node {chain[-1]!r} expects shape {tuple(expected)}, but the chain gives {ctx.shape}")
    if meta.get("readout") == "mean":
        from ..models.base import Readout

        layers.append(("readout", Readout("mean")))
    net = NIRNetwork(layers, float(dt), meta)
    net.input_shape = in_shape
    return net.eval()


# --------------------------------------------------------------------------- graph handling
def _read(path: str | pathlib.Path) -> nir.NIRGraph:
    import h5py

    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"NIR file {str(path)!r} does not exist")
    known = set(nir.ir.__all__) if hasattr(nir.ir, "__all__") else set()
    try:
        with h5py.File(path, "r") as f:
            _check_types(f["node"], "graph", known)
    except OSError as err:
        raise ConfigError(f"{path}: not a NIR (HDF5) file: {err}") from None
    try:
        return nir.read(path)
    except (ValueError, AssertionError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: NIR could not read the graph: {err!r}") from None


def _check_types(group, name: str, known: set[str]) -> None:
    t = group["type"][()] if "type" in group else b"?"
    t = t.decode() if isinstance(t, bytes) else str(t)
    if known and t not in known:
        raise ConfigError(f"NIR node {name!r} has unknown type {t!r} (not a NIR {nir.version} node type); "
                          f"neurogate imports: {', '.join(sorted(c.__name__ for c in IMPORTERS))}")
    if t == "NIRGraph" and "nodes" in group:
        for child, sub in group["nodes"].items():
            _check_types(sub, child, known)


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata read from HDF5 holds numpy scalars and bytes; make them Python values."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, dict):
            v = _plain(v)
        out[k] = v
    return out


def _chain(graph: nir.NIRGraph) -> list[str]:
    """Node names from the Input to the Output, or ConfigError where the graph is not a chain."""
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConfigError(f"from_nir needs exactly one Input and one Output node; got inputs {inputs}, outputs {outputs}")
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    pred: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        if a not in graph.nodes or b not in graph.nodes:
            raise ConfigError(f"NIR edge ({a!r}, {b!r}) names a node that is not in the graph")
        succ[a].append(b)
        pred[b].append(a)
    chain, node = [inputs[0]], inputs[0]
    while node != outputs[0]:
        if len(succ[node]) != 1:
            raise ConfigError(f"NIR node {node!r} has {len(succ[node])} outgoing edges {succ[node]}; from_nir "
                              "imports chains (feed-forward, no branches or recurrence)")
        node = succ[node][0]
        if len(pred[node]) != 1 or node in chain:
            raise ConfigError(f"NIR node {node!r} has inputs {pred[node]}; from_nir imports chains "
                              "(no merges or recurrent edges)")
        chain.append(node)
    if len(chain) != len(graph.nodes):
        raise ConfigError(f"NIR nodes {sorted(set(graph.nodes) - set(chain))} are not on the Input -> Output path")
    return chain


def _drop_sample_batch(graph: nir.NIRGraph, chain: list[str], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Norse's exporter writes the sample's batch of 1 into the Input shape: ``(1, 6)`` for 6 inputs."""
    if len(chain) < 3 or len(shape) < 2 or shape[0] != 1:
        return shape
    t = (graph.nodes[chain[1]].input_type or {}).get("input")
    if t is not None and np.size(t) and tuple(int(s) for s in np.asarray(t).reshape(-1)) == shape[1:]:
        return shape[1:]
    return shape


def _shape_of(t, name: str) -> tuple[int, ...]:
    if t is None or not np.size(t):
        raise ShapeError(f"NIR node {name!r} has no shape; give the Input node a shape")
    return tuple(int(s) for s in np.asarray(t).reshape(-1))


def _check_input_shape(name: str, node: nir.NIRNode, shape: tuple[int, ...], prev: str) -> None:
    t = (node.input_type or {}).get("input")
    if t is None or not np.size(t) or isinstance(node, (nir.LIF, nir.IF, nir.LI, nir.Scale, nir.Delay)):
        return  # neuron parameters may be scalars that broadcast; checked by the importer
    expected = tuple(int(s) for s in np.asarray(t).reshape(-1))
    if expected != shape:
        raise ShapeError(f"NIR node {name!r} ({type(node).__name__}) expects input shape {expected}, but "
                         f"{prev!r} gives {shape}")


def _module_name(name: str, layers: list[tuple[str, nn.Module]]) -> str:
    key = name.replace(".", "_") or "node"
    taken = {k for k, _ in layers}
    while key in taken:
        key += "_"
    return key


def _dry_run(name: str, m: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    try:
        with torch.no_grad():
            return tuple(m(torch.zeros(1, 1, *shape)).shape[2:])
    except (RuntimeError, ValueError) as err:
        raise ShapeError(f"NIR node {name!r} cannot take one sample of shape {shape}: {err}") from None


def _is_readout(m: nn.Module) -> bool:
    from ..models.base import Readout

    return isinstance(m, Readout)


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
    meta = _plain(dict(node.metadata or {}))
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
    meta = _plain(dict(node.metadata or {}))
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
    max_delay = int(_plain(dict(g.metadata or {})).get("max_delay", int(delays.max()) + 1))
    layer = DelayedLinear(weight.shape[1], weight.shape[0], max_delay=max(max_delay, int(delays.max()) + 1),
                          bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.P.copy_(delays_to_positions(torch.as_tensor(delays), layer.max_delay))
        if bias is not None:
            layer.bias.copy_(torch.as_tensor(bias))
    layer.round_delays()
    return [layer.eval()]
