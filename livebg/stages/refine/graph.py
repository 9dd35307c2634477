"""Node graphs: the regular grid of superpixels, and general superpixel graphs.

**Grid**: each node is a block of the frame (at 1280x720, an 8x8 block: a
160x90 grid) carrying the block's mean Lab colour. Every node is joined to its
8 neighbours with weight

    w = exp(-|dLab|^2 / (2 sigma^2))   (x 1/sqrt 2 on diagonals)

(:func:`grid_weights`; its optional multiplicative feature factor
``exp(-|df|^2 / (2 sigma_f^2))`` is no longer used by the refiner). Weights are
stored per node for the 4 "forward" directions (E, S, SE, SW); the other 4 are
the same edges seen from the other end.

**Semantic edges** (Aksoy et al. 2018) are *added* to the spatial ones:
``weight * max(0, erf(20 (1 - |f_a - f_b| - 0.85)))`` with ``f`` the net's
probability and the first principal components of its inner features, scaled
to [0, 1] (:func:`add_semantic_grid`, :func:`add_semantic`).

**General graphs** (SLIC superpixels, or the grid with non-local edges) keep
spatial neighbours in a 7x7 slot table per node and are gathered into one
symmetric CSR matrix (:func:`build_csr`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# forward directions: (dy, dx) = E, S, SE, SW
DIRS = ((0, 1), (1, 0), (1, 1), (1, -1))


@njit(cache=True, nogil=True)
def grid_weights(lab, feat, sigma, sigma_f, diag):
    """Edge weights (h, w, 4) of the 8-neighbour grid; feat (h, w, c) or c == 0 for none."""
    h, w, _ = lab.shape
    c = feat.shape[2]
    out = np.zeros((h, w, 4), np.float32)
    g = -0.5 / (sigma * sigma)
    gf = -0.5 / (sigma_f * sigma_f) if c > 0 else 0.0
    for i in range(h):
        for j in range(w):
            for d in range(4):
                if d == 0:
                    di, dj, s = 0, 1, 1.0
                elif d == 1:
                    di, dj, s = 1, 0, 1.0
                elif d == 2:
                    di, dj, s = 1, 1, diag
                else:
                    di, dj, s = 1, -1, diag
                y = i + di
                x = j + dj
                if y >= h or x < 0 or x >= w:
                    continue
                e = 0.0
                for k in range(3):
                    t = lab[i, j, k] - lab[y, x, k]
                    e += t * t
                ef = 0.0
                for k in range(c):
                    t = feat[i, j, k] - feat[y, x, k]
                    ef += t * t
                out[i, j, d] = s * np.exp(g * e + gf * ef)
    return out


# ---------------------------------------------------------------------------
# General node graphs (superpixels, or the grid with extra edges): spatial
# neighbours in a 7x7 slot table per node (:mod:`livebg.stages.refine.superpixels`),
# semantic affinity added on those, non-local colour edges
# (:mod:`livebg.stages.refine.nonlocal_edges`), all gathered into one symmetric CSR
# matrix for the solve.


@njit(cache=True, nogil=True, fastmath=True)
def slot_weights(cen, boundary, gx, sigma, cell):
    """Spatial edge weights (n, 49) of a superpixel graph.

    ``w = exp(-|dLab|^2 / (2 sigma^2)) * b / cell``: colour affinity times the
    shared boundary length ``b`` in units of the cell side ``cell``, so that a
    grid of square superpixels gets weight 1 x affinity per side, like the
    plain grid, and corner contacts count little.
    """
    n = cen.shape[0]
    out = np.zeros((n, 49), np.float32)
    g = -0.5 / (sigma * sigma)
    ic = 1.0 / cell
    for a in range(n):
        ay = a // gx
        ax = a - ay * gx
        for s in range(49):
            bl = boundary[a, s]
            if bl <= 0.0:
                continue
            b = (ay + s // 7 - 3) * gx + ax + s % 7 - 3
            e = 0.0
            for k in range(3):
                t = cen[a, k] - cen[b, k]
                e += t * t
            out[a, s] = np.exp(g * e) * bl * ic
    return out


@njit(cache=True, nogil=True, inline="always")
def _semantic_affinity(feat, a, b, steep, margin):
    """SSS's semantic affinity erf(steep (1 - ||f_a - f_b|| - margin)), in [-1, 1]."""
    e = 0.0
    for k in range(feat.shape[1]):
        t = feat[a, k] - feat[b, k]
        e += t * t
    return math.erf(steep * (1.0 - math.sqrt(e) - margin))


