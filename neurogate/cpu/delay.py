r"""Fused numba engines for sparse delay taps (contract: :func:`neurogate.functional.delay.delay_taps`).

Computes, for time-major ``x: [T, B, I]``, per-synapse coefficients ``coef: [O, I, J]`` and
integer first delays ``dmin: [O, I]``:

.. math::

    y[t, b, o] = \sum_{i} \sum_{j=0}^{J-1} \mathrm{coef}[o, i, j]\; x[t - d_{\min}[o, i] - j, b, i],
    \qquad x[s] = 0 \text{ for } s \notin [0, T)

and its gradients

.. math::

    \frac{\partial L}{\partial \mathrm{coef}[o, i, j]} = \sum_{t, b} x[t, b, i]\; g[t + d_{\min}[o, i] + j, b, o],
    \qquad
    \frac{\partial L}{\partial x[t, b, i]} = \sum_{o, j} \mathrm{coef}[o, i, j]\; g[t + d_{\min}[o, i] + j, b, o]

(:math:`g = \partial L / \partial y`, zero outside :math:`[0, T)`). ``J = 1`` is a layer with one
integer delay per synapse; ``J = 2r`` is the truncated Gaussian of a DCLS layer once its sigma is
small. Two engines compute the same sums; which one runs is decided once per forward pass by the
density of ``x`` (:func:`events`), and the backward pass reuses that decision and the events.

**Dense engine** (``T B O I J`` multiply-adds, against ``T B O I K`` for the dense causal
convolution). Time and batch are flattened into one contiguous row per channel (``[I, T*B]`` for
the input, ``[O, T*B]`` for the output), so a synapse's contribution is a shifted axpy of one input
row into one output row (the shift is ``delay * B``) and the inner loop is a long contiguous vector
loop. Rows are zero-padded in time once so that no tap needs a bounds test. (synapse, tap) pairs
are fused six at a time: one read-modify-write of an output row adds six shifted source rows
(measured: about 2x faster than one pass per pair for ``J = 1``, where the kernel would otherwise
be bound by the output row's traffic). Work is split over blocks of 8 output rows (input rows for
``grad_x``), so that each source row, read once from L3, serves 8 rows held in L2. The dot
products of ``grad_coef`` need ``reassoc`` to vectorise; summation order therefore differs from the
reference (fp32 rounding, not a formula change).

**Event engine** (``E O ceil(J/8)`` 8-lane multiply-adds for ``E`` non-zero inputs). Spiking input
is sparse: the non-zero entries ``(t, b, i, v)`` of ``x`` are gathered once (:func:`events`), and
each event adds its synapses' taps into the output,

.. math::

    y[t + d_{\min}[o, i] + j, b, o] \mathrel{+}= v\, \mathrm{coef}[o, i, j]
    \quad \text{for all } o, j,

while ``grad_coef`` is the same walk reading instead of writing:
:math:`\mathrm{gcoef}[o, i, j] \mathrel{+}= v\, g[t + d_{\min}[o, i] + j, b, o]`. ``grad_x`` is
dense (``g`` is), so it always runs on the dense engine. Layout: a block of ``OB`` outputs of one
batch entry lives in a zero-padded scratch ``z [OB, W]`` (time contiguous, ``W`` covers every
shifted tap), so the ``J`` taps of synapse ``(o, i)`` are ``J`` consecutive floats of row ``o`` and
one event updates each row with one 8-lane vector multiply-add (:func:`_axpy_lanes`; the
coefficients are laid out ``[I, O, J8]``, padded with zero taps to ``J8``, a multiple of 8). Work
is split over output blocks (no write races, no reductions, a result independent of the thread
count); within a block the events of each batch entry are walked channel by channel, so that
consecutive events share their coefficients (in L1) and the scratch stays in L1-L2. Measured at
SHD scale (T=100, B=64, 140 -> 256, 6 taps, one thread): about 1 ns per (event, output) in each
direction, about 4 times the dense engine's cost per (step, batch entry, synapse), so events pay
below about 20 % input density (:func:`event_max_density`).

**Gaussian taps** (:func:`gaussian_taps`, :func:`gaussian_taps_backward`): the truncated DCLS
kernel's coefficients and their chain rule to weights and positions, one parallel pass over the
synapses each way, so that a training step runs no torch operation between the engine's kernels
(torch's and numba's OpenMP thread pools each spin a while after their parallel regions; on two
cores, alternating between them slows both).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from . import buffers

__all__ = ["EVENT_COST", "backward", "event_max_density", "events", "forward", "gaussian_taps", "gaussian_taps_backward"]

BLOCK = 8  # dense engine: output rows (input rows for grad_x) per task; one read of a source row serves 8
LANES = 8  # event engine: taps per vector multiply-add (8 floats: one AVX2 register)
EVENT_OUTPUTS = (16, 64)  # event engine: the fewest and most outputs per task (2 tasks per thread)
# Cost of one event-engine lane group (one event, one output, 8 taps) against the dense engine's
# cost per (step, batch entry, synapse) of J + 1 units (J multiply-adds and the row's traffic),
# measured at SHD scale (T=100, B=64, 140 -> 256, K=25): the engines break even near 20 % input
# density for J = 6 and near 6 % for J = 1.
EVENT_COST = 35.0
_FM = {"contract", "reassoc", "nsz", "arcp"}  # reassoc: lets the dot products of grad_coef vectorise


# --------------------------------------------------------------------------- public
def event_max_density(J: int) -> float:
    r"""The input density (non-zeros / ``T B I``) below which the event engine is the cheaper one.

    The dense engine costs about :math:`T B I O (J + 1)` units, the event engine
    :math:`E\, O \lceil J / 8 \rceil` lane groups of ``EVENT_COST`` units, so events pay while
    :math:`E / (T B I) < (J + 1) / (\mathrm{EVENT\_COST} \lceil J/8 \rceil)`: 20 % for ``J = 6``
    (the Gaussian at the sigma floor), 5.7 % for ``J = 1`` (integer delays).
    """
    return (J + 1) / (EVENT_COST * math.ceil(J / LANES)) if J > 0 else 0.0


def events(x: torch.Tensor, max_density: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The non-zero entries of ``x [T, B, I]`` as events, or a marker that ``x`` is too dense.

    Returns ``(ptr [B I + 1] int64, step [cap] int32, val [cap])`` with
    ``cap = floor(max_density * T * B * I)`` (a static size, so the custom operator has a fake
    implementation): the events of batch entry ``b`` and channel ``i`` are
    ``ptr[b I + i] <= e < ptr[b I + i + 1]``, at step ``step[e]`` (increasing), value ``val[e]`` (any
    non-zero value: spike counts and graded inputs work like binary spikes). When ``x`` has more
    than ``cap`` non-zeros, ``ptr[0] = -1`` and nothing else is written: the dense engine runs.
    """
    cdt = _compute_dtype(x.dtype)
    T, B, I = x.shape
    cap = max(0, int(max_density * T * B * I))
    ptr = torch.zeros(B * I + 1, dtype=torch.int64)
    step, val = _pooled((cap,), torch.int32), _pooled((cap,), cdt)
    n = 0
    if T * B * I:
        xn = x.detach().to(cdt).contiguous().numpy()
        p = ptr.numpy()
        _count_events(xn, p[1:].reshape(B, I))
        np.cumsum(p, out=p)
        n = int(p[-1])
        if n > cap:
            p[0], n = -1, 0
        elif n:
            _gather_events(xn, p[:-1].reshape(B, I), step.numpy(), val.numpy())
    step.numpy()[n:] = 0  # the unused slots: deterministic output (numpy, not a torch parallel region)
    val.numpy()[n:] = 0
    return ptr, step, val


