"""The node graph: a regular grid of superpixels with colour and semantic affinities.

Each node is a block of the frame (at 1280x720, an 8x8 block: a 160x90 grid),
carrying the block's mean Lab colour, the net's probability and, optionally,
the net's inner features. Every node is joined to its 8 neighbours with weight

    w = exp(-|dLab|^2 / (2 sigma^2)) * exp(-|df|^2 / (2 sigma_f^2))   (x 1/sqrt 2 on diagonals)

the first factor being the low-level colour affinity and the second the
semantic affinity (Aksoy et al. 2018 use semantic features the same way; here
they multiply rather than add, so that the net can cut an edge between two
similarly coloured blocks that it sees as different things).

Weights are stored per node for the 4 "forward" directions (E, S, SE, SW); the
other 4 are the same edges seen from the other end.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# forward directions: (dy, dx) = E, S, SE, SW
DIRS = ((0, 1), (1, 0), (1, 1), (1, -1))


@njit(cache=True)
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


@njit(cache=True)
def neighbour_feature_scale(feat):
    """RMS feature distance between 4-neighbours: the unit in which sigma_f is given."""
    h, w, c = feat.shape
    tot = 0.0
    n = 0
    for i in range(h):
        for j in range(w):
            if j + 1 < w:
                e = 0.0
                for k in range(c):
                    t = feat[i, j, k] - feat[i, j + 1, k]
                    e += t * t
                tot += e
                n += 1
            if i + 1 < h:
                e = 0.0
                for k in range(c):
                    t = feat[i, j, k] - feat[i + 1, j, k]
                    e += t * t
                tot += e
                n += 1
    return np.sqrt(tot / max(n, 1)) + 1e-6
