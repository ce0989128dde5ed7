"""One multi-step LIF layer, forward + backward on CPU: neurogate against snnTorch, SpikingJelly,
Norse and plain PyTorch (eager and ``torch.compile``), with the memory each saves for backward and
the memory-bound floor of the pass.

Usage::

    python benchmarks/lif.py                          # all shapes, all peers (2-6 min)
    python benchmarks/lif.py --shapes 100x32x1024 --repeats 11 --skip compile,norse

What is measured, per shape ``(T, B, N)``, float32, 2 threads:

* time: median over ``--repeats`` runs (after 2 warm-up runs, the first counting memory) of
  the forward call and of its backward from the gradient of ``out.sum()`` (the usual benchmark
  loss): ones, a stride-0 expanded tensor, made before the clock starts, which every peer
  receives alike (the loss's own forward, a read of every spike, is not the layer's work). "total" is the median of the
  per-run sums, "(min)" the fastest. The peers run interleaved (run r of each before run r + 1
  of any) so that load from other processes falls on all alike; a slow peer stops after 3 runs
  once it has used ``--budget`` seconds. The load average is printed: above the CPU count, the
  numbers are inflated and noisy, worst for code that opens an OpenMP region per time step
  (``torch.compile``'s kernels, numba's ``omp`` layer): libgomp's threads spin at every barrier
  and a descheduled one stalls the rest (measured here at load 4: the compiled step's forward 1.2 s,
  12-23 ms with ``OMP_WAIT_POLICY=PASSIVE``). On a shared machine, run with that variable set.
* saved for backward: the bytes of the distinct storages that autograd packs during one forward
  (``torch.autograd.graph.saved_tensors_hooks``) and still holds when the forward returns,
  deduplicated by storage pointer, EXCLUDING the storage of the input ``x`` (the caller holds it
  anyway; the views ``x[t]`` and ``x.unbind(0)`` share it and are excluded with it). Outputs
  (the spikes) are not counted unless the graph saves them.
* ``neurogate fp8``: the same call with ``saved_membrane="fp8"`` (1 byte per element kept for
  backward instead of a float; approximate surrogate gradients, so its check reports the grad_x
  difference); it is there for its memory column, not as a faster mode.
* floor: plain ``copy_``/``fill_`` between preallocated, already-touched float32 buffers moving
  the bytes a fused forward + backward must move at least once: forward reads ``x`` and writes
  the spikes and one float state (12 B per element), backward reads that state and writes
  ``grad_x`` (8 B per element; the incoming gradient of ``sum()`` is stride-0 and costs nothing).
  20 B per element in all. The floor allocates nothing, so it is optimistic for any engine that
  returns freshly allocated outputs.

On CUDA see ``benchmarks/gpu_lif.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from lif_peers import (  # benchmarks/ is on sys.path
    LABELS,
    MAKERS,
    PEERS,
    SAME_MODEL,
    Peer,
)

SHAPES = ((100, 32, 1024), (500, 16, 512), (25, 128, 4096))
MIN_RUNS = 3
SLOW = 2.0  # s: a peer whose memory-counting pass took longer gets no second warm-up run


@dataclass
class Result:
    fwd: float  # medians, ms
    bwd: float
    total: float
    min: float  # fastest total, ms
    runs: int
    saved: int | None
    rate: float
    check: str


# --------------------------------------------------------------------------- measurements
def one_run(peer: Peer, x: torch.Tensor) -> tuple[float, float]:
    """Seconds of one forward and of its backward from the gradient of ``out.sum()``.

    That gradient (ones, stride 0: what ``SumBackward`` hands on) is made before the clock
    starts: the loss's own forward, a read of every spike, is not the layer's work (nor in the
    floor), and it cost every peer alike about 0.5 ms at (500, 16, 512).
    """
    x.grad = None
    grad_out = x.new_ones(()).expand(x.shape)
    t0 = time.perf_counter()
    out = peer.forward(x)
    t1 = time.perf_counter()
    out.backward(grad_out)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def floor_runner(shape) -> Callable[[], tuple[float, float]]:
    """One run of the floor: the minimal bytes of forward and backward as plain copies."""
    x, s, h, gx = (torch.rand(shape) for _ in range(4))  # rand touches every page up front

    def run():
        t0 = time.perf_counter()
        s.copy_(x)  # forward: read x, write spikes ...
        h.fill_(1.0)  # ... and write the state kept for backward
        t1 = time.perf_counter()
        gx.copy_(h)  # backward: read the state, write grad_x
        return t1 - t0, time.perf_counter() - t1

    return run


def saved_and_grad(peer: Peer, x: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Bytes saved for backward (distinct storages, x's excluded), the spikes and grad_x.

    Counted once the forward has returned, over the saved tensors still alive then: a tensor
    saved by a graph branch that the output does not reach is freed during the forward, and its
    storage pointer may be reused, so counting at pack time would be wrong both ways.
    """
    saved: list[weakref.ref] = []

    def pack(t):
        saved.append(weakref.ref(t))
        return t  # the graph now holds t itself, so the weak reference lives exactly as long

    x.grad = None
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = peer.forward(x)
    skip = x.untyped_storage().data_ptr()
    storages = {}
    for ref in saved:
        t = ref()
        if t is not None and t.untyped_storage().data_ptr() != skip:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    del t
    out.sum().backward()
    grad, x.grad = x.grad, None
    return sum(storages.values()), out.detach(), grad


