"""The confidence-weighted solve on the grid graph, compiled with numba.

The matte ``a`` at node level minimises

    a^T L a + lambda * sum_i c_i (a_i - p_i)^2,     L = D - W (graph Laplacian),

i.e. it solves ``(L + lambda C) a = lambda C p`` with ``C = diag(c)``: faithful
to the net's probability ``p`` where the net is confident (c near 1), and
spreading along the graph's colour/semantic edges where it is not. This is the
two-layer case of Semantic Soft Segmentation's sparsification, which reduces to
one quadratic. It is solved by a few Jacobi-preconditioned conjugate-gradient
steps; ``n`` steps give the best solution inside the n-dimensional Krylov
subspace of this frame's graph, a reduced-rank solve that adapts to the frame
(unlike a fixed handful of eigenvectors). Starting from the previous frame's
solution (warm start) lets repeated or slowly changing frames converge further.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def degree(wgt):
    """Weighted degree of every node (sum of its 8 edge weights)."""
    h, w, _ = wgt.shape
    d = np.zeros((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            if j + 1 < w:
                d[i, j] += wgt[i, j, 0]
                d[i, j + 1] += wgt[i, j, 0]
            if i + 1 < h:
                d[i, j] += wgt[i, j, 1]
                d[i + 1, j] += wgt[i, j, 1]
                if j + 1 < w:
                    d[i, j] += wgt[i, j, 2]
                    d[i + 1, j + 1] += wgt[i, j, 2]
                if j >= 1:
                    d[i, j] += wgt[i, j, 3]
                    d[i + 1, j - 1] += wgt[i, j, 3]
    return d


@njit(cache=True)
def _all_directions(wgt):
    """(h, w, 8) weights towards the 8 neighbours (0 outside the grid), from the 4 forward ones.

    Order: E, S, SE, SW, W, N, NW, NE (the last four are the first four seen
    from the other end).
    """
    h, w, _ = wgt.shape
    w8 = np.zeros((h, w, 8), np.float32)
    for i in range(h):
        for j in range(w):
            w8[i, j, 0] = wgt[i, j, 0]
            w8[i, j, 1] = wgt[i, j, 1]
            w8[i, j, 2] = wgt[i, j, 2]
            w8[i, j, 3] = wgt[i, j, 3]
            if j >= 1:
                w8[i, j, 4] = wgt[i, j - 1, 0]
            if i >= 1:
                w8[i, j, 5] = wgt[i - 1, j, 1]
                if j >= 1:
                    w8[i, j, 6] = wgt[i - 1, j - 1, 2]
                if j + 1 < w:
                    w8[i, j, 7] = wgt[i - 1, j + 1, 3]
    return w8


@njit(cache=True, fastmath=True)
def _matvec_padded(w8, diag, xp, out):
    """out = (diag - W) x for x stored with a zero border of one node (xp: (h+2, w+2))."""
    h, w = diag.shape
    for i in range(h):
        for j in range(w):
            y = i + 1
            x = j + 1
            out[i, j] = (diag[i, j] * xp[y, x]
                         - w8[i, j, 0] * xp[y, x + 1] - w8[i, j, 1] * xp[y + 1, x]
                         - w8[i, j, 2] * xp[y + 1, x + 1] - w8[i, j, 3] * xp[y + 1, x - 1]
                         - w8[i, j, 4] * xp[y, x - 1] - w8[i, j, 5] * xp[y - 1, x]
                         - w8[i, j, 6] * xp[y - 1, x - 1] - w8[i, j, 7] * xp[y - 1, x + 1])


@njit(cache=True, fastmath=True)
def solve_confidence(wgt, conf, p, x0, lam, iters):
    """Solve (L + lam C) a = lam C p by Jacobi-preconditioned CG from x0; returns (a, residual).

    ``wgt`` (h, w, 4) holds the forward edge weights of the 8-neighbour grid
    (:func:`livebg.refine.graph.grid_weights`). The result is clipped to
    [0, 1]; ``residual`` is ||r|| / ||b|| after the last step.
    """
    h, w = p.shape
    w8 = _all_directions(wgt)
    diag = np.empty((h, w), np.float32)
    b = np.empty((h, w), np.float32)
    minv = np.empty((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            dg = 0.0
            for d in range(8):
                dg += w8[i, j, d]
            diag[i, j] = dg + lam * conf[i, j] + 1e-6
            b[i, j] = lam * conf[i, j] * p[i, j]
            minv[i, j] = 1.0 / diag[i, j]
    x = x0.astype(np.float32)
    qp = np.zeros((h + 2, w + 2), np.float32)
    qp[1:h + 1, 1:w + 1] = x
    ax = np.empty((h, w), np.float32)
    _matvec_padded(w8, diag, qp, ax)
    r = b - ax
    z = r * minv
    qp[1:h + 1, 1:w + 1] = z
    rz = np.sum(r * z)
    bn = np.sqrt(np.sum(b * b)) + 1e-12
    aq = ax
    for _ in range(iters):
        if rz <= 1e-20:
            break
        _matvec_padded(w8, diag, qp, aq)
        qaq = 0.0
        for i in range(h):
            for j in range(w):
                qaq += qp[i + 1, j + 1] * aq[i, j]
        if qaq <= 0.0:
            break
        step = rz / qaq
        rz_new = 0.0
        for i in range(h):
            for j in range(w):
                x[i, j] += step * qp[i + 1, j + 1]
                r[i, j] -= step * aq[i, j]
                z[i, j] = r[i, j] * minv[i, j]
                rz_new += r[i, j] * z[i, j]
        beta = rz_new / rz
        rz = rz_new
        for i in range(h):
            for j in range(w):
                qp[i + 1, j + 1] = z[i, j] + beta * qp[i + 1, j + 1]
    res = np.sqrt(np.sum(r * r)) / bn
    for i in range(h):
        for j in range(w):
            x[i, j] = min(max(x[i, j], np.float32(0.0)), np.float32(1.0))
    return x, res
