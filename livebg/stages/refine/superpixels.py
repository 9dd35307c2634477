"""SLIC-like superpixels on a small Lab copy of the frame, compiled with numba.

Superpixels live on a fixed ``gy x gx`` grid of *home cells*: superpixel ``k``
is born at the centre of cell ``k`` and a pixel may only join the superpixels
of the 3x3 cells around its own cell (Achanta et al.'s 2S x 2S search window
in SLIC, made exact by indexing). Each iteration assigns every pixel to the
nearest of those 9 centres in

    D = |Lab - Lab_k|^2 + (m / S)^2 |xy - xy_k|^2      (m: compactness, S: cell size)

and moves every centre to the mean of its pixels. Because a centre keeps its
index from frame to frame, the previous frame's centres are a warm start (one
iteration is enough on video) and node ``k`` means the same region in
consecutive frames, so the previous matte and eigenvectors carry over too.

No connectivity cleanup is done: the labels only pool statistics and define
adjacency; a stray fragment adds a few short extra edges, and the way back to
pixels (:func:`soft_assign`) uses distances to centres, not labels, so
fragments leave no mark on the matte. A cleanup pass would cost about as much
as an iteration and would break the fixed node indexing.

The same node indexing describes a plain grid (every cell its own node, the
degenerate superpixel map), so both share the graph code
(:mod:`livebg.stages.refine.graph`): neighbours are recorded in a 7x7 *slot* table
around each node's home cell (two pixels in adjacent cells can belong to
superpixels at most 3 cells apart).
"""

from __future__ import annotations

import numpy as np
from numba import njit

SLOTS = 49  # 7x7 neighbour slots around a node's home cell
CENTRE_SLOT = 24


def cell_grid(h: int, w: int, n: int) -> tuple[int, int]:
    """(gy, gx): about ``n`` square cells over an ``h x w`` image, 1x1 to h x w."""
    s = np.sqrt(h * w / max(n, 1))
    return min(h, max(1, int(round(h / s)))), min(w, max(1, int(round(w / s))))


@njit(cache=True, nogil=True)
def _cell_of(i, n, g):
    c = (i * g) // n
    return c if c < g else g - 1


@njit(cache=True, nogil=True)
def init_centres(lab, gy, gx):
    """Centres (gy*gx, 5): (L, a, b, y, x) of the 3x3-pixel mean around each cell's centre."""
    h, w, _ = lab.shape
    cen = np.zeros((gy * gx, 5), np.float32)
    for cy in range(gy):
        for cx in range(gx):
            k = cy * gx + cx
            y = (cy + 0.5) * h / gy - 0.5
            x = (cx + 0.5) * w / gx - 0.5
            iy = min(max(int(round(y)), 0), h - 1)
            ix = min(max(int(round(x)), 0), w - 1)
            n = 0
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            for yy in range(max(iy - 1, 0), min(iy + 2, h)):
                for xx in range(max(ix - 1, 0), min(ix + 2, w)):
                    s0 += lab[yy, xx, 0]
                    s1 += lab[yy, xx, 1]
                    s2 += lab[yy, xx, 2]
                    n += 1
            cen[k, 0] = s0 / n
            cen[k, 1] = s1 / n
            cen[k, 2] = s2 / n
            cen[k, 3] = y
            cen[k, 4] = x
    return cen


@njit(cache=True, nogil=True, inline="always")
def _slic_distance(l0, l1, l2, i, j, cen, k, m2):
    """SLIC distance from pixel (i, j) of Lab colour (l0, l1, l2) to centre k."""
    t0 = l0 - cen[k, 0]
    t1 = l1 - cen[k, 1]
    t2 = l2 - cen[k, 2]
    ty = i - cen[k, 3]
    tx = j - cen[k, 4]
    return t0 * t0 + t1 * t1 + t2 * t2 + m2 * (ty * ty + tx * tx)


@njit(cache=True, nogil=True, fastmath=True)
def _assign(lab, cen, gy, gx, m2, labels):
    """labels (h, w) int32 = nearest of the 9 neighbouring cells' centres; returns #changed."""
    h, w, _ = lab.shape
    changed = 0
    for i in range(h):
        ci = _cell_of(i, h, gy)
        for j in range(w):
            cj = _cell_of(j, w, gx)
            l0 = lab[i, j, 0]
            l1 = lab[i, j, 1]
            l2 = lab[i, j, 2]
            best = np.float32(3.0e38)
            bk = -1
            for dy in range(-1, 2):
                y = ci + dy
                if y < 0 or y >= gy:
                    continue
                for dx in range(-1, 2):
                    x = cj + dx
                    if x < 0 or x >= gx:
                        continue
                    k = y * gx + x
                    d = _slic_distance(l0, l1, l2, i, j, cen, k, m2)
                    if d < best:
                        best = d
                        bk = k
            if labels[i, j] != bk:
                changed += 1
                labels[i, j] = bk
    return changed


@njit(cache=True, nogil=True, fastmath=True)
def _update(lab, prob, labels, cen, pbar, count):
    """Centres <- mean (Lab, y, x) of their pixels, pbar <- mean probability.

    Empty superpixels keep their centre.
    """
    n = cen.shape[0]
    acc = np.zeros((n, 6), np.float64)
    cnt = np.zeros(n, np.int32)
    h, w, _ = lab.shape
    for i in range(h):
        for j in range(w):
            k = labels[i, j]
            acc[k, 0] += lab[i, j, 0]
            acc[k, 1] += lab[i, j, 1]
            acc[k, 2] += lab[i, j, 2]
            acc[k, 3] += i
            acc[k, 4] += j
            acc[k, 5] += prob[i, j]
            cnt[k] += 1
    for k in range(n):
        c = cnt[k]
        count[k] = c
        if c > 0:
            inv = 1.0 / c
            for q in range(5):
                cen[k, q] = acc[k, q] * inv
            pbar[k] = acc[k, 5] * inv
        else:  # empty: keep its place and colour, take the probability under it
            y = min(max(int(round(cen[k, 3])), 0), h - 1)
            x = min(max(int(round(cen[k, 4])), 0), w - 1)
            pbar[k] = prob[y, x]


