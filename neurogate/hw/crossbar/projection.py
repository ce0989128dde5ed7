r"""How a layer's synapses sit on crossbar rows and columns: weight-stationary projections.

A *projection* carries one source's activity to one layer through a weight matrix
:math:`W \in \mathbb{R}^{R \times C}` (rows = inputs of one multiply, columns = outputs) that is
programmed once onto tiles and read many times:

* ``"matrix"``: a dense layer. Each time step of each sample is one read of
  :math:`R = n_{in}` inputs; the :math:`C = n_{out}` columns are the layer's neurons.
* ``"conv"``: a 2-D convolution mapped the way analog accelerators (ISAAC, aihwkit's
  ``AnalogConv2d``) do: the kernel :math:`K \in \mathbb{R}^{C_{out} \times C_{in} \times k_h
  \times k_w}` is programmed once as :math:`W = K.\mathrm{reshape}(C_{out}, -1)^\top`
  (:math:`R = C_{in} k_h k_w` rows, :math:`C = C_{out}` columns) and every output position reads
  its input patch (``im2col``): :math:`T \cdot B \cdot H' W'` reads per layer. The unrolled
  sparse matrices of the same convolutions need thousands of mostly empty tiles (neurogate's
  ``lif-convnet`` on 256 x 256 tiles: 4468 unrolled, 11 weight-stationary, one per convolution).

Before the tiles, ``pre`` lists digital pooling stages applied to the source's activity (sum or
average pooling of spikes is an adder tree in the periphery; average pooling counts padding, as
NIR's ``AvgPool2d`` does). ``Flatten`` is free: activities are kept C-order flattened throughout.

A chain that does not fit "pooling* -> one Affine/Linear/Conv2d (groups 1) -> Flatten*" (two
weighted nodes in a row, grouped convolutions, ``Scale``) falls back to the composed sparse
matrix of :func:`neurogate.hw.spinnaker.graph.read_graph` as a ``"matrix"`` projection whose
all-zero tile blocks are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ConfigError

__all__ = ["KINDS", "Projection", "structured_projections"]

KINDS = ("matrix", "conv")
POOLS = ("AvgPool2d", "SumPool2d")
WEIGHTED = ("Affine", "Linear", "Conv2d")


def _ints(v: Any, n: int = 2) -> list[int]:
    a = np.broadcast_to(np.asarray(v, dtype=np.int64).reshape(-1), (n,))
    return [int(x) for x in a]


@dataclass
class Projection:
    """Weights ``[n_rows, n_cols]`` from ``source`` to ``layer`` (see the module docstring).

    ``pre``: pooling stages ``{"mode": "avg"|"sum", "in_shape": [C, H, W], "kernel": [kh, kw],
    "stride": [..], "padding": [..]}``; ``conv``: ``{"in_shape": [C, H, W], "kernel": [kh, kw],
    "stride", "padding", "dilation", "out_shape": [C_out, H', W']}`` for ``kind="conv"``.
    """

    id: int
    layer: str
    source: str
    kind: str
    n_rows: int
    n_cols: int
    pre: list[dict[str, Any]] = field(default_factory=list)
    conv: dict[str, Any] | None = None

    @property
    def n_out(self) -> int:
        """Neurons of ``layer`` this projection drives (``C_out H' W'`` for a convolution)."""
        return int(np.prod(self.conv["out_shape"])) if self.kind == "conv" else self.n_cols

    @property
    def n_in(self) -> int:
        """Size of the source's activity this projection reads."""
        if self.pre:
            return int(np.prod(self.pre[0]["in_shape"]))
        return int(np.prod(self.conv["in_shape"])) if self.kind == "conv" else self.n_rows

    @property
    def reads_per_step(self) -> int:
        """Crossbar reads per sample and time step (output positions of a convolution, else 1)."""
        return int(np.prod(self.conv["out_shape"][1:])) if self.kind == "conv" else 1

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "layer": self.layer, "source": self.source, "kind": self.kind,
                "n_rows": self.n_rows, "n_cols": self.n_cols, "pre": self.pre, "conv": self.conv}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Projection:
        return cls(int(d["id"]), d["layer"], d["source"], d["kind"], int(d["n_rows"]), int(d["n_cols"]),
                   list(d.get("pre") or []), d.get("conv"))

    def validate(self, n_source: int, n_layer: int) -> None:
        """Shapes agree with the source and layer sizes (ConfigError naming the projection)."""
        where = f"projection {self.id} ({self.source} -> {self.layer})"
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "conv" and not self.conv:
            raise ConfigError(f"{where}: a conv projection needs its geometry ('conv')")
        if self.n_in != n_source or self.n_out != n_layer:
            raise ConfigError(f"{where}: reads {self.n_in} of {n_source} source values and drives "
                              f"{self.n_out} of {n_layer} neurons")

    # ------------------------------------------------------------------ simulation
    def source_input(self, x: np.ndarray) -> np.ndarray:
        """Source activity ``[N, n_in]`` after the digital pooling: ``[N, n_rows]`` for a dense
        projection, the feature maps ``[N, C, H, W]`` a convolution reads."""
        if not self.pre and self.kind == "matrix":
            return x
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(np.ascontiguousarray(x))
        for p in self.pre:
            t = F.avg_pool2d(t.reshape(-1, *p["in_shape"]), p["kernel"], p["stride"], p["padding"],
                             count_include_pad=True)
            if p["mode"] == "sum":
                t = t * float(np.prod(p["kernel"]))
        shape = (self.n_rows,) if self.kind == "matrix" else tuple(self.conv["in_shape"])
        return t.reshape(-1, *shape).numpy()

    def _channels(self, rows: tuple[int, int]) -> tuple[int, int]:
        taps = int(np.prod(self.conv["kernel"]))
        return rows[0] // taps, -(-rows[1] // taps)

    def tile_input(self, inp: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
        """What a tile holding weight rows ``rows`` reads: those inputs, or for a convolution the
        input channels its kernel rows (channel-major, then taps) touch."""
        if self.kind == "matrix":
            return inp[:, rows[0]:rows[1]]
        c0, c1 = self._channels(rows)
        return inp[:, c0:c1]

    def product(self, v: np.ndarray, g: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
        r"""Column currents :math:`V G` of one tile for every read: ``[reads, cols]``.

        A dense tile is one GEMM. A convolution tile is ``conv2d`` of its input channels with the
        tile's rows as the kernel (zeros for the taps of those channels that other tiles hold):
        the same sums as the patch-by-patch reads, without building the patch matrix."""
        if self.kind == "matrix":
            return v @ g
        import torch
        import torch.nn.functional as F

        c = self.conv
        taps = int(np.prod(c["kernel"]))
        c0, c1 = self._channels(rows)
        k = np.zeros(((c1 - c0) * taps, g.shape[1]))
        k[rows[0] - c0 * taps:rows[1] - c0 * taps] = g
        kernel = torch.from_numpy(np.ascontiguousarray(k.T)).reshape(g.shape[1], c1 - c0, *c["kernel"])
        out = F.conv2d(torch.from_numpy(np.ascontiguousarray(v)), kernel, stride=c["stride"],
                       padding=c["padding"], dilation=c["dilation"])
        return out.permute(0, 2, 3, 1).reshape(-1, g.shape[1]).numpy()

    def to_layer(self, y: np.ndarray, n: int) -> np.ndarray:
        """Column outputs ``[n * reads_per_step, n_cols]`` -> layer currents ``[n, n_out]`` (C-order)."""
        if self.kind == "matrix":
            return y
        return y.reshape(n, self.reads_per_step, self.n_cols).transpose(0, 2, 1).reshape(n, self.n_out)


def structured_projections(graph: Any, target: str, source_shape: Any) -> list[tuple[str, dict, Any, Any]] | None:
    """For one target node (a neuron node, or a readout's linear node itself), the weight-stationary
    form of each incoming chain: ``[(source, spec, weight [R, C], description)]``, where ``spec``
    has ``kind``, ``pre`` and ``conv``; ``None`` if any chain does not fit (the caller unrolls).

    ``source_shape(name)`` gives a source's activity shape (``(C, H, W)`` for feature maps).
    """
    nodes = graph.nodes
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    kind = type(nodes[target]).__name__
    starts = [target] if kind in WEIGHTED else preds[target]
    out = []
    for start in starts:
        chain, cur = [], start
        while type(nodes[cur]).__name__ not in ("Input", "LIF"):
            k = type(nodes[cur]).__name__
            if k not in (*POOLS, *WEIGHTED, "Flatten") or len(preds[cur]) != 1:
                return None
            chain.append(cur)
            cur = preds[cur][0]
        chain.reverse()
        weighted = [n for n in chain if type(nodes[n]).__name__ in WEIGHTED]
        if len(weighted) != 1:
            return None
        w_at = chain.index(weighted[0])
        if any(type(nodes[n]).__name__ in WEIGHTED + POOLS for n in chain[w_at + 1:]):
            return None
        shape = tuple(int(v) for v in source_shape(cur))
        pre = []
        for name in chain[:w_at]:
            node = nodes[name]
            if type(node).__name__ == "Flatten":
                shape = (int(np.prod(shape)),)
                continue
            if len(shape) != 3:
                return None
            k, s, p = _ints(node.kernel_size), _ints(node.stride), _ints(node.padding)
            pre.append({"mode": "avg" if type(node).__name__ == "AvgPool2d" else "sum", "in_shape": list(shape),
                        "kernel": k, "stride": s, "padding": p})
            shape = (shape[0], *[(shape[1 + i] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(2)])
        node = nodes[weighted[0]]
        w = np.asarray(node.weight, np.float64)
        if type(node).__name__ == "Conv2d":
            if int(node.groups) != 1 or len(shape) != 3 or w.ndim != 4 or w.shape[1] != shape[0]:
                return None
            k, s, p, d = _ints(w.shape[2:]), _ints(node.stride), _ints(node.padding), _ints(node.dilation)
            out_hw = [(shape[1 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2)]
            conv = {"in_shape": list(shape), "kernel": k, "stride": s, "padding": p, "dilation": d,
                    "out_shape": [int(w.shape[0]), *out_hw]}
            spec = {"kind": "conv", "pre": pre, "conv": conv}
            out.append((cur, spec, w.reshape(w.shape[0], -1).T, weighted[0]))
        else:
            if w.ndim != 2 or w.shape[1] != int(np.prod(shape)):
                return None
            out.append((cur, {"kind": "matrix", "pre": pre, "conv": None}, w.T, weighted[0]))
    return out
