"""GPU check of the Triton LIF engine: correctness against the reference, speed against peers.

    python benchmarks/gpu_lif.py              # on a CUDA machine, about 2 minutes
    python benchmarks/gpu_lif.py --dry-run    # on a CPU: Triton's interpreter, tiny shapes

(a) ``lif_scan(backend="triton")`` against ``backend="reference"`` for every reset and surrogate
(``decay_input``/``detach_reset`` cycle with the surrogate id), float32, at a few shapes; prints the
worst errors; ``saved_membrane="recompute"`` against the float mode (bit-equal) and the reference.
(b) Forward and forward+backward time at ``[T, B, N] = [32, 64, 65536]`` in float32 and float16
for neurogate's Triton engine in each ``saved_membrane`` mode (float, recompute, fp8), the plain
PyTorch loop (the reference engine) and
SpikingJelly's LIFNode in multi-step mode with each CUDA engine it has (``triton``, ``cupy`` or its
compiled ``cuda`` one, ``torch``), each peer in its own subprocess so that one failure cannot stop
the run. (c) Achieved bandwidth: the bytes each mode's fused passes must move (:func:`pass_bytes`;
float: forward reads x and writes spikes and h, backward reads the spike gradient and h and writes
dx) over the time, against a device-to-device copy; peers are charged the float mode's bytes. (d)
A sweep of the float engine's block size and warps, and of the recompute engine's checkpoint
interval and blocks in float32 and float16. Results also go to ``$OUT/gpu_lif.json`` when ``OUT``
is set; nothing else is written.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SURROGATES = ["atan", "fast_sigmoid", "sigmoid", "triangle", "rectangular", "erf"]
SJ_ENGINES = ["auto", "triton", "cupy", "cuda", "torch"]  # auto: SpikingJelly chooses, as its docs use it
SWEEP = [(256, 2), (512, 4), (1024, 4), (1024, 8), (2048, 8)]
# (dtype, K, BLOCK, warps) for the recompute backward; its default picks K=8 and 512/4 (float32),
# 512/2 (float16): see neurogate.cuda.lif_recompute._config.
RECOMPUTE_SWEEP = [("fp32", 8, 256, 2), ("fp32", 8, 512, 4), ("fp32", 4, 512, 4), ("fp32", 16, 512, 4),
                   ("fp16", 8, 256, 1), ("fp16", 8, 512, 2), ("fp16", 8, 512, 4), ("fp16", 4, 512, 2),
                   ("fp16", 8, 1024, 4)]
MODES = ["float", "recompute", "fp8"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, TRITON_INTERPRET=1, tiny shapes")
    ap.add_argument("--shape", default="32,64,65536", help="T,B,N for the timings")
    ap.add_argument("--dtypes", default="fp32,fp16")
    ap.add_argument("--no-peers", action="store_true", help="skip SpikingJelly")
    ap.add_argument("--no-sweep", action="store_true", help="skip the block-size sweep")
    ap.add_argument("--peer", help=argparse.SUPPRESS)  # internal: time one SpikingJelly engine
    return ap.parse_args(argv)


ARGS = parse_args()
if ARGS.dry_run:  # must precede the first import of triton
    os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402  (after TRITON_INTERPRET is decided)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEVICE = torch.device("cpu" if ARGS.dry_run else "cuda")


# --------------------------------------------------------------------------- timing helpers
def time_ms(fn, grad_to_none=None) -> float:
    """Median milliseconds of ``fn()``: triton's do_bench on a GPU, a wall clock on the CPU."""
    if DEVICE.type == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none, return_mode="median"))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def pass_bytes(T: int, M: int, dtype: torch.dtype, mode: str = "float") -> tuple[int, int]:
    """Bytes the fused forward and backward must move with a dense spike gradient.

    ``float``: forward reads x, writes S and h; backward reads grad_S and h, writes grad_x (h is
    float32 for half inputs). ``recompute``: h is neither written nor read; the backward reads x
    again, and both passes move the checkpoints (4 B every K steps). ``fp8``: a 1-byte code
    stands for h (the least an fp8 engine moves; today's is coded by torch around the kernels).
    """
    xb = torch.empty((), dtype=dtype).element_size()
    hb = 8 if dtype == torch.float64 else 4
    if mode == "recompute":
        from neurogate.cuda import lif_recompute

        ck = T * M * hb / lif_recompute.CHECKPOINT_EVERY
        return int(T * M * 2 * xb + ck), int(T * M * 3 * xb + ck)
    if mode == "fp8":
        return T * M * (2 * xb + 1), T * M * (2 * xb + 1)
    return T * M * (2 * xb + hb), T * M * (2 * xb + hb)


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes read plus written per second."""
    n = (1 << 28) if DEVICE.type == "cuda" else (1 << 20)
    src = torch.empty(n, dtype=torch.float32, device=DEVICE)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / (time_ms(lambda: dst.copy_(src)) * 1e-3)


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- (a) correctness
def make_problem(T: int, B: int, N: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    p = {
        "x": torch.randn(T, B, N, generator=g) * 0.8 + 0.5,
        "decay": torch.rand(N, generator=g) * 0.5 + 0.4,
        "threshold": torch.rand(N, generator=g) + 0.5,
        "v0": torch.randn(B, N, generator=g) * 0.3,
        "gs": torch.randn(T, B, N, generator=g),
        "gv": torch.randn(B, N, generator=g),
        "gh": torch.randn(T, B, N, generator=g),
    }
    return {k: v.to(DEVICE) for k, v in p.items()}


def run_engine(backend: str, p: dict, loss: str = "all", **kw) -> list:
    from neurogate.functional import lif_scan

    leaves = {k: p[k].clone().requires_grad_() for k in ("x", "v0", "decay", "threshold")}
    s, vT, tr = lif_scan(leaves["x"], decay=leaves["decay"], threshold=leaves["threshold"],
                         v0=leaves["v0"], backend=backend, return_state=True, **kw)
    if loss == "spikes":
        total = s.sum()  # stride-0 gradient into the kernel
    else:
        total = (s * p["gs"]).sum() + (vT * p["gv"]).sum() + (tr * p["gh"]).sum()
    total.backward()
    return [s, vT, tr] + [leaves[k].grad for k in ("x", "v0", "decay", "threshold")]


def compare(ref: list, tri: list, thr: torch.Tensor) -> dict:
    """Worst errors; a spike flip counts as 'far' unless |h - threshold| < 1e-5 (FMA-sized)."""
    flips = ref[0] != tri[0]
    near = (ref[2] - thr).abs() < 1e-5

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.double() - b.double()).abs().max() / (1 + b.double().abs().max())).item()

    return {
        "spike_flips": int(flips.sum()),
        "far_flips": int((flips & ~near).sum()),
        "v_rel": max(rel(tri[1], ref[1]), rel(tri[2], ref[2])),
        "grad_rel": max(rel(t, r) for t, r in zip(tri[3:], ref[3:])),
    }


def check_correctness(shapes: list[tuple[int, int, int, bool]]) -> list[dict]:
    """Every reset x surrogate (plus stride-0 and half cases) on shapes marked full, else a few.

    Each new block size or ``T == 1`` compiles a new set of kernels, so only one shape is full.
    """
    from neurogate.functional.lif import RESETS

    rows = []
    for T, B, N, full in shapes:
        p = make_problem(T, B, N)
        for reset in RESETS:
            for sid, sg in enumerate(SURROGATES if full else SURROGATES[:1]):
                flags = sid if full else len(rows)  # cycle decay_input / detach_reset either way
                kw = {"reset": reset, "surrogate": sg,
                      "decay_input": bool(flags & 1), "detach_reset": bool(flags & 2)}
                row = {"shape": f"{T}x{B}x{N}", **kw}
                try:
                    row.update(compare(run_engine("reference", p, **kw), run_engine("triton", p, **kw),
                                       p["threshold"]))
                except Exception as err:  # report and go on: the next combination may work
                    row["error"] = f"{type(err).__name__}: {err}"[:200]
                rows.append(row)
        extras = [("stride-0 grad", "spikes", torch.float32),
                  ("fp16", "all", torch.float16), ("bf16", "all", torch.bfloat16)]
        for name, loss, dtype in extras if full else []:
            q = {k: v.to(dtype) for k, v in p.items()}
            row = {"shape": f"{T}x{B}x{N}", "reset": "subtract", "surrogate": "atan", "case": name}
            try:
                # Half inputs are upcast and integrated in float32: the float32 reference on the
                # upcast inputs is the same computation.
                ref = run_engine("reference", {k: v.float() for k, v in q.items()}, loss=loss)
                tri = [t.float() for t in run_engine("triton", q, loss=loss)]
                row.update(compare(ref, tri, q["threshold"].float()))
            except Exception as err:
                row["error"] = f"{type(err).__name__}: {err}"[:200]
            rows.append(row)
    return rows


def correctness_ok(row: dict) -> bool:
    if "error" in row:
        return False
    half = row.get("case") in ("fp16", "bf16")
    v_tol, g_tol = (4e-3, 2e-2) if half else (1e-6, 1e-4)  # half: outputs rounded to 8-11 bits
    return row["far_flips"] == 0 and row["v_rel"] <= v_tol and row["grad_rel"] <= g_tol


# --------------------------------------------------------------------------- (b) timings
def time_neurogate(backend: str, T: int, B: int, N: int, dtype: torch.dtype, mode: str = "float") -> dict:
    from neurogate.functional import lif_scan

    x = torch.randn(T, B, N, device=DEVICE, dtype=dtype).add_(0.4).requires_grad_()
    g = torch.randn(T, B, N, device=DEVICE, dtype=dtype)
    kw = dict(decay=0.5, threshold=1.0, surrogate="sigmoid", alpha=4.0, backend=backend)
    if mode != "float":
        kw["saved_membrane"] = mode

    def fwd_bwd():
        lif_scan(x, **kw).backward(g)

    out = {"fwd_ms": time_ms(lambda: lif_scan(x, **kw)), "fwd_bwd_ms": time_ms(fwd_bwd, [x])}
    x.grad = None
    return out


def time_sj_peer(engine: str, T: int, B: int, N: int, dtypes: list[str]) -> dict:
    """Runs in a child process (``--peer``) whose environment already selects the engine."""
    from spikingjelly.activation_based import neuron, surrogate

    params = inspect.signature(neuron.LIFNode.__init__).parameters
    kw = dict(tau=2.0, decay_input=False, v_reset=None, surrogate_function=surrogate.Sigmoid(alpha=4.0),
              step_mode="m")
    if "backend" in params:  # SpikingJelly <= 0.0.0.0.14 and early 2.0: a constructor argument
        kw["backend"] = engine
    elif engine == "cupy" and "backend" not in params:
        raise RuntimeError("this SpikingJelly has no cupy engine (its compiled one is 'cuda')")
    node = neuron.LIFNode(**kw).to(DEVICE)
    try:
        from spikingjelly._ops import lif as sj_lif

        selection = sj_lif._selection._selections  # SpikingJelly 2.0's per-device choice cache
    except Exception:
        selection = None
    out = {}
    for name in dtypes:
        x = torch.randn(T, B, N, device=DEVICE, dtype=DTYPES[name]).add_(0.4).requires_grad_()
        g = torch.randn_like(x)

        def fwd(x=x):
            node.reset()
            return node(x)

        def fwd_bwd(x=x, g=g):
            fwd(x).backward(g)

        if selection is not None:
            selection.clear()  # a cache: cleared, it records what this dtype selects
        out[name] = {"fwd_ms": time_ms(fwd), "fwd_bwd_ms": time_ms(fwd_bwd, [x])}
        if selection is not None:  # None marks a fallback to SpikingJelly's PyTorch reference
            out[name]["selected"] = sorted({"torch-reference" if v is None else v.name
                                            for v in selection.values()})
    return out


def run_sj_peers(T: int, B: int, N: int, dtypes: list[str], deadline: float) -> dict:
    results = {}
    for engine in SJ_ENGINES:
        left = deadline - time.perf_counter()
        if left < 10:
            results[engine] = {"error": "skipped: the run's time budget is spent"}
            continue
        cmd = [sys.executable, __file__, "--peer", engine, "--shape", f"{T},{B},{N}",
               "--dtypes", ",".join(dtypes)] + (["--dry-run"] if ARGS.dry_run else [])
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if engine != "auto":
            env["SJ_LIF_CUDA_IMPLEMENTATION"] = engine
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=min(75.0, left))
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            results[engine] = json.loads(line[-1][7:]) if line else {
                "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
        except Exception as err:
            results[engine] = {"error": f"{type(err).__name__}: {err}"[:200]}
    return results


def run_sweep(T: int, B: int, N: int) -> list[dict]:
    """fp32 forward+backward for block sizes and warps (float mode), then for the recompute mode's
    checkpoint interval K and block sizes."""
    from neurogate.cuda import lif as engine
    from neurogate.cuda import lif_recompute as rec

    default, rec_default, k_default = engine._config, rec._config, rec.CHECKPOINT_EVERY
    rows = []
    try:
        for block, warps in SWEEP:
            engine._config = lambda m, dev, b=block, w=warps: (b, w)
            try:
                rows.append({"mode": "float", "block": block, "warps": warps,
                             **time_neurogate("triton", T, B, N, torch.float32)})
            except Exception as err:
                rows.append({"mode": "float", "block": block, "warps": warps, "error": str(err)[:200]})
        engine._config = default
        for name, k, block, warps in RECOMPUTE_SWEEP:
            rec.CHECKPOINT_EVERY = k
            rec._config = lambda m, dev, itemsize=4, b=block, w=warps: (b, w)
            row = {"mode": f"recompute {name} K={k}", "block": block, "warps": warps}
            try:
                rows.append({**row, **time_neurogate("triton", T, B, N, DTYPES[name], "recompute")})
            except Exception as err:
                rows.append({**row, "error": str(err)[:200]})
    finally:
        engine._config, rec._config, rec.CHECKPOINT_EVERY = default, rec_default, k_default
    return rows


def check_recompute(shapes: list[tuple[int, int, int]]) -> list[dict]:
    """``saved_membrane="recompute"`` against the float mode (bit-equal expected) and the reference."""
    from neurogate.functional import lif_scan
    from neurogate.functional.lif import RESETS

    rows = []
    for T, B, N in shapes:
        p = make_problem(T, B, N, seed=1)
        for i, (reset, sg) in enumerate((r, s) for r in RESETS for s in SURROGATES):
            kw = dict(reset=reset, surrogate=sg, decay_input=bool(i & 1), detach_reset=bool(i & 2))
            row = {"shape": f"{T}x{B}x{N}", "mode": "recompute", **kw}
            try:
                outs = []
                for backend, mode in (("triton", "recompute"), ("triton", "float"), ("reference", "float")):
                    leaves = {k: p[k].clone().requires_grad_() for k in ("x", "v0", "decay", "threshold")}
                    out = lif_scan(leaves["x"], decay=leaves["decay"], threshold=leaves["threshold"],
                                   v0=leaves["v0"], backend=backend, saved_membrane=mode, **kw)
                    (out * p["gs"]).sum().backward()
                    outs.append([out] + [leaves[k].grad for k in ("x", "v0", "decay", "threshold")])
                rec, flt, ref = outs
                row["bit_equal_float"] = all(torch.equal(a, b) for a, b in zip(rec, flt))
                row["spikes_equal_ref"] = bool(torch.equal(rec[0], ref[0]))
                row["grad_rel"] = max(((a.double() - b.double()).abs().max() / (1 + b.double().abs().max())).item()
                                      for a, b in zip(rec[1:], ref[1:]))
            except Exception as err:
                row["error"] = f"{type(err).__name__}: {err}"[:200]
            rows.append(row)
    return rows


def recompute_ok(row: dict) -> bool:
    return "error" not in row and row["bit_equal_float"] and row["spikes_equal_ref"] and row["grad_rel"] <= 1e-4


# --------------------------------------------------------------------------- report
def main() -> int:
    T, B, N = (int(v) for v in ARGS.shape.split(","))
    dtypes = ARGS.dtypes.split(",")
    if ARGS.peer:
        try:
            print("RESULT " + json.dumps(time_sj_peer(ARGS.peer, T, B, N, dtypes)))
        except Exception as err:
            print("RESULT " + json.dumps({"error": f"{type(err).__name__}: {err}"[:200]}))
        return 0
    if ARGS.dry_run:
        T, B, N = 4, 2, 64
        shapes = [(3, 2, 40, True), (1, 1, 5, False)]
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: run with --dry-run to check the script on a CPU")
            return 1
        shapes = [(16, 4, 70001, True), (1, 3, 1000, False), (7, 2, 33, False)]
    t_start = time.perf_counter()
    report: dict = {"device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu (interpreter)",
                    "torch": torch.__version__, "shape": [T, B, N]}
    try:
        import triton

        report["triton"] = triton.__version__
    except ImportError:
        pass
    print(f"# neurogate LIF on {report['device']}  torch {torch.__version__}  triton {report.get('triton')}")

    rows = check_correctness(shapes)
    report["correctness"] = rows
    bad = [r for r in rows if not correctness_ok(r)]
    print(f"\n(a) correctness: {len(rows) - len(bad)}/{len(rows)} cases within tolerance")
    for label, keep in [("fp32", lambda r: r.get("case") not in ("fp16", "bf16")),
                        ("fp16/bf16", lambda r: r.get("case") in ("fp16", "bf16"))]:
        worst = {k: max((r.get(k, 0) for r in rows if "error" not in r and keep(r)), default=0)
                 for k in ("spike_flips", "far_flips", "v_rel", "grad_rel")}
        print(f"    worst {label:<9}: " + "  ".join(f"{k}={v:.3g}" for k, v in worst.items()))
    for r in bad:
        print("    FAIL", {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in r.items()})
    rec_rows = check_recompute([(s[0], s[1], s[2]) for s in shapes if s[3]] + ([(13, 2, 300)] if ARGS.dry_run else
                                                                                [(37, 2, 5000)]))
    report["recompute_correctness"] = rec_rows
    rec_bad = [r for r in rec_rows if not recompute_ok(r)]
    print(f"    saved_membrane='recompute': {len(rec_rows) - len(rec_bad)}/{len(rec_rows)} cases bit-equal to the "
          f"float mode, spikes equal to the reference, worst grad_rel vs reference "
          f"{max((r.get('grad_rel', 0) for r in rec_rows if 'error' not in r), default=0):.3g}")
    for r in rec_bad:
        print("    FAIL", {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in r.items()})
    bad += rec_bad

    copy_bw = copy_bandwidth()
    report["copy_GBps"] = copy_bw / 1e9
    if DEVICE.type == "cuda":  # a first timed run (clocks, allocator) measured 1.5x slow on an H100
        time_neurogate("triton", T, B, N, torch.float32)
    timings: dict = {}
    for name in dtypes:
        dt = DTYPES[name]
        runs = [("neurogate-triton", "triton", "float"), ("ng-recompute", "triton", "recompute"),
                ("ng-fp8", "triton", "fp8"), ("torch-loop", "reference", "float")]
        for impl, backend, mode in runs:
            try:
                timings[(impl, name)] = {**time_neurogate(backend, T, B, N, dt, mode), "mode": mode}
            except Exception as err:
                timings[(impl, name)] = {"error": f"{type(err).__name__}: {err}"[:200]}
            sync()
    if not ARGS.no_peers:
        if DEVICE.type == "cuda":
            torch.cuda.empty_cache()  # the peers run in their own processes: leave them the memory
        for engine, res in run_sj_peers(T, B, N, dtypes, deadline=t_start + 150).items():
            for name in dtypes:
                row = res.get(name, {"error": res.get("error", "missing")})
                if row.get("selected", [engine]) != [engine]:  # fell back, or ran on the CPU
                    row["note"] = f"ran {row['selected']}"
                timings[(f"sj-{engine}", name)] = row
    report["timings"] = {f"{k[0]}/{k[1]}": v for k, v in timings.items()}

    print(f"\n(b,c) [T,B,N]=[{T},{B},{N}]  copy bandwidth {copy_bw / 1e9:.0f} GB/s (read+write)")
    print("    GB/s: each row's own minimum bytes (pass_bytes; peers charged the float mode's) over its time;")
    print("    ng speedup: the row's time over neurogate's float mode; x SJ: SpikingJelly's fastest over the row's")
    head = ("impl", "dtype", "fwd ms", "fwd+bwd ms", "B/elem", "GB/s", "of copy", "ng speedup", "x SJ")
    print("{:<18}{:<6}{:>9}{:>12}{:>7}{:>8}{:>9}{:>12}{:>8}".format(*head))
    for (impl, name), res in timings.items():
        if "error" in res:
            print(f"{impl:<18}{name:<6}  unavailable: {res['error']}")
            continue
        fb, bb = pass_bytes(T, B * N, DTYPES[name], res.get("mode", "float"))
        gbps = (fb + bb) / (res["fwd_bwd_ms"] * 1e-3) / 1e9
        ours = timings.get(("neurogate-triton", name), {})
        speedup = res["fwd_bwd_ms"] / ours["fwd_bwd_ms"] if "fwd_bwd_ms" in ours else float("nan")
        sj = min((r["fwd_bwd_ms"] for (i, n), r in timings.items()
                  if i.startswith("sj-") and n == name and "fwd_bwd_ms" in r), default=float("nan"))
        res.update(GBps=gbps, copy_fraction=gbps * 1e9 / copy_bw, neurogate_speedup=speedup,
                   sj_over_this=sj / res["fwd_bwd_ms"])
        print(f"{impl:<18}{name:<6}{res['fwd_ms']:>9.3f}{res['fwd_bwd_ms']:>12.3f}{(fb + bb) / (T * B * N):>7.1f}"
              f"{gbps:>8.0f}{gbps * 1e9 / copy_bw:>9.2f}{speedup:>11.2f}x{sj / res['fwd_bwd_ms']:>7.2f}x"
              f"  {res.get('note', '')}")
    ours = timings.get(("neurogate-triton", dtypes[0]), {})
    if "fwd_ms" in ours:
        fb, _ = pass_bytes(T, B * N, DTYPES[dtypes[0]])
        print(f"    neurogate forward alone: {fb / (ours['fwd_ms'] * 1e-3) / copy_bw:.2f} of copy bandwidth")

    if not ARGS.no_sweep and DEVICE.type == "cuda":
        report["sweep"] = run_sweep(T, B, N)
        print("\n(d) sweep, fwd+bwd ms (float, fp32: default 1024/4 at this size; recompute: default "
              "K=8, 512/4 for fp32, 512/2 for fp16)")
        for r in report["sweep"]:
            res = r["error"] if "error" in r else f"fwd {r['fwd_ms']:.3f}  fwd+bwd {r['fwd_bwd_ms']:.3f}"
            print(f"    {r['mode']:<19} BLOCK={r['block']:<5} warps={r['warps']}  {res}")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_lif.json").write_text(json.dumps(report, indent=1, default=str))
    return 0 if not bad else 2


if __name__ == "__main__":
    sys.exit(main())