@njit(cache=True, nogil=True)
def slic(lab, prob, cen, gy, gx, m2, iters, labels):
    """``iters`` SLIC iterations from centres ``cen`` (updated in place).

    Returns (pbar (n,) float32: mean probability per superpixel, count (n,)
    int32: pixels per superpixel, changed: labels changed in the last
    iteration). ``labels`` (h, w) int32 is filled in place.
    """
    n = cen.shape[0]
    pbar = np.zeros(n, np.float32)
    count = np.zeros(n, np.int32)
    changed = 0
    for _ in range(max(iters, 1)):
        changed = _assign(lab, cen, gy, gx, m2, labels)
        _update(lab, prob, labels, cen, pbar, count)
    return pbar, count, changed


@njit(cache=True, nogil=True)
def boundary_slots(labels, gx):
    """(n, 49) float32: pixel-boundary length between each node and its slot neighbours.

    4-connected pixel pairs with different labels count once for each end;
    slot ``(dy + 3) * 7 + (dx + 3)`` is the node whose home cell is ``dy``
    rows and ``dx`` columns away.
    """
    h, w = labels.shape
    n = 0
    for i in range(h):
        for j in range(w):
            if labels[i, j] + 1 > n:
                n = labels[i, j] + 1
    out = np.zeros((n, SLOTS), np.float32)
    for i in range(h):
        for j in range(w):
            a = labels[i, j]
            ay = a // gx
            ax = a - ay * gx
            for d in range(2):
                y = i + d
                x = j + 1 - d
                if y >= h or x >= w:
                    continue
                b = labels[y, x]
                if b == a:
                    continue
                by = b // gx
                bx = b - by * gx
                dy = by - ay
                dx = bx - ax
                if dy < -3 or dy > 3 or dx < -3 or dx > 3:
                    continue  # cannot happen with 3x3 assignment; be safe
                out[a, (dy + 3) * 7 + dx + 3] += 1.0
                out[b, (3 - dy) * 7 + 3 - dx] += 1.0
    return out


@njit(cache=True, nogil=True, fastmath=True)
def soft_assign(lab, cen, gy, gx, m2, tau, alpha_nodes, out):
    """Per-pixel alpha (h, w): a mix of the 9 neighbouring cells' superpixel mattes.

    Weights ``exp(-(D_k - D_min) / tau)`` with ``D`` the SLIC distance to the
    centres, so a pixel follows the superpixel it resembles most and blends
    where two are about as close (``tau`` -> 0: hard assignment).
    """
    h, w, _ = lab.shape
    itau = np.float32(1.0 / max(tau, 1e-6))
    dist = np.empty(9, np.float32)
    val = np.empty(9, np.float32)
    for i in range(h):
        ci = _cell_of(i, h, gy)
        for j in range(w):
            cj = _cell_of(j, w, gx)
            l0 = lab[i, j, 0]
            l1 = lab[i, j, 1]
            l2 = lab[i, j, 2]
            m = 0
            best = np.float32(3.0e38)
            for dy in range(-1, 2):
                y = ci + dy
                if y < 0 or y >= gy:
                    continue
                for dx in range(-1, 2):
                    x = cj + dx
                    if x < 0 or x >= gx:
                        continue
                    k = y * gx + x
                    d = _slic_distance(l0, l1, l2, i, j, cen, k, m2)
                    dist[m] = d
                    val[m] = alpha_nodes[k]
                    if d < best:
                        best = d
                    m += 1
            sw = np.float32(0.0)
            sa = np.float32(0.0)
            for q in range(m):
                e = np.exp((best - dist[q]) * itau)
                sw += e
                sa += e * val[q]
            out[i, j] = sa / sw
    return out


@njit(cache=True, nogil=True)
def grid_slots(wgt):
    """(h*w, 49) slot weights of the 8-neighbour grid from its forward weights (h, w, 4).

    The grid is the degenerate superpixel map: node ``i * w + j`` has home
    cell ``(i, j)``, and its 8 neighbours sit in the central 3x3 slots.
    """
    h, w, _ = wgt.shape
    out = np.zeros((h * w, SLOTS), np.float32)
    for i in range(h):
        for j in range(w):
            a = i * w + j
            for d in range(4):
                if d == 0:
                    dy, dx = 0, 1
                elif d == 1:
                    dy, dx = 1, 0
                elif d == 2:
                    dy, dx = 1, 1
                else:
                    dy, dx = 1, -1
                y = i + dy
                x = j + dx
                if y >= h or x < 0 or x >= w:
                    continue
                b = y * w + x
                out[a, (dy + 3) * 7 + dx + 3] = wgt[i, j, d]
                out[b, (3 - dy) * 7 + 3 - dx] = wgt[i, j, d]
    return out


@njit(cache=True, nogil=True)
def hard_assign(labels, alpha_nodes, out):
    """out (h, w) = alpha_nodes[labels]: every pixel takes its superpixel's matte."""
    h, w = labels.shape
    for i in range(h):
        for j in range(w):
            out[i, j] = alpha_nodes[labels[i, j]]
    return out
