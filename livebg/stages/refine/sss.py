"""``sss``: real-time reduced-rank semantic soft segmentation on superpixels.

Per frame (all sizes scale with the frame; figures for 1280x720):

1. **downsample**: the frame to a small working copy; Lab colour; the net's
   probability resampled to it.
2. **superpixels**: either the plain grid (``superpixels="grid"``: long side
   ``node_side`` ~160, each node an 8x8 block, a regular superpixel) or
   SLIC-like superpixels (``"slic"``: about ``n_superpixels`` on the working
   copy, warm-started from the previous frame's centres,
   :mod:`livebg.stages.refine.superpixels`). Nodes carry mean Lab, position and
   mean net probability.
3. **graph**: neighbouring nodes joined with colour affinity
   (:mod:`livebg.stages.refine.graph`); optionally semantic affinity from the net's
   probability and features (``semantic``) and non-local colour edges
   (``non_local``, :mod:`livebg.stages.refine.nonlocal_edges`).
4. **solve**: ``(L + lambda C) a = lambda C p`` with confidence
   ``c = |2p - 1|^gamma`` by a few preconditioned CG steps (a reduced-rank
   solve in this frame's Krylov subspace), warm-started from the previous
   frame's node matte (:mod:`livebg.stages.refine.solve`). (Research only,
   :mod:`livebg.stages.refine.experimental`: tracked eigenvectors of the
   normalised Laplacian whose fit starts or replaces the solve.)
5. **upsample**: SLIC mattes go back to the SLIC copy's pixels, each pixel
   taking its superpixel's value (research only: a soft mix of the 9 nearby
   superpixels', ``soft_tau`` in experimental/); grid mattes are
   interpolated bilinearly. Then a colour fast guided filter fitted on a
   ``long_side`` ~160 copy is applied to the full-resolution frame
   (:mod:`livebg.stages.refine.guided`), giving fractional alpha at hair and blur.

Defaults, chosen by ``scripts/ablation_refine.py`` on the 60 dev photos (tuned
on the even half, checked on the odd half): the grid with non-local colour
edges (boundary IoU 0.7795 vs 0.7710 without them; SLIC superpixels tie at
best, 0.7798, and cost more); semantic edges, soft assignment and eigenvectors
measured no gain and stay options.

State carried across frames (superpixel centres, node matte, eigenvectors,
non-local neighbour lists) lives in :class:`SSSState`;
:meth:`SSSRefiner.reset` forgets it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from livebg.stages.refine import superpixels as spx
from livebg.stages.refine.graph import (add_semantic, add_semantic_grid, build_csr, grid_weights,
                                 sample_features, semantic_features, slot_weights)
from livebg.stages.refine.guided import Workspace, downsample, fast_guided_filter, low_size
from livebg.stages.refine.nonlocal_edges import colour_knn, knn_weights
from livebg.stages.refine.solve import solve_confidence, solve_confidence_csr

_NO_FEATURES = np.zeros((1, 1, 0), np.float32)
_NO_KNN = np.zeros((0, 0), np.int32)
_NO_KNN_W = np.zeros((0, 0), np.float32)
SUPERPIXELS = ("grid", "slic")


@dataclass
class SSSState:
    """What the refiner carries from one frame to the next (all None after a reset)."""

    alpha_nodes: np.ndarray | None = None  # previous node-level matte, float32
    centres: np.ndarray | None = None      # SLIC centres (n, 5): L, a, b, y, x
    labels: np.ndarray | None = None       # SLIC label map of the working copy (h, w) int32
    eigvecs: np.ndarray | None = None      # tracked eigenvectors (n, k)
    knn: np.ndarray | None = None          # non-local neighbour lists (n, k) int32
    knn_age: np.ndarray | None = None      # frames since each list was built (n,), -1: never
    residual: float = float("nan")         # relative CG residual of the last solve
    changed: float = float("nan")          # fraction of SLIC labels changed by the last iteration
    frames: int = 0                        # frames since the last reset


@dataclass(frozen=True)
class SSSOptions:
    """Options of :class:`SSSRefiner` (the defaults are the measured best; see the module).

    Attributes:
        superpixels: ``grid`` (regular blocks) or ``slic``.
        long_side: long side of the guided filter's low-resolution copy.
        node_side: long side of the node grid, in nodes (grid only).
        slic_side: long side of the copy SLIC runs on (slic only).
        n_superpixels: about how many SLIC superpixels.
        compactness: SLIC's m, in Lab units per cell side.
        slic_iters: SLIC iterations from a cold start.
        slic_warm_iters: SLIC iterations when warm-started from the previous frame.
        sigma: colour affinity width in Lab units.
        semantic: add semantic edges from the net's probability and features.
        semantic_weight: their weight relative to a full colour edge.
        semantic_channels: principal components of the net's features used
            (0: the probability only).
        non_local: weight of the non-local colour edges (0: none).
        non_local_k: non-local neighbours per node.
        non_local_radius: search radius, fraction of the long side.
        non_local_band: only nodes whose confidence is below this get
            non-local edges (1: all nodes).
        non_local_every: a node's neighbour list is rebuilt every this many frames.
        lam: weight of the data term.
        gamma: confidence exponent, c = |2p - 1|^gamma.
        iters: CG steps from a cold start.
        warm_iters: CG steps when warm-started from the previous frame.
        radius, eps, color, deadband: the final fast guided filter (radius
            in pixels of the ``long_side`` copy; deadband as in
            :class:`~livebg.stages.refine.guided.GuidedOptions`).
    """

    superpixels: str = "grid"
    long_side: int = 160
    node_side: int = 160
    slic_side: int = 320
    n_superpixels: int = 1500
    compactness: float = 10.0
    slic_iters: int = 4
    slic_warm_iters: int = 1
    sigma: float = 4.0
    semantic: bool = False
    semantic_weight: float = 0.05
    semantic_channels: int = 3
    non_local: float = 0.05
    non_local_k: int = 4
    non_local_radius: float = 0.2
    non_local_band: float = 0.5
    non_local_every: int = 8
    lam: float = 1.0
    gamma: float = 4.0
    iters: int = 25
    warm_iters: int = 15
    radius: int = 1
    eps: float = 1e-3
    color: bool = True
    deadband: float = 1 / 64

    def __post_init__(self):
        if self.superpixels not in SUPERPIXELS:
            raise ValueError(f"unknown superpixels {self.superpixels!r}; "
                             f"use one of {', '.join(SUPERPIXELS)}")
        if self.non_local_every < 1:
            raise ValueError("non_local_every must be 1 or more")


class SSSRefiner:
    """Graph-regularised matte on superpixels, then a colour fast guided filter.

    Args:
        options: see :class:`SSSOptions` (None: the defaults).

    Research options (eigenvectors, soft assignment) live in
    :mod:`livebg.stages.refine.experimental`, which subclasses this and
    overrides the two hooks :meth:`_solve_nodes` and :meth:`_to_pixels`.
    """

    name = "sss"

    def __init__(self, options: SSSOptions | None = None):
        self.opt = options or SSSOptions()
        self.state = SSSState()
        self._ws = Workspace()
        self._t: dict[str, float] = {}

    def reset(self) -> None:
        """Forget the previous frame (scene cut, new camera)."""
        self.state = SSSState()

    def timings(self) -> dict[str, float]:
        """Milliseconds of the last call's sub-steps."""
        return dict(self._t)

    def refine(self, image: np.ndarray, probability: np.ndarray,
               features: np.ndarray | None = None) -> np.ndarray:
        """Alpha float32 (H, W) in [0, 1] for a BGR uint8 frame (H, W, 3)."""
        if self.opt.superpixels == "slic":
            return self._refine_slic(image, probability, features)
        return self._refine_grid(image, probability, features)

    # -- grid ---------------------------------------------------------------

    def _refine_grid(self, image, probability, features):
        t0 = time.perf_counter()
        gsize = low_size(image.shape, self.opt.long_side)
        guide = downsample(image, gsize)
        nsize = low_size(image.shape, self.opt.node_side)
        nodes = guide if nsize == gsize else cv2.resize(guide, nsize, interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(nodes, cv2.COLOR_BGR2Lab)
        p = cv2.resize(np.asarray(probability, np.float32), nsize, interpolation=cv2.INTER_AREA)
        gh, gw = p.shape
        t1 = time.perf_counter()

        wgt = grid_weights(lab, _NO_FEATURES, np.float32(self.opt.sigma), np.float32(1.0),
                           np.float32(np.sqrt(0.5)))
        conf = (np.abs(2.0 * p - 1.0) ** self.opt.gamma).astype(np.float32)
        cen = None
        if self.opt.semantic or self.opt.non_local > 0:
            yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
            cen = np.ascontiguousarray(np.concatenate(
                [lab.reshape(-1, 3), yy.reshape(-1, 1), xx.reshape(-1, 1)], axis=1))
        if self.opt.semantic:
            add_semantic_grid(wgt, self._semantic(p.ravel(), cen, features, gh, gw),
                              np.float32(self.opt.semantic_weight), np.float32(20.0),
                              np.float32(0.85))
        extra = None
        nl_idx, nl_w = _NO_KNN, _NO_KNN_W
        if self.opt.non_local > 0:
            nl_idx, nl_w = self._non_local(cen, gh, gw, gh, gw, conf.ravel())
            extra = build_csr(np.zeros((gh * gw, 0), np.float32), gw, nl_idx, nl_w)
        t2 = time.perf_counter()
        t = {"downsample": (t1 - t0) * 1e3, "graph": (t2 - t1) * 1e3}

        a, res = self._solve_nodes(
            lambda x0, iters: solve_confidence(wgt, conf, p,
                                               np.ascontiguousarray(x0, dtype=np.float32),
                                               self.opt.lam, iters, extra),
            lambda: build_csr(spx.grid_slots(wgt), gw, nl_idx, nl_w), p, conf, t)
        self.state.alpha_nodes = a
        self.state.residual = float(res)
        self.state.frames += 1
        t3 = time.perf_counter()
        t["solve"] = (t3 - t2) * 1e3 - t.get("eigen", 0.0)

        a_guide = a if nsize == gsize else cv2.resize(a, gsize, interpolation=cv2.INTER_LINEAR)
        alpha = fast_guided_filter(image, guide, a_guide, radius=self.opt.radius,
                                   eps=self.opt.eps, color=self.opt.color, ws=self._ws,
                                   deadband=self.opt.deadband)
        t["upsample"] = (time.perf_counter() - t3) * 1e3
        self._t = t
        return alpha

    # -- SLIC ---------------------------------------------------------------

    def _refine_slic(self, image, probability, features):
        t0 = time.perf_counter()
        wsize = low_size(image.shape, self.opt.slic_side)
        work = downsample(image, wsize)
        gsize = low_size(image.shape, self.opt.long_side)
        guide = work if gsize == wsize else _shrink(work, gsize)
        lab = cv2.cvtColor(work, cv2.COLOR_BGR2Lab)
        p_px = cv2.resize(np.asarray(probability, np.float32), wsize,
                          interpolation=cv2.INTER_LINEAR)
        h, w = lab.shape[:2]
        gy, gx = spx.cell_grid(h, w, self.opt.n_superpixels)
        cell = float(np.sqrt(h * w / (gy * gx)))
        m2 = np.float32((self.opt.compactness / cell) ** 2)
        t1 = time.perf_counter()

        st = self.state
        if st.centres is not None and st.centres.shape[0] == gy * gx and st.labels.shape == (h, w):
            cen, labels, iters = st.centres.copy(), st.labels.copy(), self.opt.slic_warm_iters
        else:
            self.state = st = SSSState(frames=st.frames)
            cen = spx.init_centres(lab, gy, gx)
            labels = np.full((h, w), -1, np.int32)
            iters = self.opt.slic_iters
        pbar, _, changed = spx.slic(lab, p_px, cen, gy, gx, m2, int(iters), labels)
        st.centres, st.labels, st.changed = cen, labels, changed / float(h * w)
        boundary = spx.boundary_slots(labels, gx)
        if boundary.shape[0] < gy * gx:  # the last nodes are empty: pad
            boundary = np.vstack([boundary, np.zeros((gy * gx - boundary.shape[0], spx.SLOTS),
                                                     np.float32)])
        t2 = time.perf_counter()

        slots = slot_weights(cen, boundary, gx, np.float32(self.opt.sigma), np.float32(cell))
        conf = (np.abs(2.0 * pbar - 1.0) ** self.opt.gamma).astype(np.float32)
        if self.opt.semantic:
            add_semantic(slots, self._semantic(pbar, cen, features, h, w), gx,
                         np.float32(self.opt.semantic_weight), np.float32(20.0), np.float32(0.85))
        nl_idx, nl_w = _NO_KNN, _NO_KNN_W
        if self.opt.non_local > 0:
            nl_idx, nl_w = self._non_local(cen, gy, gx, h, w, conf)
        csr = build_csr(slots, gx, nl_idx, nl_w)
        t3 = time.perf_counter()
        t = {"downsample": (t1 - t0) * 1e3, "superpixels": (t2 - t1) * 1e3,
             "graph": (t3 - t2) * 1e3}

        a, res = self._solve_nodes(
            lambda x0, iters: solve_confidence_csr(*csr, conf, pbar,
                                                   np.ascontiguousarray(x0, np.float32),
                                                   np.float32(self.opt.lam), int(iters)),
            lambda: csr, pbar, conf, t)
        st.alpha_nodes = a
        st.residual = float(res)
        st.frames += 1
        t4 = time.perf_counter()
        t["solve"] = (t4 - t3) * 1e3 - t.get("eigen", 0.0)

        a_px = self._to_pixels(a, labels, lab, cen, gy, gx, m2)
        a_g = a_px if gsize == wsize else _shrink(a_px, gsize)
        alpha = fast_guided_filter(image, guide, a_g, radius=self.opt.radius, eps=self.opt.eps,
                                   color=self.opt.color, ws=self._ws, deadband=self.opt.deadband)
        t["upsample"] = (time.perf_counter() - t4) * 1e3
        self._t = t
        return alpha

    # -- shared -------------------------------------------------------------

    def _solve_nodes(self, solve, graph, p, conf, t):
        """(node matte, relative residual): ``solve(x0, iters)`` from :meth:`_start`.

        ``graph()`` gives this frame's graph as CSR arrays, ``p`` and ``conf``
        are the node probability and confidence, ``t`` the timings (ms) being
        filled in. A hook: the experimental refiner starts from an eigenvector fit.
        """
        x0, iters = self._start(p.shape, p)
        return solve(x0, iters)

    def _to_pixels(self, a, labels, lab, cen, gy, gx, m2):
        """SLIC node matte -> the SLIC copy's pixels: each takes its superpixel's value (a hook)."""
        h, w = labels.shape
        return spx.hard_assign(labels, a, self._ws.get("soft", (h, w)))

    def _start(self, shape, p):
        """(x0, CG steps): the previous node matte when there is one of this shape, else p."""
        prev = self.state.alpha_nodes
        if prev is not None and prev.shape == shape:
            return prev, self.opt.warm_iters
        return p, self.opt.iters

    def _semantic(self, p, cen, features, h, w):
        """Node semantic vectors: probability + PCA of the net's features at the centres."""
        feats = None
        if features is not None and features.ndim == 3 and features.shape[2] > 0:
            feats = sample_features(np.ascontiguousarray(features, dtype=np.float32), cen, h, w)
        return semantic_features(p, feats, self.opt.semantic_channels)

    def _non_local(self, cen, gy, gx, h, w, conf):
        """Non-local neighbour lists of the uncertain nodes and this frame's weights."""
        st = self.state
        n = cen.shape[0]
        k = int(self.opt.non_local_k)
        if st.knn is None or st.knn.shape != (n, k):
            st.knn = np.full((n, k), -1, np.int32)
            st.knn_age = np.full(n, -1, np.int32)
        band = conf < self.opt.non_local_band
        rows = np.flatnonzero(band & ((st.knn_age < 0) | (st.knn_age >= self.opt.non_local_every)))
        colour_knn(cen, gy, gx, h, w, np.float32(self.opt.non_local_radius), st.knn, rows)
        st.knn_age[rows] = 0
        st.knn_age[st.knn_age >= 0] += 1
        idx = np.where(band[:, None], st.knn, np.int32(-1))
        return idx, knn_weights(cen, idx, np.float32(self.opt.sigma),
                                np.float32(self.opt.non_local))


def _shrink(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float image down to ``size`` (w, h): exact halving by INTER_LINEAR (a 2x2 mean, fast)."""
    if x.shape[1] == 2 * size[0] and x.shape[0] == 2 * size[1]:
        return cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(x, size, interpolation=cv2.INTER_AREA)

