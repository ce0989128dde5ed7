"""Small NIR networks for the SpiNNaker tests, their float reference and a packet follower."""

from __future__ import annotations

import nir
import numpy as np

__all__ = ["DT", "deliver", "lif", "mlp", "reference"]

DT = 1e-3


def lif(n: int, beta: float = 0.9, threshold: float = 1.0, decay_input: bool = False) -> nir.LIF:
    """A neurogate-style LIF (``h = beta v + x``) written as an NIR LIF (exact exponential)."""
    r = 1.0 if decay_input else 1 / (1 - beta)
    return nir.LIF(tau=np.full(n, -DT / np.log(beta)), r=np.full(n, r), v_leak=np.zeros(n),
                   v_threshold=np.full(n, threshold))


def mlp(w1, w2, b1=None, reset="subtract", beta=0.9, delay=None) -> nir.NIRGraph:
    """``Input -> [Delay ->] fc1 -> lif1 -> fc2 -> lif2 -> Output``; ``delay`` in steps per input."""
    n_in, n_h, n_o = w1.shape[1], w1.shape[0], w2.shape[0]
    nodes = {"input": nir.Input(np.array([n_in])),
             "fc1": nir.Affine(w1, np.zeros(n_h) if b1 is None else b1), "lif1": lif(n_h, beta),
             "fc2": nir.Linear(w2), "lif2": lif(n_o, beta), "output": nir.Output(np.array([n_o]))}
    edges = [("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    if delay is None:
        edges.append(("input", "fc1"))
    else:
        nodes["delay"] = nir.Delay(np.asarray(delay, dtype=float) * DT)
        edges += [("input", "delay"), ("delay", "fc1")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT, "reset": reset})


def reference(x, w1, w2, b1=0.0, reset="subtract", beta=0.9, delay1=None):
    """The float, zero-delay neurogate model (``h = beta v + W s + b``, spike ``h >= 1``)."""
    T, B, _ = x.shape
    v1, v2 = np.zeros((B, w1.shape[0])), np.zeros((B, w2.shape[0]))
    s1_all, s2_all = np.zeros((T, B, w1.shape[0])), np.zeros((T, B, w2.shape[0]))
    for t in range(T):
        if delay1 is None:
            inp = x[t] @ w1.T
        else:  # per-input delays: input j seen delay1[j] steps late
            inp = sum(x[t - d, :, j:j + 1] * w1[:, j] for j, d in enumerate(delay1) if t - d >= 0)
        h1 = beta * v1 + inp + b1
        s1 = h1 >= 1
        v1 = h1 - s1 if reset == "subtract" else h1 * ~s1
        h2 = beta * v2 + s1 @ w2.T
        s2 = h2 >= 1
        v2 = h2 - s2 if reset == "subtract" else h2 * ~s2
        s1_all[t], s2_all[t] = s1, s2
    return s1_all, s2_all


def deliver(tables, src_chip, key):
    """Follow a multicast packet through the router tables (default route: straight on)."""
    step = {0: (1, 0), 2: (0, 1), 3: (-1, 0), 5: (0, -1)}
    delivered, frontier = set(), [(src_chip, None)]
    while frontier:
        chip, came = frontier.pop()
        entry = [e for e in tables.get(f"{chip[0]},{chip[1]}", []) if key & e[1] == e[0]]
        if entry:
            route = entry[0][2]
            links = [b for b in step if route >> b & 1]
            delivered |= {(chip, c) for c in range(32) if route >> (6 + c) & 1}
        else:
            assert came is not None, f"no entry for key {key:#x} on its source chip"
            links = [came]
        frontier += [((chip[0] + step[b][0], chip[1] + step[b][1]), b) for b in links]
    return delivered