def forward(
    x: torch.Tensor, coef: torch.Tensor, dmin: torch.Tensor, ptr: torch.Tensor, step: torch.Tensor, val: torch.Tensor
) -> torch.Tensor:
    """``y [T, B, O]`` from ``x [T, B, I]``, ``coef [O, I, J]``, ``dmin [O, I]`` and the
    :func:`events` of ``x`` (module docstring): the event engine where there are events, else dense."""
    cdt = _compute_dtype(x.dtype)
    T, B, _ = x.shape
    O, _, J = coef.shape
    d = dmin.detach().to(torch.int64).contiguous().numpy()
    if int(ptr[0]) >= 0:
        y = buffers.empty((T, B, O), cdt)
        if y.numel():
            lay = _EventLayout(d, J, T)
            c = lay.coef_rows(coef.detach().to(cdt))
            _event_taps(ptr.numpy(), step.numpy(), val.numpy(), c, lay.off, y.view(-1).numpy(), T, B, O,
                        lay.front, lay.W, lay.OB, lay.chunks, False)
        return y.to(x.dtype)
    front, back = _pads(d, J)
    xp = _rows(x.detach().to(cdt), front, back)
    y = buffers.empty((O, T * B), cdt)
    if y.numel():
        _forward_kernel(xp.numpy(), coef.detach().to(cdt).contiguous().numpy(), d, y.numpy(), B, front * B)
    return _unrows(y, T, B).to(x.dtype)


