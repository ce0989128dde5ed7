"""neurogate model -> NIR graph (:func:`to_nir`); conventions in :mod:`neurogate.hw.nir`.

The exporter walks the model's layers in forward order instead of tracing it. neurogate's models
are sequential by construction (:class:`~neurogate.models.neuron.NeuronModel` runs its children in
registration order), and a walk sees the modules themselves: :class:`~neurogate.LIF`'s buffers,
a BatchNorm's running statistics, :class:`~neurogate.models.Readout`'s mode, which a trace through
the fused ``lif_scan`` custom operator and ``TimeDistributed``'s reshapes would hide. A container
whose ``forward`` is not a plain chain (anything but those in :data:`SEQUENTIAL_CONTAINERS`) is
refused with a :class:`~neurogate.errors.ConfigError` instead of being guessed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, HardwareConstraintError, ShapeError
from ..layers import LIF
from . import units
from .nir_modules import Delay, LeakyIntegrator, Scale, SumPool2d

__all__ = ["EXPORTERS", "SEQUENTIAL_CONTAINERS", "register_exporter", "supported_layers", "to_nir"]

# Containers whose forward applies their children one after the other (extend to add yours).
SEQUENTIAL_CONTAINERS: list[type] = [nn.Sequential]


@dataclass
class ExportContext:
    """State of one export: the per-sample shape so far and the nodes emitted."""

    dt: float
    integration: str
    shape: tuple[int, ...]
    nodes: list[tuple[str, nir.NIRNode]] = field(default_factory=list)
    resets: set[str] = field(default_factory=set)
    decay_inputs: set[bool] = field(default_factory=set)
    readout: str = "none"
    foldable: bool = False  # the last node is an Affine/Conv that a BatchNorm may fold into

    def emit(self, name: str, node: nir.NIRNode, shape: tuple[int, ...], foldable: bool = False) -> None:
        self.nodes.append((name, node))
        self.shape, self.foldable = tuple(int(s) for s in shape), foldable


Exporter = Callable[[ExportContext, str, nn.Module, bool], None]
EXPORTERS: dict[type, Exporter] = {}


def register_exporter(module_type: type, fn: Exporter | None = None):
    """Register ``fn(ctx, name, module, time_folded)`` as the NIR exporter of ``module_type``.

    ``time_folded`` is True inside :class:`~neurogate.models.TimeDistributed` (the module sees
    ``[T*B, ...]``) and False for a bare module (it sees ``[T, B, ...]``). Usable as a decorator.
    """
    def deco(f: Exporter) -> Exporter:
        EXPORTERS[module_type] = f
        return f
    return deco(fn) if fn is not None else deco


def supported_layers() -> list[str]:
    """Names of the layers :func:`to_nir` exports."""
    return sorted({t.__name__ for t in EXPORTERS} | {"BatchNorm1d", "BatchNorm2d", "Dropout", "Identity"})


def to_nir(
    model: nn.Module,
    dt: float = 1e-3,
    input_shape: tuple[int, ...] | None = None,
    *,
    integration: str = "exact",
) -> nir.NIRGraph:
    """Export a sequential neurogate model as a NIR graph of continuous-time nodes.

    Args:
        model: a registered model (``lif-mlp``, ...), an ``nn.Sequential`` or one layer. The graph
            describes ``model.eval()``: BatchNorm folds into the preceding Affine/Conv with its
            running statistics, Dropout disappears.
        dt: the time step one neurogate step stands for, in seconds (NIR time constants are in
            seconds). Written into ``graph.metadata["dt"]``.
        input_shape: one sample's shape without time and batch (default ``model.in_shape`` for
            registered models, or ``(in_features,)`` when the first layer is linear).
        integration: how ``tau`` is derived from the per-step decay: ``"exact"``
            (``tau = -dt / ln beta``, the default) or ``"euler"`` (``tau = dt / (1 - beta)``, what
            snnTorch and Norse assume when they read NIR). See :mod:`neurogate.hw.units`.

    Example:
        >>> import nir, neurogate as ng, neurogate.hw
        >>> net = ng.models.create("lif-mlp", num_classes=10, in_shape=(2, 34, 34))
        >>> graph = ng.hw.to_nir(net, dt=1e-3)
        >>> nir.write("net.nir", graph)
    """
    units.check_integration(integration)
    units._check_dt(dt)
    leaves = list(_walk(model, ""))
    if input_shape is None:
        input_shape = _default_input_shape(model, leaves)
    ctx = ExportContext(float(dt), integration, tuple(int(s) for s in input_shape))
    in_shape = ctx.shape
    for i, (name, module, folded) in enumerate(leaves):
        if ctx.readout != "none":
            raise ConfigError(f"{name}: the Readout must be the last layer to export to NIR")
        exporter = _find_exporter(name, module)
        if exporter is None:
            continue  # Dropout / Identity: nothing at inference
        exporter(ctx, name, module, folded)
    return _assemble(ctx, in_shape)


# --------------------------------------------------------------------------- walking the model
def _walk(module: nn.Module, prefix: str, folded: bool = False) -> Iterator[tuple[str, nn.Module, bool]]:
    """The leaf layers in forward order, with their qualified names (``.module`` of
    ``TimeDistributed`` dropped) and whether time is folded into the batch."""
    from ..models import TimeDistributed
    from ..models.neuron import NeuronModel

    if isinstance(module, TimeDistributed):
        yield from _walk(module.module, prefix, True)
        return
    if type(module) in EXPORTERS or any(isinstance(module, t) for t in EXPORTERS):
        yield prefix or type(module).__name__, module, folded
        return
    if isinstance(module, (NeuronModel, *SEQUENTIAL_CONTAINERS)):
        for child_name, child in module.named_children():
            yield from _walk(child, f"{prefix}.{child_name}" if prefix else child_name, folded)
        return
    if isinstance(module, (nn.Dropout, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d)) or not list(module.children()):
        yield prefix or type(module).__name__, module, folded
        return
    raise ConfigError(
        f"{prefix or type(module).__name__}: {type(module).__name__} is a container with its own forward; "
        "to_nir exports sequential models (registered models, nn.Sequential, TimeDistributed). Rebuild "
        "it as an nn.Sequential or add its class to neurogate.hw.nir_export.SEQUENTIAL_CONTAINERS"
    )


def _find_exporter(name: str, module: nn.Module) -> Exporter | None:
    if isinstance(module, (nn.Dropout, nn.Identity)):
        return None
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _fold_batchnorm
    for t in type(module).__mro__:
        if t in EXPORTERS:
            return EXPORTERS[t]
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
        raise HardwareConstraintError(
            name, "NIR node types (NIR has no max-pooling node)", type(module).__name__,
            "pool with nn.AvgPool2d or neurogate.hw.SumPool2d instead and retrain "
            f"(supported layers: {', '.join(supported_layers())})",
        )
    raise HardwareConstraintError(
        name, "NIR node types", type(module).__name__,
        f"replace it by a supported layer ({', '.join(supported_layers())}) or register an exporter "
        "with neurogate.hw.register_exporter",
    )


def _default_input_shape(model: nn.Module, leaves: list[tuple[str, nn.Module, bool]]) -> tuple[int, ...]:
    if getattr(model, "in_shape", None):
        return tuple(model.in_shape)
    for _, m, _ in leaves:
        if isinstance(m, nn.Linear) or hasattr(m, "in_features"):
            return (int(m.in_features),)
        if not isinstance(m, (nn.Dropout, nn.Identity)):
            break
    raise ConfigError("to_nir could not infer the input shape; pass input_shape=(C, H, W) (one sample, no T or B)")


def _assemble(ctx: ExportContext, in_shape: tuple[int, ...]) -> nir.NIRGraph:
    from .. import __version__

    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    order = ["input"]
    for name, node in ctx.nodes:
        key = name.replace(".", "_")
        while key in nodes or key == "output":
            key += "_"
        nodes[key] = node
        order.append(key)
    nodes["output"] = nir.Output(output_type={"output": np.array(ctx.shape)})
    order.append("output")
    metadata: dict[str, Any] = {
        "source": f"neurogate {__version__}",
        "dt": ctx.dt,
        "integration": ctx.integration,
        "threshold": "spike when v >= v_threshold (H(0) = 1)",
        "reset": ctx.resets.pop() if len(ctx.resets) == 1 else ("per-node" if ctx.resets else "none"),
        "decay_input": (bool(ctx.decay_inputs.pop()) if len(ctx.decay_inputs) == 1
                        else ("per-node" if ctx.decay_inputs else False)),
        "readout": ctx.readout,
        "layout": "time-major [T, B, ...]; node shapes exclude T and B",
    }
    try:
        return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order)), metadata=metadata)
    except (ValueError, AssertionError) as err:  # NIR's own type inference disagrees
        raise ShapeError(f"to_nir built an inconsistent graph: {err}") from err


# --------------------------------------------------------------------------- layer exporters
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _out_shape(name: str, module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """One sample's output shape of a stateless per-step layer (a dry run on zeros)."""
    p = next(module.parameters(), None)
    x = torch.zeros((1, *shape), dtype=p.dtype if p is not None else torch.float32)
    try:
        with torch.no_grad():
            return tuple(module(x).shape[1:])
    except RuntimeError as err:
        raise ShapeError(f"{name}: {type(module).__name__} cannot take one sample of shape {shape}: {err}") from None


