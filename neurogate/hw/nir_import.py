"""NIR graph -> runnable neurogate module (:func:`from_nir`); conventions in :mod:`neurogate.hw.nir`.

The graph must be a chain ``Input -> ... -> Output`` (what neurogate, snnTorch and Norse write for
feed-forward networks); a branch, a merge or a recurrent edge is refused with the node's name.
Every node becomes a time-major module, so the result maps ``[T, B, *input]`` to
``[T, B, *output]`` (or to logits ``[B, K]`` when the graph carries a neurogate readout).

Here the chain is assembled; :mod:`.nir_read` reads the file, the metadata and the chain's shapes,
:mod:`.nir_importers` turns each node into modules (extend it with :func:`register_importer`), and
:mod:`.nir_modules` holds the modules of the NIR nodes that have no neurogate layer.
"""

from __future__ import annotations

import pathlib
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from . import units
from .nir_importers import (
    IMPORTERS,
    ImportContext,
    Importer,  # noqa: F401  (kept importable from here)
    register_importer,
)
from .nir_modules import Delay, LeakyIntegrator, Scale, SumPool2d
from .nir_read import (
    check_input_shape,
    drop_sample_batch,
    node_chain,
    plain_metadata,
    read_file,
    shape_of,
)

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
    is_path = isinstance(graph_or_path, (str, pathlib.Path))
    graph = read_file(graph_or_path, IMPORTERS) if is_path else graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise ConfigError(f"from_nir expects a nir.NIRGraph or a path; got {type(graph).__name__}")
    meta = plain_metadata(dict(graph.metadata or {}))
    if dt is None:
        if "dt" not in meta:
            raise ConfigError("the NIR graph carries no 'dt' in its metadata (NIR is continuous-time); pass "
                              "from_nir(graph, dt=...) in seconds (snnTorch exports assume dt = 1e-4)")
        dt = float(meta["dt"])
    integration = units.check_integration(integration or str(meta.get("integration", "exact")))
    units._check_dt(dt)
    chain = node_chain(graph)
    shape = shape_of(graph.nodes[chain[0]].output_type.get("output"), chain[0])
    shape = drop_sample_batch(graph, chain, shape)
    in_shape = shape
    ctx = ImportContext(float(dt), integration, shape, meta)
    layers: list[tuple[str, nn.Module]] = []
    body = chain[1:-1]
    for i, name in enumerate(body):
        node = graph.nodes[name]
        ctx.last = i == len(body) - 1
        check_input_shape(name, node, ctx.shape, layers[-1][0] if layers else chain[0])
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
