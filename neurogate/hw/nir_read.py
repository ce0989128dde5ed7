"""Reading a NIR graph for :func:`~neurogate.hw.nir_import.from_nir`: the file, its metadata, and
the ``Input -> ... -> Output`` chain with the shapes its nodes declare."""

from __future__ import annotations

import pathlib
from collections.abc import Collection
from typing import Any

import nir
import numpy as np

from ..errors import ConfigError, ShapeError

__all__ = ["check_input_shape", "drop_sample_batch", "node_chain", "plain_metadata", "read_file", "shape_of"]


def read_file(path: str | pathlib.Path, importable: Collection[type]) -> nir.NIRGraph:
    """The graph in a ``.nir`` file; a node type NIR does not know is refused by name first, with
    the ``importable`` node types listed."""
    import h5py

    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"NIR file {str(path)!r} does not exist")
    known = set(nir.ir.__all__) if hasattr(nir.ir, "__all__") else set()
    try:
        with h5py.File(path, "r") as f:
            _check_types(f["node"], "graph", known, importable)
    except OSError as err:
        raise ConfigError(f"{path}: not a NIR (HDF5) file: {err}") from None
    try:
        return nir.read(path)
    except (ValueError, AssertionError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: NIR could not read the graph: {err!r}") from None


def _check_types(group, name: str, known: set[str], importable: Collection[type]) -> None:
    t = group["type"][()] if "type" in group else b"?"
    t = t.decode() if isinstance(t, bytes) else str(t)
    if known and t not in known:
        raise ConfigError(f"NIR node {name!r} has unknown type {t!r} (not a NIR {nir.version} node type); "
                          f"neurogate imports: {', '.join(sorted(c.__name__ for c in importable))}")
    if t == "NIRGraph" and "nodes" in group:
        for child, sub in group["nodes"].items():
            _check_types(sub, child, known, importable)


def plain_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata read from HDF5 holds numpy scalars and bytes; make them Python values."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, dict):
            v = plain_metadata(v)
        out[k] = v
    return out


def node_chain(graph: nir.NIRGraph) -> list[str]:
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


def drop_sample_batch(graph: nir.NIRGraph, chain: list[str], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Norse's exporter writes the sample's batch of 1 into the Input shape: ``(1, 6)`` for 6 inputs."""
    if len(chain) < 3 or len(shape) < 2 or shape[0] != 1:
        return shape
    t = (graph.nodes[chain[1]].input_type or {}).get("input")
    if t is not None and np.size(t) and tuple(int(s) for s in np.asarray(t).reshape(-1)) == shape[1:]:
        return shape[1:]
    return shape


def shape_of(t, name: str) -> tuple[int, ...]:
    """The shape a node declares (``t``, its input or output type) as ints; ShapeError if none."""
    if t is None or not np.size(t):
        raise ShapeError(f"NIR node {name!r} has no shape; give the Input node a shape")
    return tuple(int(s) for s in np.asarray(t).reshape(-1))


def check_input_shape(name: str, node: nir.NIRNode, shape: tuple[int, ...], prev: str) -> None:
    """ShapeError where ``node`` declares an input shape other than ``shape``, what ``prev`` gives."""
    t = (node.input_type or {}).get("input")
    if t is None or not np.size(t) or isinstance(node, (nir.LIF, nir.IF, nir.LI, nir.Scale, nir.Delay)):
        return  # neuron parameters may be scalars that broadcast; checked by the importer
    expected = tuple(int(s) for s in np.asarray(t).reshape(-1))
    if expected != shape:
        raise ShapeError(f"NIR node {name!r} ({type(node).__name__}) expects input shape {expected}, but "
                         f"{prev!r} gives {shape}")
