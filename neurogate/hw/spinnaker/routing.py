r"""Placement, multicast routing keys, router tables and the resource report.

**Placement.** Core slices are placed in order (input slices, then each population's slices, each
followed by its delay-extension cores) onto application cores ``monitor_cores ..
cores_per_chip - 1`` of chips numbered row by row over a ``chip_grid`` mesh per board (boards
stacked along y).

**Keys.** A spike is the 32-bit key ``source_id << 16 | slice << 8 | neuron`` with mask
``0xFFFFFF00`` (everything but the 8-bit neuron field). Every population is a source; every
delay-extension stage ``k`` of a population is a further source (its own ``source_id``).

**Router tables.** Packets follow dimension-order (x then y) routes over the mesh; the tree of
one source slice needs an entry on its source chip, on every chip that delivers to a local core,
and on every chip where the packet turns or forks; straight-through chips use default routing
(a simplification of SpiNNaker's six-link triangular mesh: only the E, N, W, S links are used).
A route is the integer ``links | cores << 6`` with links E=0, N=2, W=3, S=5 (SpiNNaker numbering).

**Memory** (bytes, estimate): DTCM of a neuron core = ``n (48 + 8)`` (IF_curr_exp parameters and
state, two synaptic inputs) + ``n * 2 * max_core_delay * 2`` (16-bit ring buffers, 2 receptor
types) + ``2 (max_row_length + 3) 4`` (DMA row buffers) + 8192 (stack, heap, runtime: an
assumption); SDRAM holds the synaptic matrix ``4 (3 + row length)`` per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import HardwareConstraintError
from .machine import Machine

__all__ = ["KEY_MASK", "Vertex", "place_and_route", "slice_key"]

KEY_MASK = 0xFFFFFF00
LINK = {"E": 0, "N": 2, "W": 3, "S": 5}
RUNTIME_BYTES = 8192


@dataclass
class Vertex:
    """One core's worth of work: a population slice, an input slice or a delay extension."""

    kind: str  # "input" | "neurons" | "delay"
    population: str
    slice_index: int
    size: int
    chip: tuple[int, int] = (0, 0)
    core: int = 0


def slice_key(source_id: int, slice_index: int) -> int:
    return (source_id << 16) | (slice_index << 8)