def check_against(out, grad, ref_out, ref_grad) -> str:
    """Spike mismatches and grad_x agreement against neurogate's cpu engine."""
    if ref_out is None:
        return "-"
    n_diff = int((out != ref_out).sum())
    if n_diff:
        # One spike flipped by a rounding difference near threshold changes the gradient of
        # every earlier step of that neuron, so grad_x is only compared when spikes agree.
        return f"{n_diff} spikes differ"
    close = torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-5)
    err = float((grad - ref_grad).abs().max())
    return "same" if close else f"grad max err {err:.1e}"


def interleaved(runners: dict[str, Callable[[], tuple[float, float]]], repeats: int, budget: float,
                warm: set[str]):
    """Round-robin timing: run r of every runner before run r + 1 of any, so that load from other
    processes falls on all of them alike. A runner stops after ``MIN_RUNS`` once its timed runs
    have used ``budget`` seconds. Returns per runner the lists of forward and backward seconds."""
    for name, run in runners.items():
        if name not in warm:
            run()  # warm-up (the memory pass before it was the first)
    times = {name: ([], []) for name in runners}
    for r in range(repeats):
        for name, run in runners.items():
            fwd, bwd = times[name]
            if r >= MIN_RUNS and sum(fwd) + sum(bwd) > budget:
                continue
            f, b = run()
            fwd.append(f)
            bwd.append(b)
    return times


