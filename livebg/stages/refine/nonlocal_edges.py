"""Non-local colour edges: each node joined to its few nearest nodes in colour nearby.

Semantic Soft Segmentation links every superpixel to the superpixels of
similar colour within 20 % of the image, so that separate patches of the same
material (a strand of hair on either side of a shoulder, the gaps between
fingers) pull their mattes together even where no short path joins them.
Here each node keeps its ``k`` nearest nodes in Lab among those whose centres
lie within ``radius`` (a fraction of the image's long side), found by brute
force over the home cells around it (compiled with numba; for a fine grid the
candidate cells are strided so that a node looks at about 17x17 of them).
Only uncertain nodes (confidence below a threshold: the band around the
silhouette where the matte is actually decided) get non-local edges, which
keeps the search and the extra sparse products small on a fine grid. Their
neighbour lists are kept across frames (node indices are stable) and each is
refreshed every few frames; the weights are recomputed from the current
colours every frame.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True)
def colour_knn(cen, gy, gx, h, w, radius, idx, rows):
    """Fill the given ``rows`` of ``idx`` (n, k) int32 with each node's k nearest nodes
    in Lab within ``radius`` (-1: none); other rows are left alone.

    ``cen`` (n, 5) holds (L, a, b, y, x) with positions in an h x w image;
    ``radius`` is a fraction of max(h, w). The node itself and its direct
    home-cell neighbours are left out (they are joined by spatial edges).
    """
    n, k = idx.shape
    best = np.full(k, np.float32(3.0e38), np.float32)
    r = radius * max(h, w)
    r2 = r * r
    cell = max(h / gy, w / gx)
    rc = int(math.ceil(r / cell)) + 1
    stride = max(1, rc // 8)
    for a in rows:
        for q in range(k):
            idx[a, q] = -1
            best[q] = np.float32(3.0e38)
        ay = a // gx
        ax = a - ay * gx
        for cy in range(max(ay - rc, 0), min(ay + rc + 1, gy), stride):
            for cx in range(max(ax - rc, 0), min(ax + rc + 1, gx), stride):
                if abs(cy - ay) <= 1 and abs(cx - ax) <= 1:
                    continue
                b = cy * gx + cx
                ty = cen[a, 3] - cen[b, 3]
                tx = cen[a, 4] - cen[b, 4]
                if ty * ty + tx * tx > r2:
                    continue
                e = 0.0
                for q in range(3):
                    t = cen[a, q] - cen[b, q]
                    e += t * t
                if e >= best[k - 1]:
                    continue
                m = k - 1
                while m > 0 and best[m - 1] > e:
                    best[m] = best[m - 1]
                    idx[a, m] = idx[a, m - 1]
                    m -= 1
                best[m] = e
                idx[a, m] = b
    return idx


@njit(cache=True, nogil=True, fastmath=True)
def knn_weights(cen, idx, sigma, weight):
    """(n, k) float32 weights ``weight * exp(-|dLab|^2 / (2 sigma^2))`` of the listed edges."""
    n, k = idx.shape
    out = np.zeros((n, k), np.float32)
    g = -0.5 / (sigma * sigma)
    for a in range(n):
        for q in range(k):
            b = idx[a, q]
            if b < 0:
                continue
            e = 0.0
            for c in range(3):
                t = cen[a, c] - cen[b, c]
                e += t * t
            out[a, q] = weight * np.exp(g * e)
    return out