@njit(cache=True, nogil=True, fastmath=True)
def add_semantic(slots, feat, gx, weight, steep, margin):
    """slots += weight * max(0, erf(steep * (1 - |f_a - f_b| - margin))) on existing edges.

    The semantic affinity of Aksoy et al. 2018 (steep 20, margin 0.85, on
    features normalised to [0, 1]), clipped at 0: their negative (repulsive)
    values would make the Laplacian indefinite.
    """
    n = feat.shape[0]
    for a in range(n):
        ay = a // gx
        ax = a - ay * gx
        for s in range(49):
            if slots[a, s] <= 0.0:
                continue
            b = (ay + s // 7 - 3) * gx + ax + s % 7 - 3
            v = _semantic_affinity(feat, a, b, steep, margin)
            if v > 0.0:
                slots[a, s] += weight * v
    return slots


@njit(cache=True, nogil=True)
def build_csr(slots, gx, nl_idx, nl_w):
    """Symmetric CSR (indptr, indices, data) from slot edges and directed non-local edges.

    ``nl_idx`` (n, k) int32 (-1: none) and ``nl_w`` (n, k) are each node's
    non-local neighbours; the matrix holds ``(A + A^T) / 2`` of them, so a pair
    that picked each other is counted with its full weight, one that was
    picked one way with half of it. ``k`` may be 0.
    """
    n = slots.shape[0]
    ns = slots.shape[1]  # 49, or 0 for the non-local edges alone
    kn = nl_idx.shape[1]
    cnt = np.zeros(n + 1, np.int64)
    for a in range(n):
        for s in range(ns):
            if slots[a, s] > 0.0:
                cnt[a + 1] += 1
        for q in range(kn):
            b = nl_idx[a, q]
            if b >= 0:
                cnt[a + 1] += 1
                cnt[b + 1] += 1
    indptr = np.cumsum(cnt)
    nnz = indptr[n]
    indices = np.empty(nnz, np.int32)
    data = np.empty(nnz, np.float32)
    fill = indptr[:n].copy()
    for a in range(n):
        ay = a // gx
        ax = a - ay * gx
        for s in range(ns):
            v = slots[a, s]
            if v > 0.0:
                indices[fill[a]] = (ay + s // 7 - 3) * gx + ax + s % 7 - 3
                data[fill[a]] = v
                fill[a] += 1
        for q in range(kn):
            b = nl_idx[a, q]
            if b >= 0:
                v = 0.5 * nl_w[a, q]
                indices[fill[a]] = b
                data[fill[a]] = v
                fill[a] += 1
                indices[fill[b]] = a
                data[fill[b]] = v
                fill[b] += 1
    return indptr, indices, data


@njit(cache=True, nogil=True, fastmath=True)
def add_semantic_grid(wgt, feat, weight, steep, margin):
    """:func:`add_semantic` on the grid's forward weights (h, w, 4); feat (h * w, c)."""
    h, w, _ = wgt.shape
    for i in range(h):
        for j in range(w):
            a = i * w + j
            for d in range(4):
                if d == 0:
                    y, x = i, j + 1
                elif d == 1:
                    y, x = i + 1, j
                elif d == 2:
                    y, x = i + 1, j + 1
                else:
                    y, x = i + 1, j - 1
                if y >= h or x < 0 or x >= w:
                    continue
                b = y * w + x
                v = _semantic_affinity(feat, a, b, steep, margin)
                if v > 0.0:
                    wgt[i, j, d] += weight * v
    return wgt


@njit(cache=True, nogil=True)
def sample_features(feat, cen, h, w):
    """(n, C) features sampled bilinearly at the node centres (y, x in an h x w image)."""
    fh, fw, c = feat.shape
    n = cen.shape[0]
    out = np.empty((n, c), np.float32)
    sy = fh / h
    sx = fw / w
    for k in range(n):
        y = min(max((cen[k, 3] + 0.5) * sy - 0.5, 0.0), fh - 1.0)
        x = min(max((cen[k, 4] + 0.5) * sx - 0.5, 0.0), fw - 1.0)
        y0 = int(y)
        x0 = int(x)
        y1 = min(y0 + 1, fh - 1)
        x1 = min(x0 + 1, fw - 1)
        ty = y - y0
        tx = x - x0
        for q in range(c):
            out[k, q] = ((1 - ty) * ((1 - tx) * feat[y0, x0, q] + tx * feat[y0, x1, q])
                         + ty * ((1 - tx) * feat[y1, x0, q] + tx * feat[y1, x1, q]))
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _pca_unit(x, channels):
    """(n, channels): the first principal components of x (n, c), each scaled to [0, 1]."""
    n, c = x.shape
    mean = np.zeros(c)
    for a in range(n):
        for k in range(c):
            mean[k] += x[a, k]
    mean /= max(n, 1)
    cov = np.zeros((c, c))
    for a in range(n):
        for i in range(c):
            t = x[a, i] - mean[i]
            for j in range(i, c):
                cov[i, j] += t * (x[a, j] - mean[j])
    for i in range(c):
        for j in range(i):
            cov[i, j] = cov[j, i]
    _, vec = np.linalg.eigh(cov)
    out = np.empty((n, channels), np.float32)
    for q in range(channels):
        v = vec[:, c - 1 - q]
        lo = 1e30
        hi = -1e30
        for a in range(n):
            t = 0.0
            for k in range(c):
                t += (x[a, k] - mean[k]) * v[k]
            out[a, q] = t
            lo = min(lo, t)
            hi = max(hi, t)
        inv = 1.0 / max(hi - lo, 1e-6)
        for a in range(n):
            out[a, q] = (out[a, q] - lo) * inv
    return out


def semantic_features(pbar: np.ndarray, feats: np.ndarray | None, channels: int) -> np.ndarray:
    """Node semantic vectors (n, 1 + channels): the net's probability and the first
    ``channels`` principal components of its features over this frame's nodes,
    each scaled to [0, 1] (as in Aksoy et al.'s 3-D PCA of their features)."""
    p = np.asarray(pbar, np.float32).reshape(-1, 1)
    if feats is None or channels <= 0 or feats.shape[1] == 0:
        return np.ascontiguousarray(p)
    proj = _pca_unit(np.ascontiguousarray(feats, dtype=np.float32), min(channels, feats.shape[1]))
    return np.ascontiguousarray(np.concatenate([p, proj], axis=1))
