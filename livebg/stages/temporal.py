"""Temporal stability: a still edge stops flickering, a moving edge stays crisp.

Two steps, both gated by where the image is still:

1. :meth:`TemporalFilter.update_probability`, on the segmentation net's
   probability at the net's own low resolution (e.g. 256x144), *before*
   refinement: the refiner gets a steady input and its warm start has less to
   undo. This removes the net's jitter.
2. :meth:`TemporalFilter.update`, on the refined full-resolution alpha: where
   the image is still and the alpha changed by less than ``alpha_tol``, the
   previous alpha is kept (so a held value is never more than ``alpha_tol``
   off the refiner's).
   This removes the refiner's own flicker (its guided filter follows the
   sensor noise of the frame), a few simple full-resolution passes.

Per place x, step 1's state ``s`` (the stabilised probability) moves towards the
net's new probability ``p`` by a weight ``w`` in [0, 1]::

    d = p - s_prev
    w = max(leak, image_change(x), mask_change(|d|))
    s = s_prev + w * d

* ``image_change``: how much the (blurred, grey, net-resolution) image changed
  at x since the previous frame, mapped linearly from 0 at ``image_lo`` to 1 at
  ``image_hi`` grey levels and spread a few pixels around (the net's edge and
  the image's edge are not exactly in the same place). Where the person moves
  the image changes, w = 1 and the output is the net's probability of this
  frame: no lag.
* ``mask_change``: a soft deadband on the net's own change: |d| below
  ``mask_lo`` is jitter and is held, above ``mask_hi`` it passes at once (a
  low-contrast edge that moves without much image change still follows).
  Unlike a hard deadband with a levels stretch, nothing is offset or clipped,
  so faint alpha (hair, blur) survives.
* ``leak``: a small floor, so that a held value still converges to the net's
  over a few seconds and a wrong region never sticks.

A scene cut (the mean grey change over the frame above ``cut_level``) resets
the state. All state lives in :class:`TemporalState`; :meth:`reset` forgets
it (new camera, new clip). Cost at 1280x720: about 0.3 ms for step 1 and
0.4 ms for step 2 on one core.

The :class:`~livebg.processor.Processor` calls
:meth:`TemporalFilter.update_probability` between the net and the refiner.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

MODES = ("motion", "off")


@njit(cache=True, nogil=True, fastmath=True)
def _hold(alpha, prev, tol_rows, out):
    """One pass: out = prev where |alpha - prev| < tol, else alpha.

    ``tol_rows`` (h, W) is the low-resolution tolerance already upsampled along
    x; the y interpolation (bilinear, cv2's half-pixel convention) is done
    here, so no full-resolution temporary is made.
    """
    hh, ww = alpha.shape
    h = tol_rows.shape[0]
    scale = h / hh
    for i in range(hh):
        y = (i + 0.5) * scale - 0.5
        if y < 0.0:
            y = 0.0
        a0 = min(int(y), h - 1)
        a1 = min(a0 + 1, h - 1)
        t = np.float32(y - a0)
        for j in range(ww):
            tol = tol_rows[a0, j] + t * (tol_rows[a1, j] - tol_rows[a0, j])
            a = alpha[i, j]
            b = prev[i, j]
            out[i, j] = b if abs(a - b) < tol else a
    return out


@dataclass
class TemporalState:
    """What the filter carries from one frame to the next (all at net resolution).

    Attributes:
        prob: the stabilised probability of the previous frame, float32 (h, w).
        grey: the previous frame, grey float32 (h, w) in 0..255, blurred.
        frames: frames since the last reset.
        cuts: scene cuts detected since the filter was made.
        hold: fraction of places held (w < 0.5) in the last frame, for stats.
        tolerance: float32 (h, w): ``alpha_tol`` where the image did not change
            in the last frame, -1 where it did (None on a first frame or a cut);
            step 2 holds only where the alpha changed by less than this.
        alpha: the previous full-resolution output alpha (step 2).
    """

    prob: np.ndarray | None = None
    grey: np.ndarray | None = None
    tolerance: np.ndarray | None = None
    alpha: np.ndarray | None = None
    frames: int = 0
    cuts: int = 0
    hold: float = float("nan")


class TemporalFilter:
    """Motion-aware smoothing of the net's probability.

    Args:
        image_lo, image_hi: grey-level change (0..255, after a 3x3 blur at the
            net's resolution) below which a place counts as still (w from the
            image: 0) and above which as moving (1).
        mask_lo, mask_hi: probability change below which it is jitter (held)
            and above which it passes in full.
        leak: smallest weight: the held state drifts to the net's value with
            this rate per frame.
        spread: radius in net pixels by which the image-change weight is
            dilated.
        cut_level: mean absolute grey change over the frame (0..255) that counts
            as a scene cut and resets the state.
        alpha_tol: step 2 keeps the previous full-resolution alpha where the
            image is still and the alpha changed by less than this (0: no step 2).
    """

    name = "motion"

    def __init__(self, *, image_lo: float = 2.0, image_hi: float = 6.0, mask_lo: float = 0.3,
                 mask_hi: float = 0.8, leak: float = 0.03, spread: int = 1,
                 cut_level: float = 30.0, alpha_tol: float = 0.1):
        if not 0 <= image_lo < image_hi:
            raise ValueError("need 0 <= image_lo < image_hi")
        if not 0 <= mask_lo < mask_hi <= 1:
            raise ValueError("need 0 <= mask_lo < mask_hi <= 1")
        if not 0 <= leak <= 1:
            raise ValueError("leak must lie in [0, 1]")
        self.image_lo, self.image_hi = float(image_lo), float(image_hi)
        self.mask_lo, self.mask_hi = float(mask_lo), float(mask_hi)
        self.leak = float(leak)
        self.spread = int(spread)
        self.cut_level = float(cut_level)
        if not 0 <= alpha_tol <= 1:
            raise ValueError("alpha_tol must lie in [0, 1]")
        self.alpha_tol = float(alpha_tol)
        self._kernel = (np.ones((2 * self.spread + 1,) * 2, np.uint8)
                        if self.spread > 0 else None)
        self.state = TemporalState()

    def reset(self) -> None:
        """Forget the previous frames (new camera, new clip); the next frame passes as is."""
        self.state = TemporalState(cuts=self.state.cuts)

    def _grey(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        # Bilinear, not area: OpenCV's area resize is slow for non-integer
        # factors, and the 3x3 blur below averages the noise anyway.
        small = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        g = small.astype(np.float32)
        return cv2.blur(g, (3, 3))

    def update_probability(self, probability: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Stabilised probability float32 (h, w) for the net's ``probability`` of ``image``.

        Args:
            probability: float32 (h, w) in [0, 1], the net's output.
            image: the BGR uint8 frame (H, W, 3) it belongs to (any size).
        """
        p = np.asarray(probability, np.float32)
        if p.ndim != 2:
            raise ValueError(f"probability must be (h, w), got shape {p.shape}")
        g = self._grey(image, (p.shape[1], p.shape[0]))
        st = self.state
        if st.prob is None or st.prob.shape != p.shape:
            self.state = TemporalState(prob=p.copy(), grey=g, frames=1, cuts=st.cuts)
            return p
        diff = cv2.absdiff(g, st.grey)
        if float(diff.mean()) > self.cut_level:
            self.state = TemporalState(prob=p.copy(), grey=g, frames=1, cuts=st.cuts + 1)
            return p
        w_img = (diff - self.image_lo) * (1.0 / (self.image_hi - self.image_lo))
        if self._kernel is not None:
            w_img = cv2.dilate(w_img, self._kernel)
        d = p - st.prob
        w_mask = (cv2.absdiff(p, st.prob) - self.mask_lo) * (1.0 / (self.mask_hi - self.mask_lo))
        w = np.clip(cv2.max(w_img, w_mask), self.leak, 1.0)
        s = st.prob + w * d
        self.state = TemporalState(prob=s, grey=g, frames=st.frames + 1, cuts=st.cuts,
                                   hold=float(np.count_nonzero(w < 0.5)) / w.size,
                                   tolerance=np.where(w_img <= 0.0, np.float32(self.alpha_tol),
                                                      np.float32(-1.0)),
                                   alpha=st.alpha)
        return s

    def update(self, alpha: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Step 2: the refined alpha float32 (H, W), held where the image is still.

        Call it after :meth:`update_probability` of the same frame (the
        :class:`~livebg.processor.Processor` does); alone, it passes ``alpha``
        through.
        """
        st = self.state
        prev, tol = st.alpha, st.tolerance
        st.alpha = alpha
        if (self.alpha_tol <= 0 or tol is None or prev is None or prev.shape != alpha.shape
                or alpha.dtype != np.float32):
            return alpha
        h, w = alpha.shape
        # One full-resolution pass; the held error is bounded by alpha_tol. A new
        # output array each frame: the refiner may reuse its own buffer.
        tol_rows = cv2.resize(tol, (w, tol.shape[0]), interpolation=cv2.INTER_LINEAR)
        out = _hold(alpha, prev, tol_rows, np.empty_like(alpha))
        st.alpha = out
        return out


def make_temporal(mode: str = "motion", **options):
    """The temporal stage by name: ``motion`` (:class:`TemporalFilter`) or ``off`` (None)."""
    if mode == "off":
        if options:
            raise TypeError(f"temporal off takes no options, got {sorted(options)}")
        return None
    if mode == "motion":
        return TemporalFilter(**options)
    raise ValueError(f"unknown temporal mode {mode!r}; use one of {', '.join(MODES)}")
