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
def _extra_matvec(rows, ptr, pidx, wts, xp, out):
    """out -= W_extra x for extra edges in CSR over the grid's nodes (node i*w+j).

    Only the listed ``rows`` have entries; ``pidx`` holds the columns as flat
    indices into the padded ``xp``.
    """
    w = out.shape[1]
    xf = xp.reshape(-1)
    for a in rows:
        s = np.float32(0.0)
        for q in range(ptr[a], ptr[a + 1]):
            s += wts[q] * xf[pidx[q]]
        i = a // w
        out[i, a - i * w] -= s


@njit(cache=True, fastmath=True)
def _solve_grid(wgt, conf, p, x0, lam, iters, ex_rows, ex_ptr, ex_idx, ex_w):
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
            if ex_ptr.shape[0] > 0:
                a = i * w + j
                for q in range(ex_ptr[a], ex_ptr[a + 1]):
                    dg += ex_w[q]
            diag[i, j] = dg + lam * conf[i, j] + 1e-6
            b[i, j] = lam * conf[i, j] * p[i, j]
            minv[i, j] = 1.0 / diag[i, j]
    x = x0.astype(np.float32)
    qp = np.zeros((h + 2, w + 2), np.float32)
    qp[1:h + 1, 1:w + 1] = x
    ax = np.empty((h, w), np.float32)
    _matvec_padded(w8, diag, qp, ax)
    _extra_matvec(ex_rows, ex_ptr, ex_idx, ex_w, qp, ax)
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
        _extra_matvec(ex_rows, ex_ptr, ex_idx, ex_w, qp, aq)
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


_NO_EXTRA = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32),
             np.zeros(0, np.float32))


def solve_confidence(wgt: np.ndarray, conf: np.ndarray, p: np.ndarray, x0: np.ndarray,
                     lam: float, iters: int, extra: tuple | None = None):
    """Solve (L + lam C) a = lam C p by Jacobi-preconditioned CG from x0; returns (a, residual).

    ``wgt`` (h, w, 4) holds the forward edge weights of the 8-neighbour grid
    (:func:`livebg.refine.graph.grid_weights`); ``extra`` optional further
    symmetric edges (non-local ones) as CSR ``(indptr, indices, data)`` over
    the nodes ``i * w + j``. The grid part runs as a stencil (several times
    faster than a general sparse product). The result is clipped to [0, 1];
    ``residual`` is ||r|| / ||b|| after the last step.
    """
    if extra is None:
        ex = _NO_EXTRA
    else:
        w = p.shape[1]
        idx = extra[1].astype(np.int64)
        ex = (np.flatnonzero(np.diff(extra[0])), extra[0],
              ((idx // w + 1) * (w + 2) + idx % w + 1).astype(np.int32), extra[2])
    return _solve_grid(wgt, conf, p, x0, np.float32(lam), int(iters), *ex)


@njit(cache=True, fastmath=True)
def _csr_matvec(indptr, indices, data, diag, x, out):
    """out = (diag - W) x for W in CSR form."""
    n = diag.shape[0]
    for a in range(n):
        s = diag[a] * x[a]
        for q in range(indptr[a], indptr[a + 1]):
            s -= data[q] * x[indices[q]]
        out[a] = s


@njit(cache=True, fastmath=True)
def solve_confidence_csr(indptr, indices, data, conf, p, x0, lam, iters):
    """:func:`solve_confidence` on a general graph: W (n x n, symmetric) in CSR form.

    Used for superpixel graphs and for the grid with non-local edges; on a
    plain grid it gives the same answer as the stencil version (tested).
    """
    n = p.shape[0]
    diag = np.empty(n, np.float32)
    b = np.empty(n, np.float32)
    minv = np.empty(n, np.float32)
    for a in range(n):
        dg = 0.0
        for q in range(indptr[a], indptr[a + 1]):
            dg += data[q]
        diag[a] = dg + lam * conf[a] + 1e-6
        b[a] = lam * conf[a] * p[a]
        minv[a] = 1.0 / diag[a]
    x = x0.astype(np.float32)
    ax = np.empty(n, np.float32)
    _csr_matvec(indptr, indices, data, diag, x, ax)
    r = b - ax
    z = r * minv
    q_ = z.copy()
    rz = np.sum(r * z)
    bn = np.sqrt(np.sum(b * b)) + 1e-12
    aq = ax
    for _ in range(iters):
        if rz <= 1e-20:
            break
        _csr_matvec(indptr, indices, data, diag, q_, aq)
        qaq = np.sum(q_ * aq)
        if qaq <= 0.0:
            break
        step = rz / qaq
        rz_new = 0.0
        for a in range(n):
            x[a] += step * q_[a]
            r[a] -= step * aq[a]
            z[a] = r[a] * minv[a]
            rz_new += r[a] * z[a]
        beta = rz_new / rz
        rz = rz_new
        for a in range(n):
            q_[a] = z[a] + beta * q_[a]
    res = np.sqrt(np.sum(r * r)) / bn
    for a in range(n):
        x[a] = min(max(x[a], np.float32(0.0)), np.float32(1.0))
    return x, res
