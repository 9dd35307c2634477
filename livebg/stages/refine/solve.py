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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True, fastmath=True)
def _extra_matvec(rows, cols, wts, xp, out):
    """out -= W_extra x for extra edges in COO form over the grid's nodes.

    ``rows`` are flat indices into ``out`` (node i * w + j), ``cols`` flat
    indices into the padded ``xp``. COO rather than CSR: rows hold ~4
    entries, and a loop per row cost more than the products themselves.
    """
    xf = xp.reshape(-1)
    of = out.reshape(-1)
    for q in range(rows.shape[0]):
        of[rows[q]] -= wts[q] * xf[cols[q]]


@njit(cache=True, nogil=True)
def _planar_directions(wgt):
    """(8, h, w) weights towards the 8 neighbours (0 outside the grid), from the 4 forward ones.

    Order: E, S, SE, SW, W, N, NW, NE (the last four are the first four seen
    from the other end). Planar, so that the stencil runs over contiguous 1D
    rows, which vectorise (an (h, w, 8) layout's stride-8 loads did not: the
    solve ran ~2x slower).
    """
    h, w, _ = wgt.shape
    w8 = np.zeros((8, h, w), np.float32)
    for i in range(h):
        for j in range(w):
            w8[0, i, j] = wgt[i, j, 0]
            w8[1, i, j] = wgt[i, j, 1]
            w8[2, i, j] = wgt[i, j, 2]
            w8[3, i, j] = wgt[i, j, 3]
            if j >= 1:
                w8[4, i, j] = wgt[i, j - 1, 0]
            if i >= 1:
                w8[5, i, j] = wgt[i - 1, j, 1]
                if j >= 1:
                    w8[6, i, j] = wgt[i - 1, j - 1, 2]
                if j + 1 < w:
                    w8[7, i, j] = wgt[i - 1, j + 1, 3]
    return w8


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _stencil_row(w8, diag, xp, out, i):
    """Row i of out = (diag - W) x, x stored with a zero border (xp: (h+2, w+2)).

    Returns the row's share of x . out (CG's q . Aq, fused into the pass).
    """
    w = diag.shape[1]
    up = xp[i]
    mid = xp[i + 1]
    dn = xp[i + 2]
    u0, u1, u2 = up[0:w], up[1:w + 1], up[2:w + 2]
    m0, m1, m2 = mid[0:w], mid[1:w + 1], mid[2:w + 2]
    d0, d1, d2 = dn[0:w], dn[1:w + 1], dn[2:w + 2]
    e, s, se, sw = w8[0, i], w8[1, i], w8[2, i], w8[3, i]
    we, n, nw, ne = w8[4, i], w8[5, i], w8[6, i], w8[7, i]
    dg = diag[i]
    o = out[i]
    acc = np.float32(0.0)
    for j in range(w):
        v = (dg[j] * m1[j] - e[j] * m2[j] - s[j] * d1[j] - se[j] * d2[j] - sw[j] * d0[j]
             - we[j] * m0[j] - n[j] * u1[j] - nw[j] * u0[j] - ne[j] * u2[j])
        o[j] = v
        acc += m1[j] * v
    return acc


