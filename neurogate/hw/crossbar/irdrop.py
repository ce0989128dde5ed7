r"""IR drop: the voltage lost on a tile's row and column wires, to first order and exactly.

Layout of a tile with :math:`R` rows and :math:`P` physical columns (a differential pair is two
adjacent columns :math:`G^+_j, G^-_j`; the reference-column mode puts its reference column last):
each row is driven at its left end (column 0) and every column is read at its bottom end (row
:math:`R-1`) by a sense amplifier held at virtual ground. Every wire segment between neighbouring
cells, and between the end cell and the driver or amplifier, has resistance :math:`r` (ohm).

Along one wire, with cells at positions :math:`0..n-1` counted from its driven end and cell
currents :math:`I_m`, segment :math:`k` carries :math:`\sum_{m \ge k} I_m`, so the wire's voltage
at position :math:`p` is off by :math:`r \sum_m I_m (\min(m, p) + 1)`. Substituting the ideal
currents :math:`I_{ij} = V_i G_{ij}` once (first order in :math:`r G`), the row wire lowers cell
:math:`(i, j)`'s voltage by :math:`r V_i B_{ij}` and the column wire raises its bottom node by
:math:`r \sum_m V_m G_{mj} (\min(q_m, q_i) + 1)`, :math:`q_i = R - 1 - i`. Summing the cell currents
on a column, both corrections are linear in the inputs:

.. math::

    I_j \approx \sum_i V_i\, G_{ij} \bigl(1 - r (A_{ij} + B_{ij})\bigr), \qquad
    A_{ij} = \sum_m (\min(q_m, q_i) + 1)\, G_{mj}, \qquad
    B_{ij} = \sum_n (\min(n, j) + 1)\, G_{in},

an input-independent *effective conductance* (error :math:`O((r G R P)^2)`). :func:`effective`
returns it; :func:`exact_currents` solves the resistive network (nodal analysis, sparse) and is
the reference the first-order model is tested against. Units: :math:`G` in uS, :math:`r` in ohm,
so :math:`r G` carries a factor :math:`10^{-6}`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["effective", "exact_currents", "physical", "split"]


def physical(g_pos: np.ndarray, g_neg: np.ndarray) -> np.ndarray:
    """The tile's devices in layout order ``[R, P]``: interleaved pairs ``G+_0, G-_0, G+_1, ...``,
    or ``G_0 .. G_{C-1}, G_ref`` when ``g_neg`` is one reference column."""
    if g_neg.shape[1] == 1 and g_pos.shape[1] != 1:
        return np.concatenate([g_pos, g_neg], axis=1)
    out = np.empty((g_pos.shape[0], 2 * g_pos.shape[1]))
    out[:, 0::2], out[:, 1::2] = g_pos, g_neg
    return out


def split(g: np.ndarray, g_pos_shape: tuple[int, int], g_neg_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`physical`."""
    if g_neg_shape[1] == 1 and g_pos_shape[1] != 1:
        return g[:, :-1], g[:, -1:]
    return g[:, 0::2], g[:, 1::2]


def _distance_kernel(n: int) -> np.ndarray:
    """``K[m, p] = min(m, p) + 1``: shared wire segments between positions ``m`` and ``p``."""
    i = np.arange(n)
    return np.minimum.outer(i, i) + 1.0


def effective(g: np.ndarray, r_wire: float) -> np.ndarray:
    """First-order effective conductances ``[R, P]`` (uS) of the physical tile ``g`` (see the
    module docstring); ``r_wire`` in ohm per segment."""
    g = np.asarray(g, np.float64)
    if not r_wire:
        return g
    rows = g.shape[0]
    b = g @ _distance_kernel(g.shape[1])  # row wire: B_ij = sum_n (min(n, j) + 1) G_in
    kq = _distance_kernel(rows)[::-1, ::-1]  # positions counted from the bottom (sense amplifier)
    a = kq @ g  # column wire: A_ij = sum_m (min(q_m, q_i) + 1) G_mj
    return g * (1.0 - r_wire * 1e-6 * (a + b))


def exact_currents(v: np.ndarray, g: np.ndarray, r_wire: float) -> np.ndarray:
    """Column currents ``[P]`` (uA) of the physical tile ``g`` ``[R, P]`` (uS) driven by row voltages
    ``v`` ``[R]`` (V), wires of ``r_wire`` ohm per segment, solved exactly by nodal analysis."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    g = np.asarray(g, np.float64) * 1e-6  # siemens
    rows, cols = g.shape
    gw = 1.0 / r_wire
    n = rows * cols

    def rn(i: int, j: int) -> int:  # row-wire node
        return i * cols + j

    def cn(i: int, j: int) -> int:  # column-wire node
        return n + i * cols + j

    a = sparse.lil_matrix((2 * n, 2 * n))
    rhs = np.zeros(2 * n)
    for i in range(rows):
        for j in range(cols):
            r, c = rn(i, j), cn(i, j)
            # row node: left neighbour (or the driver), right neighbour, the cell
            a[r, r] += gw + g[i, j]
            if j == 0:
                rhs[r] += gw * v[i]
            else:
                a[r, rn(i, j - 1)] -= gw
            if j + 1 < cols:
                a[r, r] += gw
                a[r, rn(i, j + 1)] -= gw
            a[r, c] -= g[i, j]
            # column node: neighbour towards the amplifier (or virtual ground), the one above, the cell
            a[c, c] += gw + g[i, j]
            if i + 1 < rows:
                a[c, cn(i + 1, j)] -= gw
            if i > 0:
                a[c, c] += gw
                a[c, cn(i - 1, j)] -= gw
            a[c, r] -= g[i, j]
    u = spsolve(a.tocsr(), rhs)
    return gw * u[n + (rows - 1) * cols: n + rows * cols] * 1e6  # uA into the virtual ground