@register_exporter(nn.Linear)
def _linear(ctx: ExportContext, name: str, m: nn.Linear, folded: bool) -> None:
    if ctx.shape != (m.in_features,):
        raise ShapeError(f"{name}: Linear expects {m.in_features} inputs per sample, but gets shape {ctx.shape} "
                         "(flatten first)")
    w = _np(m.weight)  # NIR and PyTorch agree: (out, in)
    node = nir.Linear(weight=w) if m.bias is None else nir.Affine(weight=w, bias=_np(m.bias))
    ctx.emit(name, node, (m.out_features,), foldable=True)


@register_exporter(nn.Conv1d)
@register_exporter(nn.Conv2d)
def _conv(ctx: ExportContext, name: str, m: nn.Module, folded: bool) -> None:
    two = isinstance(m, nn.Conv2d)
    if m.padding_mode != "zeros":
        raise HardwareConstraintError(name, "NIR convolution padding", m.padding_mode, "use padding_mode='zeros'")
    if len(ctx.shape) != (3 if two else 2) or ctx.shape[0] != m.in_channels:
        raise ShapeError(f"{name}: {type(m).__name__}({m.in_channels}, ...) cannot take one sample of shape {ctx.shape}")
    out = _out_shape(name, m, ctx.shape)
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=_np(m.weight).dtype)
    pad = m.padding if isinstance(m.padding, str) else (tuple(m.padding) if two else int(m.padding[0]))
    if two:
        node = nir.Conv2d(input_shape=tuple(ctx.shape[1:]), weight=_np(m.weight), stride=tuple(m.stride),
                          padding=pad, dilation=tuple(m.dilation), groups=m.groups, bias=bias)
    else:
        node = nir.Conv1d(input_shape=int(ctx.shape[1]), weight=_np(m.weight), stride=int(m.stride[0]),
                          padding=pad, dilation=int(m.dilation[0]), groups=m.groups, bias=bias)
    ctx.emit(name, node, out, foldable=True)


