"""Tracked eigenvectors of the node graph's normalised Laplacian, and the fit to the net.

The ``k`` eigenvectors of ``L_sym = I - D^-1/2 W D^-1/2`` with the smallest
eigenvalues span Semantic Soft Segmentation's soft segments. Computing them
afresh every frame is what makes SSS slow; here they are *tracked*: each frame
does one block-Krylov Rayleigh-Ritz step (the subspace iteration of LOBPCG
without its bookkeeping) on this frame's graph, starting from the previous
frame's vectors (node indices are stable across frames). The operator is
``B = (I + D^-1/2 W D^-1/2) / 2``, whose largest eigenvalues are the smallest
of ``L_sym``; the search space is ``[V, BV, B^2 V]``.

The matte is then the combination of the random-walk vectors ``D^-1/2 V``
closest to the net's probability where the net is confident (a k x k solve).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Everything on the per-frame path is numba loops or k x k LAPACK: numpy's
# threaded BLAS on (n x 3k) blocks was 100x slower on a loaded 2-core machine.


@njit(cache=True, nogil=True)
def degree_scale(indptr, data):
    """d^-1/2 (n,) float64 of the CSR graph W."""
    n = indptr.shape[0] - 1
    out = np.empty(n, np.float64)
    for a in range(n):
        s = 1e-9
        for q in range(indptr[a], indptr[a + 1]):
            s += data[q]
        out[a] = 1.0 / np.sqrt(s)
    return out


@njit(cache=True, nogil=True, fastmath=True)
def apply_b(indptr, indices, data, dis, x):
    """B X for B = (I + D^-1/2 W D^-1/2) / 2, X (n, m) float64."""
    n, m = x.shape
    out = np.empty((n, m), np.float64)
    for a in range(n):
        for c in range(m):
            out[a, c] = 0.5 * x[a, c]
        for q in range(indptr[a], indptr[a + 1]):
            b = indices[q]
            f = 0.5 * dis[a] * data[q] * dis[b]
            for c in range(m):
                out[a, c] += f * x[b, c]
    return out


@njit(cache=True, nogil=True, fastmath=True)
def orthonormalise(x):
    """Columns of X (n, m) made orthonormal in place (modified Gram-Schmidt, twice);
    returns the number of columns kept (near-dependent ones are dropped to the end)."""
    n, m = x.shape
    keep = 0
    for c in range(m):
        for _ in range(2):
            for d in range(keep):
                s = 0.0
                for a in range(n):
                    s += x[a, d] * x[a, c]
                for a in range(n):
                    x[a, c] -= s * x[a, d]
        s = 0.0
        for a in range(n):
            s += x[a, c] * x[a, c]
        s = np.sqrt(s)
        if s < 1e-8:
            continue
        for a in range(n):
            x[a, keep] = x[a, c] / s
        keep += 1
    return keep


@njit(cache=True, nogil=True, fastmath=True)
def gram(x, y):
    """X^T Y (m, p) by loops."""
    n, m = x.shape
    p = y.shape[1]
    out = np.zeros((m, p), np.float64)
    for a in range(n):
        for i in range(m):
            xi = x[a, i]
            for j in range(p):
                out[i, j] += xi * y[a, j]
    return out


@njit(cache=True, nogil=True, fastmath=True)
def combine(x, y):
    """X Y: (n, m) x (m, p) by loops."""
    n, m = x.shape
    p = y.shape[1]
    out = np.zeros((n, p), np.float64)
    for a in range(n):
        for i in range(m):
            xi = x[a, i]
            for j in range(p):
                out[a, j] += xi * y[i, j]
    return out


def fresh_eigenvectors(indptr, indices, data, k: int,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(V (n, k), eigenvalues of L_sym (k,), ascending): the cold start.

    Shift-invert Lanczos (``scipy eigsh``); a dense solve for small graphs.
    """
    try:  # only this option needs scipy; the core does not depend on it
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla
    except ImportError:
        raise ImportError("refine option eigen needs scipy: pip install scipy") from None
    n = len(indptr) - 1
    k = min(k, n - 2)
    dis = degree_scale(indptr, data)
    w = sp.csr_matrix((data.astype(np.float64), indices, indptr), shape=(n, n))
    lsym = (sp.identity(n) - sp.diags(dis) @ w @ sp.diags(dis)).tocsc()
    if n <= 400:
        vals, vecs = np.linalg.eigh(lsym.toarray())
        return np.ascontiguousarray(vecs[:, :k]), vals[:k]
    v0 = np.random.default_rng(seed).standard_normal(n)
    # shift-invert just below 0: the smallest eigenvalues converge in a few steps
    vals, vecs = spla.eigsh(lsym, k=k, sigma=-1e-3, which="LM", v0=v0, tol=1e-8)
    order = np.argsort(vals)
    return np.ascontiguousarray(vecs[:, order]), vals[order]


def track_eigenvectors(indptr, indices, data, v: np.ndarray,
                       steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rayleigh-Ritz on span[V, BV, B^2 V], ``steps`` times: (V (n, k) orthonormal,
    eigenvalues of L_sym (k,), ascending)."""
    dis = degree_scale(indptr, data)
    k = v.shape[1]
    vals = np.zeros(k)
    for _ in range(steps):
        bv = apply_b(indptr, indices, data, dis, v)
        q = np.hstack([v, bv, apply_b(indptr, indices, data, dis, bv)])
        m = orthonormalise(q)
        q = np.ascontiguousarray(q[:, :m])
        t = gram(q, apply_b(indptr, indices, data, dis, q))
        ev, y = np.linalg.eigh(0.5 * (t + t.T))
        y = np.ascontiguousarray(y[:, ::-1][:, :k])
        v = combine(q, y)
        vals = ev[::-1][:k]
    return v, 2.0 * (1.0 - vals)


def fit_to_probability(v: np.ndarray, dis: np.ndarray, p: np.ndarray, conf: np.ndarray,
                       ridge: float = 1e-4) -> np.ndarray:
    """The combination of the random-walk eigenvectors ``D^-1/2 V`` nearest ``p`` in the
    confidence-weighted least-squares sense, clipped to [0, 1], float32 (n,)."""
    e = v * dis[:, None]
    e /= np.sqrt((e * e).sum(axis=0)) + 1e-12
    ec = np.ascontiguousarray(e * conf[:, None])
    g = gram(e, ec) + ridge * np.eye(e.shape[1])
    y = np.linalg.solve(g, gram(ec, np.ascontiguousarray(p, np.float64)[:, None]))
    return np.clip(combine(e, y)[:, 0], 0.0, 1.0).astype(np.float32)