# --------------------------------------------------------------------------- report
def run_shape(shape, peers, repeats: int, budget: float) -> dict[str, Result]:
    T, B, N = shape
    n = T * B * N
    print(f"\n=== (T, B, N) = {shape}: {n / 1e6:.2f} M elements, x is {4 * n / 1e6:.1f} MB ===")
    torch.manual_seed(0)
    x = (0.5 * torch.rand(shape)).requires_grad_()  # mean input 0.25: about 1 spike in 5 steps
    built: dict[str, Peer] = {}
    info: dict[str, tuple[int, float, str]] = {}
    warm: set[str] = set()  # peers so slow that the memory pass is warm-up enough
    ref_out = ref_grad = None
    for name in peers:
        try:
            peer = MAKERS[name](shape)
            t0 = time.perf_counter()
            saved, out, grad = saved_and_grad(peer, x)
            if time.perf_counter() - t0 > SLOW:
                warm.add(name)
        except Exception as e:  # noqa: BLE001 (a failing peer must not stop the others)
            print(f"  {LABELS[name]}: FAILED: {type(e).__name__}: {e}")
            traceback.print_exc(limit=3, file=sys.stdout)
            continue
        if name == "neurogate":
            ref_out, ref_grad = out, grad
        if name in SAME_MODEL:
            check = check_against(out, grad, ref_out, ref_grad)
        else:
            check = "(baseline)" if name == "neurogate" else "other model"
        info[name] = (saved, float(out.float().mean()), check)
        built[name] = peer
        print(f"  {LABELS[name]:<14} {peer.settings}")
        for note in peer.notes:
            print(f"  {'':<14} {note}")
        del out, grad

    def as_runner(peer):
        return lambda: one_run(peer, x)

    runners = {name: as_runner(peer) for name, peer in built.items()}
    runners["floor"] = floor_runner(shape)
    load0 = os.getloadavg()[0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    times = {}
    try:
        times = interleaved(runners, repeats, budget, warm)
    except Exception as e:  # noqa: BLE001 (still print what the other shapes measured)
        print(f"  timing FAILED: {type(e).__name__}: {e}")
        traceback.print_exc(limit=3, file=sys.stdout)
    busy = (time.process_time() - cpu0) / (time.perf_counter() - wall0) / torch.get_num_threads()
    load1 = os.getloadavg()[0]

    results: dict[str, Result] = {}
    for name, (fwd, bwd) in times.items():
        tot = [f + b for f, b in zip(fwd, bwd)]
        saved, rate, check = info.get(name, (None, 0.0, ""))
        med = [1e3 * statistics.median(v) for v in (fwd, bwd, tot)]
        results[name] = Result(*med, 1e3 * min(tot), len(tot), saved, rate, check)

    ng, sn = results.get("neurogate"), results.get("snntorch")
    print(f"\n  {'':<14} {'fwd ms':>8} {'bwd ms':>8} {'total ms':>9} {'(min)':>8} {'runs':>4} {'x ng':>7} "
          f"{'saved MB':>9} {'B/elem':>7} {'x snnTorch':>10} {'spk rate':>9}  check vs neurogate")
    for name, r in results.items():
        if name == "floor":
            continue
        ratio = f"{r.total / ng.total:7.2f}" if ng else f"{'-':>7}"
        mem_ratio = f"{r.saved / sn.saved:10.2f}" if sn and sn.saved else f"{'-':>10}"
        print(f"  {LABELS[name]:<14} {r.fwd:8.1f} {r.bwd:8.1f} {r.total:9.1f} {r.min:8.1f} {r.runs:4d} "
              f"{ratio} {r.saved / 1e6:9.1f} {r.saved / n:7.2f} {mem_ratio} {r.rate:9.3f}  {r.check}")
    fl = results.get("floor")
    if fl:
        gbs = 20 * n / (fl.total * 1e-3) / 1e9
        print(f"  floor: {fl.fwd:.1f} ms fwd (read x, write spikes + state: 12 B/elem) + {fl.bwd:.1f} ms bwd "
              f"(read state, write grad_x: 8 B/elem) = {fl.total:.1f} ms for {20 * n / 1e6:.0f} MB "
              f"({gbs:.1f} GB/s; preallocated, pre-touched buffers)")
    if ng and fl:
        print(f"  neurogate / floor: fwd {ng.fwd / fl.fwd:.1f}x, bwd {ng.bwd / fl.bwd:.1f}x, "
              f"total {ng.total / fl.total:.1f}x")
    ncpu = os.cpu_count() or 1
    print(f"  load average {load0:.1f} -> {load1:.1f} on {ncpu} CPUs; this process kept its "
          f"{torch.get_num_threads()} threads {100 * busy:.0f}% busy while timing"
          + ("\n  ** OTHER PROCESSES COMPETED FOR THE CPUs: timings are inflated and noisy"
             + ("" if os.environ.get("OMP_WAIT_POLICY") else "; consider OMP_WAIT_POLICY=PASSIVE")
             + " **" if max(load0, load1) > ncpu + 0.5 else ""))
    return results


def summary(all_results: dict, stat: str) -> None:
    """One row per shape: neurogate's ms and each peer's as a multiple of it, by ``stat``."""
    cols = ("snntorch", "spikingjelly", "norse", "eager", "compile")
    what = "median" if stat == "total" else "fastest run"
    print(f"\n=== summary ({what}): neurogate cpu total ms; each peer's total as a multiple of it "
          "(higher = neurogate faster) ===")
    head = f"{'(T, B, N)':<17} {'ng ms':>7}" + "".join(f" {LABELS[c]:>13}" for c in cols)
    print(head + f" {'ng/floor':>9} {'mem vs snnTorch':>16} {'fp8 mem vs snnTorch':>20}")
    for shape, res in all_results.items():
        ng = res.get("neurogate")
        val = (lambda r: getattr(r, stat))
        row = f"{shape!s:<17} " + (f"{val(ng):7.1f}" if ng else f"{'-':>7}")
        for c in cols:
            row += f" {val(res[c]) / val(ng):12.2f}x" if ng and c in res else f" {'-':>13}"
        fl = res.get("floor")
        row += f" {val(ng) / val(fl):8.1f}x" if ng and fl else f" {'-':>9}"
        sn = res.get("snntorch")
        row += f" {ng.saved / sn.saved:15.2f}x" if ng and sn and sn.saved else f" {'-':>16}"
        f8 = res.get("fp8")
        row += f" {f8.saved / sn.saved:19.2f}x" if f8 and sn and sn.saved else f" {'-':>20}"
        print(row)


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"shape {text!r} must be TxBxN, e.g. 100x32x1024")
    return parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shapes", nargs="+", type=parse_shape, default=list(SHAPES), metavar="TxBxN")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median)")
    ap.add_argument("--budget", type=float, default=10.0,
                    help=f"seconds of timed runs after which a peer stops (>= {MIN_RUNS} runs)")
    ap.add_argument("--skip", action="append", default=[], metavar="PEER",
                    help=f"peer(s) to leave out, comma-separated or repeated: {', '.join(PEERS[1:])}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args(argv)

    if args.device == "cuda":
        print("The CUDA comparison (neurogate's triton engine against SpikingJelly's Triton/CuPy "
              "engines) lives in benchmarks/gpu_lif.py: run `python benchmarks/gpu_lif.py`.")
        return 0
    skip = {s.strip().lower() for item in args.skip for s in item.split(",") if s.strip()}
    unknown = skip - set(PEERS)
    if unknown:
        ap.error(f"unknown peer(s) in --skip: {', '.join(sorted(unknown))}; choose from {', '.join(PEERS)}")
    peers = [p for p in PEERS if p not in skip]

    torch.set_num_threads(args.threads)
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU; median of "
          f"{args.repeats} runs (fewer, >= {MIN_RUNS}, past {args.budget:g} s per peer) after 2 warm-up "
          f"runs (1 for peers slower than {SLOW:g} s), peers interleaved run by run; "
          "backward from d out.sum() / d out")
    print("saved = bytes of the distinct storages autograd holds for backward once the forward has "
          "returned, excluding x's own storage")
    t0 = time.perf_counter()
    all_results = {tuple(s): run_shape(tuple(s), peers, args.repeats, args.budget) for s in args.shapes}
    summary(all_results, "total")
    summary(all_results, "min")
    try:
        import numba

        layer = numba.threading_layer()
    except (ImportError, ValueError):  # ValueError: no parallel numba kernel has run
        layer = "-"
    print(f"\nnumba threading layer {layer}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
          f"total runtime {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
