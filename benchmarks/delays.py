"""Learnable delays at SHD scale on CPU: ``DelayedLinear`` against the DCLS package and the dense
conv1d formulation, training (forward + backward) and integer-delay inference.

Usage::

    python benchmarks/delays.py                        # T=100, B=64, 140 -> 256, K=25 (about 1-2 min)
    python benchmarks/delays.py --repeats 15 --omp-wait passive
    python benchmarks/delays.py --density 0.03 --dense-density 0.3
    python benchmarks/delays.py --sweep 0.02,0.05,0.1,0.2,0.35,0.5   # where the 10x target holds

What is measured, float32, ``--threads`` threads (torch and numba), medians over ``--repeats``
runs after 2 warm-up runs, all variants interleaved (run r of each before run r + 1 of any) so
that load from other processes falls on all alike; the load average is printed before and after.
Ratios are given of the medians and of the minima: on a shared machine bursts of load inflate
medians unevenly (the sparse engine's several short parallel regions suffer more than one long
GEMM), and the minima estimate the unloaded cost.

The input. SHD (700 cochlea channels, binned to 140 channels and 10 ms steps as in the paper) is
a sparse spike raster; neurogate's engine runs event-driven on such input, so its cost depends on
the input's density (non-zeros / ``T B I``), while DCLS's and the dense conv1d's do not. The SHD
files are not read here (nothing downloads); the input is a random raster of ``--density``
(default 5 %: an assumption, not a measurement of SHD, which also has silent channels and silent
stretches that random spikes lack), and the neurogate variants run again on ``--dense-density``
(default 20 %) to show how the cost grows with density. Values are spike counts 1..3 (binning
sums spikes), which cost the same as binary spikes.

* train, in two settings: ``first`` (the input does not require grad: a first layer on data, as
  in SHD training) and ``hidden`` (the input requires grad: the input gradient is computed too).
  ``y = layer(x)``, ``y.backward(g)`` with a fixed random ``g``, parameter gradients zeroed in
  between. Every variant, DCLS included, is measured in both settings.
  - ``DCLS Dcls1d gauss``: the DCLS 0.1.1 package's module the paper trains with
    (``Dcls1d(in, out, kernel_count=1, dilated_kernel_size=K, version="gauss")``, input permuted to
    ``[B, C, T]`` and left-padded with ``K - 1`` steps); its cost does not depend on sigma.
  - ``dense conv1d``: neurogate's reference (the dense ``[O, I, K]`` Gaussian kernel and
    ``conv1d``), at sigma = 0.5.
  - ``neurogate, sigma 12.27``: the start of the paper's schedule (``backend=None`` runs dense).
  - ``neurogate, sigma 0.5``: the schedule's floor (``backend=None`` runs 6 sparse taps, event-driven
    below :func:`neurogate.cpu.delay.event_max_density`).
* infer: eval mode under ``torch.no_grad()``: one rounded integer delay per synapse, the sparse
  engine (one tap) against the dense one-hot kernel and ``conv1d`` (``backend="reference"``).

``--omp-wait passive`` sets ``OMP_WAIT_POLICY=PASSIVE`` before torch is imported. torch (its own
libgomp) and numba (the system libgomp) run two OpenMP runtimes whose idle threads spin for a
while after each parallel region; on 2 cores one runtime's spinning threads can slow the other's
next region. On this machine, when quiet, the two settings measured the same within noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--B", type=int, default=64)
    p.add_argument("--inp", type=int, default=140)
    p.add_argument("--out", type=int, default=256)
    p.add_argument("--K", type=int, default=25)
    p.add_argument("--density", type=float, default=0.05, help="input non-zeros / (T B inp)")
    p.add_argument("--dense-density", type=float, default=0.2, help="a denser input for the neurogate variants")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--omp-wait", choices=("default", "passive"), default="default")
    p.add_argument("--skip", default="", help="comma-separated variant keys to skip (e.g. dcls)")
    p.add_argument(
        "--sweep", default="",
        help="comma-separated input densities (e.g. 0.02,0.05,0.1,0.2,0.35,0.5): first-layer training only, "
        "neurogate at sigma 0.5 on each density against Dcls1d and the dense conv1d",
    )
    return p.parse_args()


ARGS = _args()
if ARGS.omp_wait == "passive":
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import numba
import torch
import torch.nn.functional as F

from neurogate.cpu.delay import event_max_density
from neurogate.functional import delay as D
from neurogate.layers.delay import DelayedLinear

SETTINGS = ("first", "hidden")  # input without grad (a first layer on data), with grad (a hidden layer)
TARGETS = {  # (numerator, denominator): the ratio to reach
    **{(f"dcls/{s}", f"ng_floor/{s}"): 10.0 for s in SETTINGS},
    **{(f"dense/{s}", f"ng_floor/{s}"): 2.0 for s in SETTINGS},
    ("inf_dense", "inf_ng"): 3.0,
}


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _spikes(T: int, B: int, I: int, density: float) -> torch.Tensor:
    """A random raster of spike counts 1..3 with ``density`` non-zeros."""
    return (torch.rand(T, B, I) < density).float() * torch.randint(1, 4, (T, B, I)).float()


def _layers(a: argparse.Namespace):
    """The layers compared, with equal weights and positions, and the gradient fed to them."""
    torch.manual_seed(0)
    T, B, I, O, K = a.T, a.B, a.inp, a.out, a.K
    g = torch.randn(T, B, O)
    layer = DelayedLinear(I, O, K)  # sigma 12.27: the schedule's start
    floor_layer = DelayedLinear(I, O, K)  # sigma 0.5: the schedule's floor
    dense_layer = DelayedLinear(I, O, K, backend="reference")  # sigma 0.5, dense conv1d
    for other in (floor_layer, dense_layer):
        other.load_state_dict(layer.state_dict())
        other.sigma_schedule(1, 1)
    params = [p for m in (layer, floor_layer, dense_layer) for p in m.parameters()]

    def train(fn, x):
        def run():
            x.grad = None
            for p in params:
                p.grad = None
            fn(x).backward(g)

        return run

    modules = {}
    if "dcls" not in a.skip.split(","):
        from DCLS.construct.modules import Dcls1d

        dcls = Dcls1d(I, O, kernel_count=1, dilated_kernel_size=K, version="gauss", bias=False)
        with torch.no_grad():
            dcls.weight.copy_(layer.weight.unsqueeze(-1))
            dcls.P.copy_(layer.P.view(1, O, I, 1))
            dcls.SIG.fill_(D.SIG_FLOOR)
        params += list(dcls.parameters())
        modules["dcls"] = ("DCLS Dcls1d gauss", lambda x: dcls(F.pad(x.permute(1, 2, 0), (K - 1, 0))).permute(2, 0, 1))
    modules["dense"] = ("dense conv1d, sigma 0.5", dense_layer)
    modules["ng_big"] = ("neurogate, sigma 12.27", layer)
    modules["ng_floor"] = ("neurogate, sigma 0.5", floor_layer)
    return layer, modules, train


def _variants(a: argparse.Namespace) -> dict:
    layer, modules, train = _layers(a)
    T, B, I, K = a.T, a.B, a.inp, a.K
    xs = {"": _spikes(T, B, I, a.density), "+": _spikes(T, B, I, a.dense_density)}
    floor_layer = modules["ng_floor"][1]
    floor = D.SIG_FLOOR + D.SIGMA_OFFSET
    v: dict[str, tuple[str, callable]] = {}
    pct = {k: f"{100 * d:g}%" for k, d in (("", a.density), ("+", a.dense_density))}
    for setting in SETTINGS:
        for key, (label, fn) in modules.items():
            x = xs[""].clone().requires_grad_(setting == "hidden")
            v[f"{key}/{setting}"] = (f"{label}, {setting}", train(fn, x))
        x = xs["+"].clone().requires_grad_(setting == "hidden")
        v[f"ng_floor+/{setting}"] = (f"neurogate, sigma 0.5, {setting}, {pct['+']}", train(floor_layer, x))
    d = layer.delays

    def infer(backend, x):
        def run():
            with torch.no_grad():
                D.delayed_linear_integer(x, layer.weight, d, K, backend=backend)

        return run

    v["inf_dense"] = ("infer: dense one-hot conv1d", infer("reference", xs[""]))
    v["inf_ng"] = ("infer: neurogate integer", infer(None, xs[""]))
    v["inf_ng+"] = (f"infer: neurogate integer, {pct['+']}", infer(None, xs["+"]))
    # agreement, so that the timings compare like with like
    xi = xs[""]
    with torch.no_grad():
        ref = D.delayed_linear(xi, layer.weight, layer.P, floor, K, backend="reference")
        err = float((D.delayed_linear(xi, layer.weight, layer.P, floor, K) - ref).abs().max())
        erri = float((D.delayed_linear_integer(xi, layer.weight, d, K) - D.delayed_linear_integer(
            xi, layer.weight, d, K, backend="reference")).abs().max())
    scale = float(ref.abs().max())
    print(f"max |sparse - dense| at sigma 0.5: {err:.2e}; integer path: {erri:.2e} (output scale {scale:.2f})")
    for tag, x in xs.items():
        dens = float((x != 0).float().mean())
        mode = ["events" if dens <= event_max_density(J) else "dense" for J in (6, 1)]
        print(
            f"input {pct[tag]}: measured density {100 * dens:.2f}%; engine at sigma 0.5 (6 taps): {mode[0]}, "
            f"integer (1 tap): {mode[1]}"
        )
    skip = set(a.skip.split(","))
    return {k: val for k, val in v.items() if k not in skip and k.split("/")[0] not in skip}


def _time(variants: dict, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per run of each variant, interleaved, after 2 warm-up rounds."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeats + 2):
        for k, (_, fn) in variants.items():
            t0 = time.perf_counter()
            fn()
            if r >= 2:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return times


def sweep(a: argparse.Namespace, densities: list[float], load0: str) -> None:
    """First-layer training at sigma 0.5 over input densities: where the 10x target holds.

    Dcls1d and the dense conv1d cost the same on any input, so they run once (on the first
    density); neurogate runs on every density, all interleaved.
    """
    _, modules, train = _layers(a)
    T, B, I = a.T, a.B, a.inp
    xs = [_spikes(T, B, I, d) for d in densities]
    v = {k: (label, train(fn, xs[0])) for k, (label, fn) in modules.items() if k in ("dcls", "dense")}
    for d, x in zip(densities, xs):
        v[f"ng/{d}"] = (f"neurogate sigma 0.5, {100 * d:g}%", train(modules["ng_floor"][1], x))
    times = _time(v, a.repeats)
    med = {k: statistics.median(t) for k, t in times.items()}
    print(f"\nload average before {load0}, after {_load()}; first layer (input without grad), medians ms\n")
    print("| input density | engine | neurogate ms | Dcls1d / neurogate | dense conv1d / neurogate |")
    print("|---|---|---|---|---|")
    for d, x in zip(densities, xs):
        dens = float((x != 0).float().mean())
        ng = med[f"ng/{d}"]
        r = [f"{med[k] / ng:.1f}x" if k in med else "-" for k in ("dcls", "dense")]
        mode = "events" if dens <= event_max_density(6) else "dense"
        print(f"| {100 * dens:.1f}% | {mode} | {ng:.1f} | {r[0]} | {r[1]} |")
    for k in ("dcls", "dense"):
        if k in med:
            print(f"{v[k][0]}: {med[k]:.1f} ms (any density)")


def main() -> None:
    a = ARGS
    torch.set_num_threads(a.threads)
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    print(
        f"T={a.T} B={a.B} {a.inp}->{a.out} K={a.K}, float32, {a.threads} threads, torch {torch.__version__}, "
        f"numba {numba.__version__}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )
    load0 = _load()
    if a.sweep:
        return sweep(a, [float(d) for d in a.sweep.split(",")], load0)
    variants = _variants(a)
    times = _time(variants, a.repeats)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nload average before {load0}, after {_load()} (CPU count {os.cpu_count()})\n")
    w = max(len(label) for label, _ in variants.values())
    print(f"| {'variant':{w}s} | median ms | min ms |")
    print(f"|{'-' * (w + 2)}|-----------|--------|")
    for k, (label, _) in variants.items():
        print(f"| {label:{w}s} | {med[k]:9.1f} | {min(times[k]):6.1f} |")
    print()

    def ratio(num, den, target=None):
        if num not in med or den not in med:
            return
        r, best = med[num] / med[den], min(times[num]) / min(times[den])
        verdict = "" if target is None else f" ({'meets' if r >= target else 'MISSES'} the {target:g}x target)"
        print(f"{variants[num][0]} / {variants[den][0]}: {r:5.1f}x medians, {best:5.1f}x minima{verdict}")

    for (num, den), target in TARGETS.items():
        ratio(num, den, target)
    print("no target (the denser input; DCLS and dense conv1d cost the same on any input):")
    for s in SETTINGS:
        ratio(f"dcls/{s}", f"ng_floor+/{s}")
        ratio(f"dense/{s}", f"ng_floor+/{s}")
        ratio(f"dcls/{s}", f"ng_big/{s}")
    ratio("inf_dense", "inf_ng+")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
