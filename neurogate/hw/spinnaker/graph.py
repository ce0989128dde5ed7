r"""Read an NIR graph as spiking populations joined by (delayed) affine projections.

Every neuron node (``LIF``, ``LI``) receives a sum of *terms*; a term is a spike source (``Input``
or ``LIF``) seen through a chain of linear nodes, which compose into one matrix
:math:`M \in \mathbb{R}^{n_{post} \times n_{pre}}` (a ``scipy.sparse`` CSR matrix) plus a bias.
Convolutions and pooling are unrolled sparsely: ``unfold`` of an image of input indices gives, for
every output position and kernel tap, the input it reads, so no dense ``[out, in]`` matrix is built
(a 16-channel 34x34 convolution would need 340 MB). A ``Delay`` node may sit directly after a spike
source (per presynaptic neuron) or directly before a neuron node (per postsynaptic neuron); its
delays (graph time units) become whole steps ``round(delay / dt)``. A linear node that feeds
``Output`` directly (neurogate's ``readout="mean"``: per-step currents ``W s_t + b``) is not put on
the machine; it is kept as a *host readout* applied to the recorded spikes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from ...errors import ConfigError, HardwareConstraintError

__all__ = ["SUPPORTED", "Target", "Term", "read_graph", "source_shape"]

SOURCES = ("Input", "LIF")
TARGETS = ("LIF", "LI")
LINEAR = ("Affine", "Linear", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "Scale")
SUPPORTED = ("Input", "Output", "Delay", *LINEAR, "LIF", "LI")


@dataclass
class Term:
    """``source`` spikes reach the target through ``matrix`` (sparse CSR, no explicit zeros) after
    ``dpre[j] + dpost[i]`` steps (``matrix=None`` while the path is still the identity)."""

    source: str
    matrix: sparse.csr_matrix | None
    dpre: np.ndarray
    dpost: np.ndarray


@dataclass
class Target:
    name: str
    node: Any
    size: int
    terms: list[Term] = field(default_factory=list)
    bias: np.ndarray | None = None


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(x).reshape(-1))


def _pair(v: Any) -> tuple[int, int]:
    a = np.broadcast_to(np.asarray(v, dtype=np.int64).reshape(-1), (2,))
    return int(a[0]), int(a[1])


def _linear_map(name: str, node: Any, shape: tuple[int, ...]) -> tuple[sparse.csr_matrix | None, np.ndarray, tuple]:
    """``(A, b, out_shape)`` with ``y = A x + b`` on flattened (C-order) vectors (``A=None``: identity)."""
    kind, n_in = type(node).__name__, int(np.prod(shape))
    if kind in ("Affine", "Linear"):
        w = np.asarray(node.weight, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != n_in:
            raise ConfigError(f"{name}: weight {w.shape} does not take an input of size {n_in}")
        b = np.asarray(node.bias, np.float64) if kind == "Affine" else np.zeros(w.shape[0])
        return sparse.csr_matrix(w), np.broadcast_to(b, (w.shape[0],)).copy(), (w.shape[0],)
    if kind == "Flatten":
        return None, np.zeros(n_in), (n_in,)
    if kind == "Scale":
        s = np.broadcast_to(np.asarray(node.scale, np.float64).reshape(-1), (n_in,))
        return _csr(sparse.diags(s)), np.zeros(n_in), shape
    if kind in ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d"):
        nd = 1 if kind == "Conv1d" else 2
        if len(shape) != nd + 1:
            spatial = getattr(node, "input_shape", None)
            if spatial is None:
                raise ConfigError(f"{name}: input shape unknown; set input_shape on the node")
            sp = _shape(spatial)
            shape = (n_in // int(np.prod(sp)), *sp)
        if kind.startswith("Conv"):
            w = np.asarray(node.weight, np.float64)
            a, out_shape = _unroll(shape, w if nd == 2 else w[:, :, None, :], node.stride, node.padding,
                                   node.dilation, int(node.groups), nd)
            bias = np.broadcast_to(np.asarray(node.bias, np.float64).reshape(-1, *([1] * nd)),
                                   out_shape).reshape(-1)
        else:  # pooling = a depthwise convolution with constant taps (count_include_pad=True)
            k, st, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
            tap = 1.0 if kind == "SumPool2d" else 1.0 / (k[0] * k[1])
            a, out_shape = _unroll(shape, np.full((shape[0], 1, *k), tap), st, p, 1, shape[0], 2)
            bias = np.zeros(int(np.prod(out_shape)))
        return a, bias, out_shape
    raise AssertionError(kind)


def _unroll(shape: tuple[int, ...], w: np.ndarray, stride: Any, padding: Any, dilation: Any, groups: int,
            nd: int) -> tuple[sparse.csr_matrix, tuple[int, ...]]:
    """The convolution of ``w`` ``[C_out, C_in / groups, kh, kw]`` on inputs of ``shape`` as a sparse
    ``[n_out, n_in]`` matrix: ``unfold`` of the image ``1 + index`` (0 = padding) lists, per output
    position, the input index under every kernel tap."""
    import torch
    import torch.nn.functional as F

    def two(v: Any) -> tuple[int, int]:
        a = np.asarray(v, dtype=np.int64).reshape(-1)
        return (1, int(a[0])) if nd == 1 else _pair(a)

    c_in, spatial = shape[0], (1, *shape[1:]) if nd == 1 else tuple(shape[1:])
    c_out, cg, kh, kw = w.shape
    pad = two(padding)
    if nd == 1:
        pad = (0, pad[1])
    index = torch.arange(1, c_in * spatial[0] * spatial[1] + 1, dtype=torch.float64)
    cols = F.unfold(index.reshape(1, c_in, *spatial), (kh, kw), dilation=two(dilation), padding=pad,
                    stride=two(stride))[0]  # [c_in * kh * kw, L]; exact: indices < 2^53
    st, dil = two(stride), two(dilation)
    out_sp = tuple((spatial[i] + 2 * pad[i] - dil[i] * (w.shape[2 + i] - 1) - 1) // st[i] + 1 for i in range(2))
    n_pos = out_sp[0] * out_sp[1]
    cols = cols.numpy().astype(np.int64).reshape(groups, cg * kh * kw, n_pos) - 1  # per group
    o = np.arange(c_out).reshape(groups, c_out // groups)
    pre = np.broadcast_to(cols[:, None], (groups, c_out // groups, cg * kh * kw, n_pos))
    val = np.broadcast_to(w.reshape(groups, c_out // groups, cg * kh * kw, 1), pre.shape)
    post = o[:, :, None, None] * n_pos + np.arange(n_pos)
    post = np.broadcast_to(post, pre.shape)
    keep = (pre >= 0) & (val != 0)
    n_in = c_in * spatial[0] * spatial[1]
    a = sparse.csr_matrix((val[keep], (post[keep], pre[keep])), shape=(c_out * n_pos, n_in))
    out_shape = (c_out, out_sp[1]) if nd == 1 else (c_out, *out_sp)
    return a, out_shape


def _csr(m: Any) -> sparse.csr_matrix:
    """CSR without stored zeros (a product can cancel; the hardware keeps only non-zero synapses)."""
    m = sparse.csr_matrix(m)
    m.eliminate_zeros()
    return m


def source_shape(node: Any, size: Callable[[], int]) -> tuple[int, ...]:
    """Activity shape of a spike source: an ``Input``'s declared shape, a ``LIF``'s parameter shape,
    or flat ``(size(),)`` where its parameters are scalars. ``size`` is called only then: a LIF's
    size is known once its inputs are read, which in a recurrent graph may be after this call."""
    if type(node).__name__ == "Input":
        return _shape(node.input_type["input"])
    return tuple(int(v) for v in np.asarray(node.tau).shape) or (size(),)


def read_graph(graph: Any, dt: float) -> tuple[dict[str, int], list[Target], list[str], list[Target]]:
    """Return ``(sources {name: size}, targets in topological order, output population names,
    host readouts)``; a host readout is a linear node feeding ``Output`` straight from spikes."""
    nodes = graph.nodes
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise ConfigError(f"edge {(a, b)} names a node that is not in the graph")
        preds[b].append(a)
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED:
            raise HardwareConstraintError(
                name, "supported NIR node types", kind,
                f"replace it by one of {', '.join(SUPPORTED)} (nested graphs: flatten them first)")

    cache: dict[str, tuple[list[Term], np.ndarray, tuple]] = {}
    sizes: dict[str, int] = {}

    def shape_of(name: str) -> tuple[int, ...]:
        return source_shape(nodes[name], lambda: target_size(name))

    def target_size(name: str) -> int:
        if name not in sizes:
            _, bias, _ = expand_inputs(name)
            sizes[name] = bias.size
        return sizes[name]

    def expand_inputs(name: str) -> tuple[list[Term], np.ndarray, tuple]:
        ps = preds[name]
        if not ps:
            raise ConfigError(f"{name}: has no incoming edge")
        parts = [expand(p) for p in ps]
        shape = parts[0][2]
        terms = [t for part in parts for t in part[0]]
        for part in parts[1:]:
            if int(np.prod(part[2])) != int(np.prod(shape)):
                raise ConfigError(f"{name}: inputs of sizes {[p[2] for p in parts]} cannot be summed")
        return terms, sum(p[1] for p in parts), shape

    def expand(name: str) -> tuple[list[Term], np.ndarray, tuple]:
        """Terms and bias of the signal leaving ``name``."""
        if name in cache:
            return cache[name]
        node, kind = nodes[name], type(nodes[name]).__name__
        if kind in SOURCES:
            shape = shape_of(name)
            n = int(np.prod(shape))
            res = ([Term(name, None, np.zeros(n, np.int64), np.zeros(n, np.int64))], np.zeros(n), shape)
        elif kind in LINEAR:
            terms, bias, shape = expand_inputs(name)
            a, b, out_shape = _linear_map(name, node, shape)
            if a is None:
                cache[name] = (terms, bias, out_shape)
                return cache[name]
            new = []
            for t in terms:
                if np.any(t.dpost != t.dpost.flat[0]):
                    raise HardwareConstraintError(
                        name, "Delay placement", "a Delay before a linear node that mixes its elements",
                        "put the Delay directly after the spike source or directly before the neuron node")
                new.append(Term(t.source, a if t.matrix is None else _csr(a @ t.matrix), t.dpre,
                                 np.full(a.shape[0], t.dpost.flat[0])))
            res = (new, a @ bias + b, out_shape)
        elif kind == "Delay":
            terms, bias, shape = expand_inputs(name)
            steps = np.asarray(node.delay, np.float64).reshape(-1) / dt
            d = np.rint(steps).astype(np.int64)
            if np.any(np.abs(steps - d) > 1e-6) or np.any(d < 0):
                raise ConfigError(f"{name}: delays {node.delay} are not non-negative multiples of dt={dt}")
            d = np.broadcast_to(d, (int(np.prod(shape)),))
            new = []
            for t in terms:
                if t.matrix is None and not t.dpost.any():
                    new.append(Term(t.source, t.matrix, t.dpre + d, t.dpost))
                else:
                    new.append(Term(t.source, t.matrix, t.dpre, t.dpost + d))
            res = (new, bias, shape)
        elif kind == "LI":
            raise HardwareConstraintError(name, "LI output used as input", "LI -> another node",
                                          "an LI node is a readout: connect it only to Output")
        else:  # Output used as input, or similar
            raise ConfigError(f"{name}: a {kind} node cannot feed another node")
        cache[name] = res
        return res

    sources = {n: int(np.prod(shape_of(n))) for n, v in nodes.items() if type(v).__name__ == "Input"}
    targets: list[Target] = []
    for name, node in nodes.items():
        if type(node).__name__ in TARGETS:
            terms, bias, _ = expand_inputs(name)
            sizes[name] = bias.size
            targets.append(Target(name, node, bias.size, terms, bias))
            if type(node).__name__ == "LIF":
                sources[name] = bias.size
    for t in targets:  # a LIF source's own size must agree with what its inputs produce
        for term in t.terms:
            if term.matrix is None:  # a source wired straight into a neuron node: one-to-one
                term.matrix = _csr(sparse.identity(sources[term.source]))
            if term.matrix.shape[1] != sources[term.source]:
                raise ConfigError(f"{t.name}: input from {term.source} has size {term.matrix.shape[1]}, "
                                  f"expected {sources[term.source]}")
    outputs, readouts = [], []
    for n, v in nodes.items():
        if type(v).__name__ != "Output":
            continue
        for p in preds[n]:
            if type(nodes[p]).__name__ in TARGETS:
                outputs.append(p)
            else:  # a linear readout of spikes (neurogate's "mean" readout): computed on the host
                terms, bias, _ = expand(p)
                for term in terms:
                    if term.matrix is None:
                        term.matrix = _csr(sparse.identity(bias.size))
                if any(t.dpre.any() or t.dpost.any() for t in terms):
                    raise HardwareConstraintError(p, "Delay inside a host readout", "Delay node",
                                                  "remove the Delay between the last neurons and Output")
                readouts.append(Target(p, nodes[p], bias.size, terms, bias))
    return sources, _topological(targets), outputs, readouts


def _topological(targets: list[Target]) -> list[Target]:
    order, done, names = [], set(), {t.name for t in targets}
    pending = list(targets)
    while pending:
        progress = False
        for t in list(pending):
            if all(term.source in done or term.source not in names or term.source == t.name
                   for term in t.terms):
                order.append(t)
                done.add(t.name)
                pending.remove(t)
                progress = True
        if not progress:  # recurrent loop: keep the given order for the rest
            order.extend(pending)
            break
    return order