def _fold_batchnorm(ctx: ExportContext, name: str, bn: nn.Module, folded: bool) -> None:
    r"""Fold inference BatchNorm into the preceding Affine/Conv:
    :math:`W' = W \gamma / \sigma`, :math:`b' = (b - \mu)\gamma/\sigma + \beta`,
    :math:`\sigma = \sqrt{\mathrm{var} + \epsilon}` (per output channel, running statistics)."""
    if not ctx.foldable or not ctx.nodes:
        raise HardwareConstraintError(
            name, "NIR has no BatchNorm node; it folds only into a directly preceding Linear/Conv",
            type(bn).__name__, "put the BatchNorm right after a Linear or Conv layer",
        )
    if bn.running_mean is None:
        raise HardwareConstraintError(name, "BatchNorm folding needs running statistics",
                                      "track_running_stats=False", "train with track_running_stats=True")
    if ctx.shape[0] != bn.num_features:
        raise ShapeError(f"{name}: BatchNorm over {bn.num_features} channels follows a layer with shape {ctx.shape}")
    prev_name, prev = ctx.nodes[-1]
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
        shift = -bn.running_mean * scale + (bn.bias if bn.affine else 0)
    scale64, shift64 = _np(scale).astype(np.float64), _np(shift).astype(np.float64)
    w = prev.weight.astype(np.float64)
    b = prev.bias.astype(np.float64) if hasattr(prev, "bias") else np.zeros(w.shape[0])
    w = (w * scale64.reshape(-1, *([1] * (w.ndim - 1)))).astype(prev.weight.dtype)
    b = (b * scale64 + shift64).astype(prev.weight.dtype)
    if isinstance(prev, nir.Linear):
        node = nir.Affine(weight=w, bias=b)
    else:
        prev.weight, prev.bias = w, b
        node = prev
    node.metadata = {**prev.metadata, "folded_batchnorm": name}
    ctx.nodes[-1] = (prev_name, node)
    ctx.foldable = False