def backward(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    coef: torch.Tensor,
    dmin: torch.Tensor,
    ptr: torch.Tensor,
    step: torch.Tensor,
    val: torch.Tensor,
    need_x: bool = True,
    need_coef: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(grad_x [T, B, I], grad_coef [O, I, J])``; either is ``None`` when not needed.

    ``grad_coef`` walks the forward pass's events when it had them; ``grad_x`` is always dense.
    """
    cdt = _compute_dtype(x.dtype)
    T, B, I = x.shape
    O, _, J = coef.shape
    d = dmin.detach().to(torch.int64).contiguous().numpy()
    front, back = _pads(d, J)
    use_events = int(ptr[0]) >= 0
    gy = grad_y.detach().to(cdt)
    gyp = None
    if need_x or not use_events:  # shared: grad_x reads it shifted, the dense grad_coef not
        gyp = _rows(gy, back, front)
    gx = gc = None
    if need_x:
        gx_rows = buffers.empty((I, T * B), cdt)
        if gx_rows.numel():
            c = coef.detach().to(cdt).contiguous().numpy()
            _grad_x_kernel(gyp.numpy(), c, d, gx_rows.numpy(), B, back * B)
        gx = _unrows(gx_rows, T, B).to(x.dtype)
    if need_coef:
        if use_events:
            lay = _EventLayout(d, J, T)
            g = _pooled((I * O * lay.J8,), cdt).numpy()
            g[:] = 0
            if T * B and g.size:
                _event_taps(ptr.numpy(), step.numpy(), val.numpy(), g, lay.off, gy.contiguous().view(-1).numpy(),
                            T, B, O, lay.front, lay.W, lay.OB, lay.chunks, True)
            gc = torch.from_numpy(lay.coef_grad(g, O, I))
        else:
            xp = _rows(x.detach().to(cdt), front, back)
            gc = torch.zeros((O, I, J), dtype=cdt)
            if T * B and gc.numel():
                _grad_coef_kernel(gyp.numpy(), xp.numpy(), d, gc.numpy(), B, front * B, back * B, T * B)
        gc = gc.to(coef.dtype)
    return gx, gc


def gaussian_taps(
    weight: torch.Tensor, P: torch.Tensor, sigma: float, max_delay: int, r: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The truncated Gaussian's taps ``(coef [O, I, J], dmin [O, I] int64)`` from ``weight, P [O, I]``.

    The same values as :func:`neurogate.functional.delay.gaussian_taps` applied to
    ``P.clamp(*position_range(K))`` (its docstring has the equations), in one pass over the
    synapses: with :math:`c = P + \lfloor K/2 \rfloor`, the window's top kernel tap
    :math:`m_0 = \lfloor c \rfloor + r` (or :math:`K - 1` when ``2r >= K``: all ``J = K`` taps),
    tap ``j`` sits at :math:`m_j = m_0 - j`, i.e. delay :math:`d_{\min} + j` with
    :math:`d_{\min} = K - 1 - m_0`, and

    .. math::

        \mathrm{coef}_j = \frac{w\, g_j}{S}, \qquad
        g_j = [0 \le m_j < K]\, e^{-\frac12 ((m_j - c)/\sigma)^2}, \qquad S = \sum_j g_j + \epsilon
    """
    K = max_delay
    J = min(K, 2 * r)
    lo, hi = -(K // 2), (K - 1) // 2
    cdt = _compute_dtype(weight.dtype)
    w = weight.detach().to(cdt).contiguous()
    p = P.detach().to(cdt).contiguous()
    coef = torch.empty((*w.shape, J), dtype=cdt)
    dmin = torch.empty(w.shape, dtype=torch.int64)
    if w.numel():
        _gauss_taps_kernel(w.view(-1).numpy(), p.view(-1).numpy(), lo, hi, float(sigma), K, r, eps,
                           coef.view(-1, J).numpy(), dmin.view(-1).numpy())
    return coef.to(weight.dtype), dmin


def gaussian_taps_backward(
    grad_coef: torch.Tensor, weight: torch.Tensor, P: torch.Tensor, sigma: float, max_delay: int, r: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(grad_weight, grad_P)`` of :func:`gaussian_taps` for ``grad_coef`` :math:`G_j`:

    .. math::

        \frac{\partial L}{\partial w} = \frac{1}{S}\sum_j G_j g_j, \qquad
        \frac{\partial L}{\partial P} = [P_{\min} \le P \le P_{\max}]\, \frac{w}{S}
        \Big(\sum_j G_j g_j' - \frac{S'}{S} \sum_j G_j g_j\Big), \qquad
        g_j' = g_j \frac{m_j - c}{\sigma^2}, \; S' = \sum_j g_j'

    (the window :math:`\lfloor c \rfloor` is piecewise constant: no gradient, as in the reference,
    and the clamp passes the gradient inside its range, ends included, as ``torch.clamp`` does).
    """
    K = max_delay
    lo, hi = -(K // 2), (K - 1) // 2
    cdt = _compute_dtype(weight.dtype)
    w = weight.detach().to(cdt).contiguous()
    p = P.detach().to(cdt).contiguous()
    gw, gp = torch.empty_like(w), torch.empty_like(p)
    if w.numel():
        G = grad_coef.detach().to(cdt).contiguous()
        _gauss_taps_grad_kernel(w.view(-1).numpy(), p.view(-1).numpy(), lo, hi, float(sigma), K, r, eps,
                                G.view(w.numel(), -1).numpy(), gw.view(-1).numpy(), gp.view(-1).numpy())
    return gw.to(weight.dtype), gp.to(P.dtype)


# --------------------------------------------------------------------------- event engine
class _EventLayout:
    """The event engine's layout for delays ``d [O, I]`` with ``J`` taps over ``T`` steps.

    Outputs go in blocks of ``OB``; output ``o`` of a block is row ``k = o % OB`` of the scratch
    ``z [OB, W]``, time ``s`` at column ``front + s``. ``off[i, o] = k W + front + d[o, i]`` is where
    tap 0 of an event at step 0 lands, so tap ``j`` of an event at step ``t`` is ``z.flat[off + t + j]``
    (``front`` makes negative delays land at column >= 0, ``W`` leaves room for the last padded tap).
    """

    def __init__(self, d: np.ndarray, J: int, T: int) -> None:
        O = d.shape[0]
        self.J, self.J8 = J, LANES * max(1, math.ceil(J / LANES))
        self.chunks = (0,) * (self.J8 // LANES)  # a tuple, so that the tap loop's length is a compile-time constant
        lo, hi = (int(d.min()), int(d.max())) if d.size else (0, 0)
        self.front = max(-lo, 0)
        self.W = self.front + T + max(hi, 0) + self.J8
        tasks = 2 * numba.get_num_threads()
        self.OB = min(EVENT_OUTPUTS[1], max(EVENT_OUTPUTS[0], -(-O // tasks)))
        k = (np.arange(O, dtype=np.int64) % self.OB) * self.W + self.front
        self.off = np.ascontiguousarray((d + k[:, None]).T.astype(np.int32)).reshape(-1)  # flat [I, O]

    def coef_rows(self, coef: torch.Tensor) -> np.ndarray:
        """``coef [O, I, J]`` -> flat ``[I, O, J8]``: the taps of each synapse contiguous, zero-padded."""
        O, I, J = coef.shape
        c = _pooled((I, O, self.J8), coef.dtype).numpy()
        c[:, :, J:] = 0
        c[:, :, :J] = coef.numpy().transpose(1, 0, 2)
        return c.reshape(-1)

    def coef_grad(self, g: np.ndarray, O: int, I: int) -> np.ndarray:
        """The inverse of :meth:`coef_rows` for a gradient: flat ``[I, O, J8]`` -> ``[O, I, J]``."""
        return np.ascontiguousarray(g.reshape(I, O, self.J8)[:, :, : self.J].transpose(1, 0, 2))


@intrinsic
def _axpy_lanes(typingctx, dst, p, a, src, q):
    """``dst[p : p + 8] += a * src[q : q + 8]`` as one 8-lane vector multiply-add.

    numba leaves LLVM's SLP vectoriser off, so eight scalar statements would stay scalar (and a loop
    of 8 is below the loop vectoriser's trip count). Both arrays 1-D, C-contiguous, of one float
    dtype; indices unchecked and used as given (the caller keeps them in bounds and >= 0).
    """
    if not (
        isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.ndim == src.ndim == 1
        and dst.layout == src.layout == "C" and dst.dtype == src.dtype and isinstance(dst.dtype, types.Float)
    ):
        return None

    def codegen(context, builder, signature, args):
        dty, pty, aty, sty, qty = signature.args
        vty = ir.VectorType(context.get_value_type(dty.dtype), LANES)
        dptr = context.make_array(dty)(context, builder, args[0]).data
        sptr = context.make_array(sty)(context, builder, args[3]).data
        dv = builder.bitcast(builder.gep(dptr, [context.cast(builder, args[1], pty, types.intp)]), vty.as_pointer())
        sv = builder.bitcast(builder.gep(sptr, [context.cast(builder, args[4], qty, types.intp)]), vty.as_pointer())
        av = context.cast(builder, args[2], aty, dty.dtype)
        undef = ir.Constant(vty, ir.Undefined)
        first = builder.insert_element(undef, av, ir.Constant(ir.IntType(32), 0))
        splat = builder.shuffle_vector(first, undef, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
        align = dty.dtype.bitwidth // 8
        acc = builder.load(dv, align=align)
        prod = builder.fmul(splat, builder.load(sv, align=align), flags=("contract",))
        builder.store(builder.fadd(acc, prod, flags=("contract",)), dv, align=align)
        return context.get_dummy_value()

    return types.void(dst, p, a, src, q), codegen


@numba.njit(parallel=True, cache=True, nogil=True)
def _count_events(x, counts):
    # counts[b, i] = number of non-zeros of x[:, b, i]
    T, B, I = x.shape
    for b in numba.prange(B):
        n = counts[b]
        n[:] = 0
        for t in range(T):
            r = x[t, b]
            for i in range(I):
                n[i] += r[i] != 0


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather_events(x, start, step, val):
    # the non-zeros of x[:, b, i] into slots start[b, i] ... in time order; x read in its own order
    T, B, I = x.shape
    for b in numba.prange(B):
        e = start[b].copy()
        for t in range(T):
            r = x[t, b]
            for i in range(I):
                v = r[i]
                if v != 0:
                    step[e[i]] = t
                    val[e[i]] = v
                    e[i] += 1


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _event_taps(ptr, step, val, taps, off, dense, T, B, O, front, W, OB, chunks, grad):
    # The event engine's one walk, flat arrays (class _EventLayout for taps [I, O, J8] and off):
    #   grad=False: dense = y, taps = coef:  y[t + d[o, i] + j, b, o] += v * coef[i, o, j]
    #   grad=True:  dense = g, taps += gcoef: gcoef[i, o, j] += v * g[t + d[o, i] + j, b, o]
    # for every event (t, b, i, v) (class docstring of events()), output o and tap j < J8; g is
    # zero outside [0, T). Per block of OB outputs and batch entry b, time runs along the rows of
    # the scratch z [OB, W], so that one event's J8 taps of output o are J8 consecutive floats.
    J8 = len(chunks) * LANES
    I = (ptr.size - 1) // B
    U = numba.uint64  # unsigned indices: no negative-index wraparound code in the inner loop
    nblk = (O + OB - 1) // OB
    scratch = np.zeros((nblk, OB * W), dense.dtype)  # grad: the pads stay zero
    for blk in numba.prange(nblk):
        o0 = blk * OB
        o1 = min(O, o0 + OB)
        z = scratch[blk]
        for b in range(B):
            if grad:
                for t in range(T):
                    row = (t * B + b) * O + o0
                    for k in range(o1 - o0):
                        z[k * W + front + t] = dense[row + k]
            else:
                z[:] = 0
            for i in range(I):
                row = U(i * O)
                for e in range(ptr[b * I + i], ptr[b * I + i + 1]):
                    t, v = U(step[e]), val[e]
                    for o in range(U(o0), U(o1)):
                        s = t + U(off[row + o])
                        q = (row + o) * U(J8)
                        for h in range(len(chunks)):
                            if grad:
                                _axpy_lanes(taps, q + U(h * LANES), v, z, s + U(h * LANES))
                            else:
                                _axpy_lanes(z, s + U(h * LANES), v, taps, q + U(h * LANES))
            if not grad:
                for t in range(T):
                    row = (t * B + b) * O + o0
                    for k in range(o1 - o0):
                        dense[row + k] = z[k * W + front + t]


# --------------------------------------------------------------------------- Gaussian taps
@numba.njit(inline="always", cache=True)
def _gauss_window(p, lo, hi, K, r, J):
    # (c, m_0): the clamped centre and the window's top kernel tap (see gaussian_taps), in p's dtype
    c = min(max(p, lo), hi) + type(lo)(K // 2)
    return c, (K - 1 if J == K else int(np.floor(c)) + r)


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _gauss_taps_kernel(w, P, lo, hi, sigma, K, r, eps, coef, dmin):
    # all arithmetic in the arrays' dtype (float32 exp is half the cost of float64's)
    J = coef.shape[1]
    f = w.dtype.type
    h, e, zero = f(-0.5 / (sigma * sigma)), f(eps), f(0)
    for s in numba.prange(w.size):
        c, top = _gauss_window(P[s], f(lo), f(hi), K, r, J)
        tot = zero
        for j in range(J):
            m = top - j
            u = f(m) - c
            g = np.exp(h * u * u) if 0 <= m < K else zero
            coef[s, j] = g
            tot += g
        a = w[s] / (tot + e)
        for j in range(J):
            coef[s, j] *= a
        dmin[s] = K - 1 - top


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _gauss_taps_grad_kernel(w, P, lo, hi, sigma, K, r, eps, G, gw, gP):
    J = G.shape[1]
    f = w.dtype.type
    h, e, zero, isig2 = f(-0.5 / (sigma * sigma)), f(eps), f(0), f(1 / (sigma * sigma))
    for s in numba.prange(w.size):
        c, top = _gauss_window(P[s], f(lo), f(hi), K, r, J)
        tot = dtot = gg = gdg = zero  # S - eps, S', sum G g, sum G g'
        for j in range(J):
            m = top - j
            if 0 <= m < K:
                u = f(m) - c
                g = np.exp(h * u * u)
                dg = g * u * isig2
                tot += g
                dtot += dg
                gg += G[s, j] * g
                gdg += G[s, j] * dg
        S = tot + e
        gw[s] = gg / S
        gP[s] = w[s] / S * (gdg - dtot / S * gg) if f(lo) <= P[s] <= f(hi) else zero


# --------------------------------------------------------------------------- dense engine
@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _forward_kernel(xp, coef, dmin, y, B, front):
    # y[o, m] = sum_p coef[o, p] * xp[i_p, m + front - (dmin[o, i_p] + j_p) * B], p = i * J + j;
    # front, back: the zero padding of the rows, in elements
    I = xp.shape[0]
    O, N = y.shape
    J = coef.shape[2]
    P = I * J
    cf = coef.reshape(O, P)
    for blk in numba.prange((O + BLOCK - 1) // BLOCK):
        o0 = blk * BLOCK
        o1 = min(O, o0 + BLOCK)
        for o in range(o0, o1):
            y[o, :] = 0
        for p in range(0, P - P % 6, 6):
            i0, i1, i2, i3, i4, i5 = p // J, (p + 1) // J, (p + 2) // J, (p + 3) // J, (p + 4) // J, (p + 5) // J
            for o in range(o0, o1):
                yr = y[o]
                x0 = _src(xp, i0, front - (dmin[o, i0] + p - i0 * J) * B, N)
                x1 = _src(xp, i1, front - (dmin[o, i1] + p + 1 - i1 * J) * B, N)
                x2 = _src(xp, i2, front - (dmin[o, i2] + p + 2 - i2 * J) * B, N)
                x3 = _src(xp, i3, front - (dmin[o, i3] + p + 3 - i3 * J) * B, N)
                x4 = _src(xp, i4, front - (dmin[o, i4] + p + 4 - i4 * J) * B, N)
                x5 = _src(xp, i5, front - (dmin[o, i5] + p + 5 - i5 * J) * B, N)
                c0, c1, c2, c3, c4, c5 = cf[o, p], cf[o, p + 1], cf[o, p + 2], cf[o, p + 3], cf[o, p + 4], cf[o, p + 5]
                for m in range(N):
                    yr[m] += c0 * x0[m] + c1 * x1[m] + c2 * x2[m] + c3 * x3[m] + c4 * x4[m] + c5 * x5[m]
        for p in range(P - P % 6, P):
            i0 = p // J
            for o in range(o0, o1):
                yr = y[o]
                x0 = _src(xp, i0, front - (dmin[o, i0] + p - i0 * J) * B, N)
                c0 = cf[o, p]
                for m in range(N):
                    yr[m] += c0 * x0[m]


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _grad_x_kernel(gyp, coef, dmin, gx, B, back):
    # gx[i, m] = sum_q coef[o_q, i, j_q] * gyp[o_q, m + back + (dmin[o_q, i] + j_q) * B], q = o * J + j
    O = gyp.shape[0]
    I, N = gx.shape
    J = coef.shape[2]
    Q = O * J
    for blk in numba.prange((I + BLOCK - 1) // BLOCK):
        i0 = blk * BLOCK
        i1 = min(I, i0 + BLOCK)
        for i in range(i0, i1):
            gx[i, :] = 0
        for q in range(0, Q - Q % 6, 6):
            o0, o1, o2, o3, o4, o5 = q // J, (q + 1) // J, (q + 2) // J, (q + 3) // J, (q + 4) // J, (q + 5) // J
            j0, j1, j2 = q - o0 * J, q + 1 - o1 * J, q + 2 - o2 * J
            j3, j4, j5 = q + 3 - o3 * J, q + 4 - o4 * J, q + 5 - o5 * J
            for i in range(i0, i1):
                xr = gx[i]
                g0 = _src(gyp, o0, back + (dmin[o0, i] + j0) * B, N)
                g1 = _src(gyp, o1, back + (dmin[o1, i] + j1) * B, N)
                g2 = _src(gyp, o2, back + (dmin[o2, i] + j2) * B, N)
                g3 = _src(gyp, o3, back + (dmin[o3, i] + j3) * B, N)
                g4 = _src(gyp, o4, back + (dmin[o4, i] + j4) * B, N)
                g5 = _src(gyp, o5, back + (dmin[o5, i] + j5) * B, N)
                c0, c1, c2 = coef[o0, i, j0], coef[o1, i, j1], coef[o2, i, j2]
                c3, c4, c5 = coef[o3, i, j3], coef[o4, i, j4], coef[o5, i, j5]
                for m in range(N):
                    xr[m] += c0 * g0[m] + c1 * g1[m] + c2 * g2[m] + c3 * g3[m] + c4 * g4[m] + c5 * g5[m]
        for q in range(Q - Q % 6, Q):
            o0 = q // J
            j0 = q - o0 * J
            for i in range(i0, i1):
                xr = gx[i]
                g0 = _src(gyp, o0, back + (dmin[o0, i] + j0) * B, N)
                c0 = coef[o0, i, j0]
                for m in range(N):
                    xr[m] += c0 * g0[m]


@numba.njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _grad_coef_kernel(gy, xp, dmin, gc, B, front, gy0, N):
    # gc[o, p] = sum_{m < N} gy[o, gy0 + m] * xp[i_p, m + front - (dmin[o, i_p] + j_p) * B], p = i * J + j
    O = gy.shape[0]
    I = xp.shape[0]
    J = gc.shape[2]
    P = I * J
    g = gc.reshape(O, P)
    zero = gy.dtype.type(0)
    for blk in numba.prange((O + BLOCK - 1) // BLOCK):
        o0 = blk * BLOCK
        o1 = min(O, o0 + BLOCK)
        for p in range(0, P - P % 6, 6):
            i0, i1, i2, i3, i4, i5 = p // J, (p + 1) // J, (p + 2) // J, (p + 3) // J, (p + 4) // J, (p + 5) // J
            for o in range(o0, o1):
                gr = _src(gy, o, gy0, N)
                x0 = _src(xp, i0, front - (dmin[o, i0] + p - i0 * J) * B, N)
                x1 = _src(xp, i1, front - (dmin[o, i1] + p + 1 - i1 * J) * B, N)
                x2 = _src(xp, i2, front - (dmin[o, i2] + p + 2 - i2 * J) * B, N)
                x3 = _src(xp, i3, front - (dmin[o, i3] + p + 3 - i3 * J) * B, N)
                x4 = _src(xp, i4, front - (dmin[o, i4] + p + 4 - i4 * J) * B, N)
                x5 = _src(xp, i5, front - (dmin[o, i5] + p + 5 - i5 * J) * B, N)
                a0 = a1 = a2 = a3 = a4 = a5 = zero
                for m in range(N):
                    v = gr[m]
                    a0 += v * x0[m]
                    a1 += v * x1[m]
                    a2 += v * x2[m]
                    a3 += v * x3[m]
                    a4 += v * x4[m]
                    a5 += v * x5[m]
                g[o, p], g[o, p + 1], g[o, p + 2], g[o, p + 3], g[o, p + 4], g[o, p + 5] = a0, a1, a2, a3, a4, a5
        for p in range(P - P % 6, P):
            i0 = p // J
            for o in range(o0, o1):
                gr = _src(gy, o, gy0, N)
                x0 = _src(xp, i0, front - (dmin[o, i0] + p - i0 * J) * B, N)
                a0 = zero
                for m in range(N):
                    a0 += gr[m] * x0[m]
                g[o, p] = a0


@numba.njit(inline="always", cache=True)
def _src(rows, r, start, n):
    """Row ``r`` of ``rows`` from ``start``, ``n`` long: a view, so the inner loops stay contiguous."""
    return rows[r, start : start + n]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _pooled(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor from the buffer pool (int32 as a view of a float32 buffer): the event
    engine's per-step arrays are megabytes, whose page faults on a fresh allocation cost more than
    filling them."""
    if dtype == torch.int32:
        return buffers.empty(shape, torch.float32).view(torch.int32)
    return buffers.empty(shape, dtype)


def _pads(dmin: np.ndarray, J: int) -> tuple[int, int]:
    """Zero steps needed before (the largest delay) and after (the most negative delay) the input."""
    if dmin.size == 0:
        return 0, 0
    return max(int(dmin.max()) + J - 1, 0), max(-int(dmin.min()), 0)


@numba.njit(parallel=True, cache=True, nogil=True)
def _to_rows(x, rows, front):
    # x: [M, C] -> rows[c, front + m] = x[m, c], and zeros outside [front, front + M). Tiles of 64
    # steps of m, so that reads and writes both stream whole cache lines; the last task zeroes the
    # pads (one parallel region, not two).
    M, C = x.shape
    n = (M + 63) // 64
    for t in numba.prange(n + 1):
        if t == n:
            for c in range(C):
                rows[c, :front] = 0
                rows[c, front + M :] = 0
        else:
            for c in range(C):
                r = rows[c]
                for m in range(t * 64, min(M, t * 64 + 64)):
                    r[front + m] = x[m, c]


@numba.njit(parallel=True, cache=True, nogil=True)
def _from_rows(rows, out):
    # rows: [C, M] -> out: [M, C], in tiles so that both sides stream through cache lines
    C, M = rows.shape
    for m0 in numba.prange((M + 63) // 64):
        for m in range(m0 * 64, min(M, m0 * 64 + 64)):
            for c in range(C):
                out[m, c] = rows[c, m]


def _rows(x: torch.Tensor, front: int, back: int) -> torch.Tensor:
    """``[T, B, C]`` -> zero-padded channel rows ``[C, (front + T + back) * B]`` (a pooled buffer).

    Done in numba, not as a torch copy: a torch parallel region right before a numba kernel leaves
    torch's OpenMP threads spinning while the kernel runs (measured: 3x slower kernels here,
    unless ``OMP_WAIT_POLICY=PASSIVE``).
    """
    T, B, C = x.shape
    rows = buffers.empty((C, (front + T + back) * B), x.dtype)
    _to_rows(x.contiguous().view(T * B, C).numpy(), rows.numpy(), front * B)
    return rows


def _unrows(rows: torch.Tensor, T: int, B: int) -> torch.Tensor:
    """Channel rows ``[C, T*B]`` -> time-major ``[T, B, C]``."""
    out = buffers.empty((T * B, rows.shape[0]), rows.dtype)
    _from_rows(rows.numpy(), out.numpy())
    return out.view(T, B, rows.shape[0])