def place_and_route(
    machine: Machine,
    populations: list[tuple[str, str, list[int]]],
    stages: dict[str, int],
    fanout: dict[tuple[str, int, int], set[tuple[str, int]]],
    rows_bytes: dict[tuple[str, int], int],
) -> dict[str, Any]:
    """Place and route; return the JSON-ready ``placement``, ``keys``, ``routing``, ``resources``.

    ``populations``: ``(name, kind, slice sizes)`` in placement order; ``stages[name]``: the number
    of delay-extension stages it needs; ``fanout[(pre, pre_slice, stage)]``: the post slices its
    spikes reach; ``rows_bytes[(post, post_slice)]``: synaptic-matrix bytes of that core.
    """
    app = list(range(machine.monitor_cores, machine.cores_per_chip))
    width = machine.chip_grid[0]
    vertices: list[Vertex] = []
    for name, kind, sizes in populations:
        vertices += [Vertex("input" if kind == "input" else "neurons", name, i, n) for i, n in enumerate(sizes)]
        if stages.get(name, 0):
            vertices += [Vertex("delay", name, i, n) for i, n in enumerate(sizes)]
    total = machine.n_chips * len(app)
    if len(vertices) > total:
        raise HardwareConstraintError(
            "network", f"application cores on {machine.name} ({total})", len(vertices),
            "use more boards: dataclasses.replace(machine, boards=k), or fewer delay stages")
    for i, v in enumerate(vertices):
        c = i // len(app)
        v.chip, v.core = (c % width, c // width), app[i % len(app)]

    where = {(v.kind, v.population, v.slice_index): v for v in vertices}
    source_ids: dict[str, Any] = {}
    next_id = 0
    for name, _, sizes in populations:
        if len(sizes) > 256:
            raise HardwareConstraintError(name, "slices per population (8-bit slice field)", len(sizes),
                                          "use more neurons per core or split the population")
        source_ids[name] = {"id": next_id, "stages": {}}
        next_id += 1
        for k in range(1, stages.get(name, 0) + 1):
            source_ids[name]["stages"][str(k)] = next_id
            next_id += 1

    trees: dict[int, tuple[tuple[int, int], list[Vertex]]] = {}  # key -> (source chip, destinations)
    for (pre, s, k), posts in sorted(fanout.items()):
        own = where.get(("input", pre, s)) or where[("neurons", pre, s)]
        dests = [where[("neurons", p, ps)] for p, ps in sorted(posts)]
        if k == 0:
            trees.setdefault(slice_key(source_ids[pre]["id"], s), (own.chip, []))[1].extend(dests)
        else:  # the slice feeds its delay extension, which re-sends under the stage's key
            ext = where[("delay", pre, s)]
            trees.setdefault(slice_key(source_ids[pre]["stages"][str(k)], s), (ext.chip, []))[1].extend(dests)
            trees.setdefault(slice_key(source_ids[pre]["id"], s), (own.chip, []))[1].append(ext)
    tables: dict[tuple[int, int], list[list[int]]] = {}
    for key, (chip, dests) in sorted(trees.items()):
        _route_tree(chip, list({(v.chip, v.core): v for v in dests}.values()), key, tables)
    for chip, entries in tables.items():
        entries.sort()
        if len(entries) > machine.router_entries:
            raise HardwareConstraintError(
                f"chip {chip}", f"router entries per chip ({machine.router_entries})", len(entries),
                "use more neurons per core (fewer slices), or more boards to spread the placement")

    cores = []
    for v in vertices:
        if v.kind == "neurons":
            dtcm = (v.size * 56 + v.size * 2 * machine.max_core_delay * 2
                    + 2 * (machine.max_row_length + 3) * 4 + RUNTIME_BYTES)
            sdram = rows_bytes.get((v.population, v.slice_index), 0)
        else:
            dtcm, sdram = RUNTIME_BYTES + 4 * ((v.size * max(1, stages.get(v.population, 0)) + 31) // 32), 0
        if dtcm > machine.dtcm_bytes:
            raise HardwareConstraintError(v.population, f"DTCM per core ({machine.dtcm_bytes} B)", dtcm,
                                          "use fewer neurons per core (neurons_per_core=...)")
        cores.append({"kind": v.kind, "population": v.population, "slice": v.slice_index,
                      "neurons": v.size, "chip": list(v.chip), "core": v.core,
                      "dtcm_bytes": dtcm, "sdram_bytes": sdram})
    chips = sorted({tuple(c["chip"]) for c in cores})
    return {
        "placement": cores,
        "keys": source_ids,
        "routing": {f"{x},{y}": tables.get((x, y), []) for x, y in chips},
        "resources": {
            "chips": len(chips), "cores": len(cores),
            "router_entries_max": max((len(t) for t in tables.values()), default=0),
            "router_entries_total": sum(len(t) for t in tables.values()),
            "dtcm_bytes_max": max(c["dtcm_bytes"] for c in cores),
            "sdram_bytes_total": sum(c["sdram_bytes"] for c in cores),
        },
    }


def _route_tree(src: tuple[int, int], dests: list[Vertex], key: int,
                tables: dict[tuple[int, int], list[list[int]]]) -> None:
    """Add the entries of one source's multicast tree (x-then-y routes) to ``tables``."""
    out: dict[tuple[int, int], set[int]] = {}
    cores: dict[tuple[int, int], set[int]] = {}
    incoming: dict[tuple[int, int], int] = {}
    for d in dests:
        x, y = src
        out.setdefault(src, set())
        while (x, y) != d.chip:
            if x != d.chip[0]:
                step, link = (1 if d.chip[0] > x else -1, 0), ("E" if d.chip[0] > x else "W")
            else:
                step, link = (0, 1 if d.chip[1] > y else -1), ("N" if d.chip[1] > y else "S")
            out.setdefault((x, y), set()).add(LINK[link])
            x, y = x + step[0], y + step[1]
            incoming[(x, y)] = LINK[link]
        cores.setdefault(d.chip, set()).add(d.core)
    for chip in set(out) | set(cores):
        links, local = out.get(chip, set()), cores.get(chip, set())
        straight = chip in incoming and not local and links == {incoming[chip]}
        if chip == src or not straight:
            route = sum(1 << b for b in links) | sum(1 << (6 + c) for c in local)
            tables.setdefault(chip, []).append([key, KEY_MASK, route])