@njit(cache=True, nogil=True, fastmath=True)
def _solve_grid(wgt, conf, p, x0, lam, iters, ex_rows, ex_cols, ex_w):
    h, w = p.shape
    w8 = _planar_directions(wgt)
    diag = np.empty((h, w), np.float32)
    b = np.empty((h, w), np.float32)
    minv = np.empty((h, w), np.float32)
    ex_deg = np.zeros(h * w, np.float32)
    for q in range(ex_rows.shape[0]):
        ex_deg[ex_rows[q]] += ex_w[q]
    for i in range(h):
        for j in range(w):
            dg = 0.0
            for d in range(8):
                dg += w8[d, i, j]
            dg += ex_deg[i * w + j]
            diag[i, j] = dg + lam * conf[i, j] + 1e-6
            b[i, j] = lam * conf[i, j] * p[i, j]
            minv[i, j] = 1.0 / diag[i, j]
    x = x0.astype(np.float32)
    qp = np.zeros((h + 2, w + 2), np.float32)
    qp[1:h + 1, 1:w + 1] = x
    ax = np.empty((h, w), np.float32)
    for i in range(h):
        _stencil_row(w8, diag, qp, ax, i)
    _extra_matvec(ex_rows, ex_cols, ex_w, qp, ax)
    r = b - ax
    z = r * minv
    qp[1:h + 1, 1:w + 1] = z
    rz = np.sum(r * z)
    bn = np.sqrt(np.sum(b * b)) + 1e-12
    aq = ax
    for _ in range(iters):
        if rz <= 1e-20:
            break
        qaq = 0.0
        for i in range(h):
            qaq += _stencil_row(w8, diag, qp, aq, i)
        if ex_rows.shape[0] > 0:
            _extra_matvec(ex_rows, ex_cols, ex_w, qp, aq)
            qaq = 0.0
            for i in range(h):
                qr = qp[i + 1, 1:w + 1]
                ar = aq[i]
                for j in range(w):
                    qaq += qr[j] * ar[j]
        if qaq <= 0.0:
            break
        step = np.float32(rz / qaq)
        rz_new = 0.0
        for i in range(h):
            xr, rw, zr, mr, ar = x[i], r[i], z[i], minv[i], aq[i]
            qr = qp[i + 1, 1:w + 1]
            for j in range(w):
                xr[j] += step * qr[j]
                rj = rw[j] - step * ar[j]
                rw[j] = rj
                zj = rj * mr[j]
                zr[j] = zj
                rz_new += rj * zj
        beta = np.float32(rz_new / rz)
        rz = rz_new
        for i in range(h):
            qr = qp[i + 1, 1:w + 1]
            zr = z[i]
            for j in range(w):
                qr[j] = zr[j] + beta * qr[j]
    res = np.sqrt(np.sum(r * r)) / bn
    for i in range(h):
        xr = x[i]
        for j in range(w):
            xr[j] = min(max(xr[j], np.float32(0.0)), np.float32(1.0))
    return x, res


_NO_EXTRA = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))


def solve_confidence(wgt: np.ndarray, conf: np.ndarray, p: np.ndarray, x0: np.ndarray,
                     lam: float, iters: int, extra: tuple | None = None):
    """Solve (L + lam C) a = lam C p by Jacobi-preconditioned CG from x0; returns (a, residual).

    ``wgt`` (h, w, 4) holds the forward edge weights of the 8-neighbour grid
    (:func:`livebg.stages.refine.graph.grid_weights`); ``extra`` optional further
    symmetric edges (non-local ones) as CSR ``(indptr, indices, data)`` over
    the nodes ``i * w + j``. The grid part runs as a stencil (several times
    faster than a general sparse product). The result is clipped to [0, 1];
    ``residual`` is ||r|| / ||b|| after the last step.
    """
    if extra is None:
        ex = _NO_EXTRA
    else:
        w = p.shape[1]
        indptr = extra[0]
        idx = extra[1].astype(np.int64)
        rows = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int32), np.diff(indptr))
        ex = (rows, ((idx // w + 1) * (w + 2) + idx % w + 1).astype(np.int32),
              np.ascontiguousarray(extra[2], dtype=np.float32))
    return _solve_grid(wgt, conf, p, x0, np.float32(lam), int(iters), *ex)


@njit(cache=True, nogil=True, fastmath=True)
def _csr_matvec(indptr, indices, data, diag, x, out):
    """out = (diag - W) x for W in CSR form."""
    n = diag.shape[0]
    for a in range(n):
        s = diag[a] * x[a]
        for q in range(indptr[a], indptr[a + 1]):
            s -= data[q] * x[indices[q]]
        out[a] = s


@njit(cache=True, nogil=True, fastmath=True)
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