@register_exporter(nn.Flatten)
def _flatten(ctx: ExportContext, name: str, m: nn.Flatten, folded: bool) -> None:
    lead = 1 if folded else 2  # [T*B, ...] inside TimeDistributed, [T, B, ...] outside
    start = m.start_dim - lead if m.start_dim >= 0 else m.start_dim
    end = m.end_dim - lead if m.end_dim >= 0 else m.end_dim
    if start < 0 <= m.start_dim:
        raise ConfigError(f"{name}: Flatten(start_dim={m.start_dim}) would merge the batch or time axis")
    node = nir.Flatten(input_type={"input": np.array(ctx.shape)}, start_dim=start, end_dim=end)
    ctx.emit(name, node, tuple(node.output_type["output"]))


def _pair(v) -> np.ndarray:
    return np.array(v if isinstance(v, (tuple, list)) else (v, v), dtype=np.int64)


@register_exporter(nn.AvgPool2d)
def _avgpool(ctx: ExportContext, name: str, m: nn.AvgPool2d, folded: bool) -> None:
    if m.ceil_mode or m.divisor_override is not None:
        raise HardwareConstraintError(name, "NIR AvgPool2d", "ceil_mode/divisor_override",
                                      "use ceil_mode=False and no divisor_override")
    node = nir.AvgPool2d(kernel_size=_pair(m.kernel_size), stride=_pair(m.stride or m.kernel_size),
                         padding=_pair(m.padding))
    ctx.emit(name, node, _out_shape(name, m, ctx.shape))


@register_exporter(LIF)
def _lif(ctx: ExportContext, name: str, m: LIF, folded: bool) -> None:
    shape = ctx.shape
    beta = np.broadcast_to(_np(m.decay).astype(np.float64), shape).copy()
    thr = np.broadcast_to(_np(m.threshold).astype(np.float64), shape).copy()
    gain = (1.0 - beta) if m.decay_input else np.ones(shape)
    meta = {"reset": m.reset, "decay_input": bool(m.decay_input), "threshold": ">="}
    zeros = np.zeros(shape)
    if np.all(beta == 1.0):
        node: nir.NIRNode = nir.IF(r=units.if_gain_to_r(gain, ctx.dt), v_threshold=thr, v_reset=zeros,
                                   metadata=meta)
    elif np.any(beta == 1.0):
        raise HardwareConstraintError(name, "NIR LIF needs decay < 1 (an IF node needs decay = 1 everywhere)",
                                      "some decays equal 1", "use one decay per layer or decays < 1")
    else:
        node = nir.LIF(tau=units.decay_to_tau(beta, ctx.dt, ctx.integration), r=units.gain_to_r(beta, gain),
                       v_leak=zeros, v_threshold=thr, v_reset=zeros.copy(), metadata=meta)
    ctx.resets.add(m.reset)
    ctx.decay_inputs.add(bool(m.decay_input))
    ctx.emit(name, node, shape)


def _readout(ctx: ExportContext, name: str, m: nn.Module, folded: bool) -> None:
    ctx.readout = m.mode
    if m.mode == "mean":
        return  # the graph's output is the per-step current; the time average is post-processing
    beta = np.full(ctx.shape, float(m.decay))
    node = nir.LI(tau=units.decay_to_tau(beta, ctx.dt, ctx.integration), r=units.gain_to_r(beta, 1.0),
                  v_leak=np.zeros(ctx.shape), metadata={"readout": "leaky"})
    ctx.emit(name, node, ctx.shape)


