"""``sss``: real-time reduced-rank semantic soft segmentation on a superpixel grid.

Per frame (all sizes scale with the frame; figures for 1280x720):

1. **downsample**: the frame to the node grid (long side ~160: 160x90, each
   node an 8x8 block, a regular superpixel); Lab colour per node; the net's
   probability (and, with ``semantic=True``, features) resampled to the grid.
2. **graph**: 8-neighbour edges weighted by colour and semantic affinity
   (:mod:`livebg.refine.graph`).
3. **solve**: ``(L + lambda C) a = lambda C p`` with confidence
   ``c = |2p - 1|^gamma`` by a few preconditioned CG steps, warm-started from
   the previous frame's node matte (:mod:`livebg.refine.solve`).
4. **upsample**: colour fast guided filter fitted on the node grid (3x3 node
   windows; ``long_side`` > ``node_side`` fits it on a finer copy instead),
   its coefficients upsampled bilinearly (each pixel softly assigned to its 4
   nearest nodes) and applied to the full-resolution frame
   (:mod:`livebg.refine.guided`), giving fractional alpha at hair and blur.

State carried across frames (the previous node matte, for the warm start)
lives in :class:`SSSState`; :meth:`SSSRefiner.reset` forgets it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from livebg.refine.graph import grid_weights, neighbour_feature_scale
from livebg.refine.guided import Workspace, downsample, fast_guided_filter, low_size
from livebg.refine.solve import solve_confidence

_NO_FEATURES = np.zeros((1, 1, 0), np.float32)


@dataclass
class SSSState:
    """What the refiner carries from one frame to the next."""

    alpha_nodes: np.ndarray | None = None  # previous node-level matte (h, w) float32
    residual: float = float("nan")         # relative CG residual of the last solve
    frames: int = 0                        # frames since the last reset


class SSSRefiner:
    """Graph-regularised matte on a grid of superpixels, then a colour fast guided filter.

    Args:
        long_side: long side of the guide copy for the guided filter, in pixels.
        node_side: long side of the node grid, in nodes.
        sigma: colour affinity width in Lab units.
        semantic: use the net's features (when given) as semantic affinity.
        sigma_f: semantic affinity width, in units of the frame's RMS feature
            distance between neighbouring nodes.
        lam: weight of the data term.
        gamma: confidence exponent, c = |2p - 1|^gamma.
        iters: CG steps from a cold start.
        warm_iters: CG steps when warm-started from the previous frame.
        radius, eps, color: the final fast guided filter (radius in guide pixels).
    """

    name = "sss"

    def __init__(self, *, long_side: int = 160, node_side: int = 160, sigma: float = 4.0, semantic: bool = False,
                 sigma_f: float = 2.0, lam: float = 1.0, gamma: float = 4.0, iters: int = 25,
                 warm_iters: int = 15, radius: int = 1, eps: float = 1e-3, color: bool = True):
        self.long_side = long_side
        self.node_side = node_side
        self.sigma = sigma
        self.semantic = semantic
        self.sigma_f = sigma_f
        self.lam = lam
        self.gamma = gamma
        self.iters = iters
        self.warm_iters = warm_iters
        self.radius = radius
        self.eps = eps
        self.color = color
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
        t0 = time.perf_counter()
        gsize = low_size(image.shape, self.long_side)
        guide = downsample(image, gsize)
        nsize = low_size(image.shape, self.node_side)
        nodes = guide if nsize == gsize else cv2.resize(guide, nsize, interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(nodes, cv2.COLOR_BGR2Lab)
        p = cv2.resize(np.asarray(probability, np.float32), nsize, interpolation=cv2.INTER_AREA)
        feat = _NO_FEATURES
        if self.semantic and features is not None and features.shape[-1] > 0:
            feat = _resize_channels(np.asarray(features, np.float32), nsize)
        t1 = time.perf_counter()

        sf = float(neighbour_feature_scale(feat)) * self.sigma_f if feat.shape[2] else 1.0
        wgt = grid_weights(lab, feat, np.float32(self.sigma), np.float32(sf),
                           np.float32(np.sqrt(0.5)))
        conf = np.abs(2.0 * p - 1.0) ** self.gamma
        t2 = time.perf_counter()

        prev = self.state.alpha_nodes
        if prev is not None and prev.shape == p.shape:
            x0, iters = prev, self.warm_iters
        else:
            x0, iters = p, self.iters
        a, res = solve_confidence(wgt, conf.astype(np.float32), p, x0.astype(np.float32),
                                  np.float32(self.lam), int(iters))
        self.state = SSSState(alpha_nodes=a, residual=float(res), frames=self.state.frames + 1)
        t3 = time.perf_counter()

        a_guide = a if nsize == gsize else cv2.resize(a, gsize, interpolation=cv2.INTER_LINEAR)
        alpha = fast_guided_filter(image, guide, a_guide, radius=self.radius, eps=self.eps,
                                   color=self.color, ws=self._ws)
        t4 = time.perf_counter()
        self._t = {"downsample": (t1 - t0) * 1e3, "graph": (t2 - t1) * 1e3,
                   "solve": (t3 - t2) * 1e3, "upsample": (t4 - t3) * 1e3}
        return alpha


def _resize_channels(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, C) -> (size[1], size[0], C) float32, area/linear as fits, any C."""
    interp = cv2.INTER_AREA if x.shape[1] > size[0] else cv2.INTER_LINEAR
    if x.shape[2] <= 4:
        out = cv2.resize(x, size, interpolation=interp)
        return out.reshape(size[1], size[0], -1)
    parts = [cv2.resize(np.ascontiguousarray(x[:, :, k:k + 4]), size, interpolation=interp)
             for k in range(0, x.shape[2], 4)]
    return np.ascontiguousarray(np.concatenate(
        [q.reshape(size[1], size[0], -1) for q in parts], axis=2))