@register_exporter(SumPool2d)
@register_exporter(nn.LPPool2d)
def _sumpool(ctx: ExportContext, name: str, m: nn.Module, folded: bool) -> None:
    if isinstance(m, nn.LPPool2d) and (m.norm_type != 1 or m.ceil_mode):
        raise HardwareConstraintError(name, "NIR SumPool2d (LPPool2d with norm_type=1)", f"norm_type={m.norm_type}",
                                      "use norm_type=1 (a sum) or nn.AvgPool2d")
    pad = getattr(m, "padding", 0)
    node = nir.SumPool2d(kernel_size=_pair(m.kernel_size), stride=_pair(m.stride or m.kernel_size), padding=_pair(pad))
    ctx.emit(name, node, _out_shape(name, m, ctx.shape))


@register_exporter(Scale)
def _scale(ctx: ExportContext, name: str, m: Scale, folded: bool) -> None:
    ctx.emit(name, nir.Scale(scale=np.broadcast_to(_np(m.scale), ctx.shape).copy()), ctx.shape, foldable=False)


@register_exporter(Delay)
def _delay(ctx: ExportContext, name: str, m: Delay, folded: bool) -> None:
    steps = np.broadcast_to(_np(m.steps), ctx.shape).astype(np.float64)
    ctx.emit(name, nir.Delay(delay=steps * ctx.dt), ctx.shape)


@register_exporter(LeakyIntegrator)
def _leaky_integrator(ctx: ExportContext, name: str, m: LeakyIntegrator, folded: bool) -> None:
    beta = np.broadcast_to(_np(m.decay).astype(np.float64), ctx.shape).copy()
    gain = np.broadcast_to(_np(m.gain).astype(np.float64), ctx.shape)
    node = nir.LI(tau=units.decay_to_tau(beta, ctx.dt, ctx.integration), r=units.gain_to_r(beta, gain),
                  v_leak=np.zeros(ctx.shape))
    ctx.emit(name, node, ctx.shape)


def _register_optional() -> None:
    from ..models.base import Readout

    register_exporter(Readout, _readout)
    try:
        from ..layers.delay import DelayedLinear
    except ImportError:  # the delay layer is optional
        return
    register_exporter(DelayedLinear, _delayed_linear)


def _delayed_linear(ctx: ExportContext, name: str, m: nn.Module, folded: bool) -> None:
    r"""A layer with one integer delay per synapse, :math:`y_o[t] = \sum_i W_{oi} x_i[t - d_{oi}] + b_o`,
    as a nested graph: one branch per distinct delay :math:`k`, ``Delay(k dt) -> Linear(W \odot [d = k])``
    (``Affine`` with the bias on the first branch; no ``Delay`` for :math:`k = 0`), all summed at its
    Output. NIR's ``Delay`` is per element, so per-synapse delays need the split.

    Uses ``m.export_weights() -> (W [out, in], d [out, in] int)``: the integer delays eval mode runs.
    """
    if folded:
        raise ConfigError(f"{name}: DelayedLinear mixes time steps; do not wrap it in TimeDistributed")
    if ctx.shape != (m.in_features,):
        raise ShapeError(f"{name}: DelayedLinear expects {m.in_features} inputs per sample, gets shape {ctx.shape}")
    w, d = (_np(t) for t in m.export_weights())
    bias = _np(m.bias) if m.bias is not None else None
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([m.in_features])}),
                                     "output": nir.Output(output_type={"output": np.array([m.out_features])})}
    edges: list[tuple[str, str]] = []
    for j, k in enumerate(np.unique(d)):
        wk = np.where(d == k, w, 0).astype(w.dtype)
        nodes[f"w{k}"] = nir.Affine(weight=wk, bias=bias) if (j == 0 and bias is not None) else nir.Linear(weight=wk)
        if k == 0:
            edges.append(("input", f"w{k}"))
        else:
            nodes[f"delay{k}"] = nir.Delay(delay=np.full(m.in_features, float(k) * ctx.dt))
            edges += [("input", f"delay{k}"), (f"delay{k}", f"w{k}")]
        edges.append((f"w{k}", "output"))
    sub = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False,
                       metadata={"layer": "DelayedLinear", "max_delay": int(m.max_delay)})
    sub.input_type = {"input": np.array([m.in_features])}
    sub.output_type = {"output": np.array([m.out_features])}
    ctx.emit(name, sub, (m.out_features,))


_register_optional()
