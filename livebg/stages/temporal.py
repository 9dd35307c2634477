"""Temporal stability: a still edge stops flickering, a moving edge stays crisp.

Two steps, both gated by where the image is still:

1. :meth:`TemporalFilter.update_probability`, on the segmentation net's
   probability at the net's own low resolution (e.g. 256x144), *before*
   refinement: the refiner gets a steady input and its warm start has less to
   undo. This removes the net's jitter.
2. :meth:`TemporalFilter.update`, on the refined full-resolution alpha: where
   the image is still and the alpha changed by less than ``alpha_tol``, the
   previous alpha is kept (so a held value is never more than ``alpha_tol``
   off the refiner's); near 0 or 1 the surer of the two is kept, so faint
   haze is never held.
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

Step 1 also clears haze where the frame still shows a background the net was
sure of before (``clear``, the ``scene_*`` options): a remembered colour is
trusted everywhere only once *confirmed* (``scene_frames`` net runs without
the net saying person there), before that only next to clear motion, so a
still person whom the net misses for a moment is never cleared for good.

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
# Net pixels (~5 % of 256) around a clear image change (>= image_hi) where an
# unconfirmed memory clears: on the sample, ghost mean / worst after frame 10
# 2.16 / 10.1 % without this, 1.60 / 5.9 % with it.
_MOVING_NEAR = 12


@njit(cache=True, nogil=True, fastmath=True)
def _hold(alpha, prev, tol_rows, slack, span, out):
    """One pass: out = prev where |alpha - prev| < tol, else alpha.

    ``tol_rows`` (h, W) is the low-resolution tolerance already upsampled along
    x; the y interpolation (bilinear, cv2's half-pixel convention) is done
    here, so no full-resolution temporary is made. The tolerance is at most
    ``slack + span * (1 - |2 alpha - 1|)``: a sure alpha (near 0 or 1) is held
    only within ``slack`` of itself. Where both alpha and prev lie within
    ``slack`` of 0 (of 1), the held value is the nearer one to 0 (to 1): haze
    is never held, only the refiner's flicker. (Holding prev there kept the
    faint trail of a moving person: on the sample at 720p, 22 % of the frame
    between 0.002 and 0.05 after the hold against 7 % before it.)
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
            room = slack + span * (1.0 - abs(2.0 * a - 1.0))
            v = min(a, b) if max(a, b) < slack else b
            v = max(a, b) if min(a, b) > 1.0 - slack else v
            out[i, j] = v if abs(a - b) < min(tol, room) else a
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _follow(prev, p, w_img, leak, mask_lo, mask_gain, slack, span, alpha_tol, s, tol):
    """Step 1 at one place after another (net resolution, float32 (h, w) arrays).

    ``s = prev + w * (p - prev)``, ``w = clip(max(w_img, (|p - prev| - mask_lo)
    * mask_gain), leak, 1)``, then bounded to ``p +- (slack + span * (1 - |2p -
    1|))``; ``tol`` = ``alpha_tol`` where ``w_img <= 0`` (still), else -1.
    Writes ``s`` and ``tol``; returns how many places were held (w < 0.5).
    """
    h, w = p.shape
    held = 0
    for i in range(h):
        for j in range(w):
            a = p[i, j]
            d = a - prev[i, j]
            wi = w_img[i, j]
            wt = min(max(max(wi, (abs(d) - mask_lo) * mask_gain), leak), 1.0)
            if wt < 0.5:
                held += 1
            room = slack + span * (1.0 - abs(2.0 * a - 1.0))
            s[i, j] = min(max(prev[i, j] + wt * d, a - room), a + room)
            tol[i, j] = alpha_tol if wi <= 0.0 else -1.0
    return held


@njit(cache=True, nogil=True, fastmath=True)
def _clear_seen(s, p, colour, scene, seen, gain, w_img, moving, level, lo, hi, confirm,
                min_places):
    """Clear ``s`` where the frame still shows confirmed background; remember anew.

    All at net resolution: ``s``, ``p`` float32 (h, w); ``colour``, ``scene``
    float32 (h, w, 3), 0..255 (``scene`` only where ``seen`` > 0); ``seen`` int32
    (h, w), frames since the net was sure of that background colour there
    (p < ``level``) or last said person (p >= 0.5) there, while the colour
    stayed (0: no memory); ``gain`` float32 (3,); ``w_img`` float32 (h, w), <= 0
    where the image is still; ``moving`` uint8 (h, w), 1 next to a clear image
    change. First the camera's gain, from still places the net is sure are
    background, then the clearing: where ``seen >= confirm`` (confirmed), or
    next to motion where there is a memory at all. Updates ``s``, ``scene``,
    ``seen`` and ``gain`` in place and returns how many places were mostly cleared.
    """
    h, w = p.shape
    n0 = n1 = n2 = d0 = d1 = d2 = 0.0
    n = 0
    for i in range(h):
        for j in range(w):
            if p[i, j] < level and w_img[i, j] <= 0.0 and seen[i, j] > 0:
                n += 1
                n0 += colour[i, j, 0]
                n1 += colour[i, j, 1]
                n2 += colour[i, j, 2]
                d0 += scene[i, j, 0]
                d1 += scene[i, j, 1]
                d2 += scene[i, j, 2]
    if n >= min_places:  # scene holds colour / gain, so the sums' ratio is the new gain
        gain[0] = min(max(n0 / max(d0, 1e-3), 0.5 * gain[0]), 2.0 * gain[0])
        gain[1] = min(max(n1 / max(d1, 1e-3), 0.5 * gain[1]), 2.0 * gain[1])
        gain[2] = min(max(n2 / max(d2, 1e-3), 0.5 * gain[2]), 2.0 * gain[2])
    g0, g1, g2 = gain[0], gain[1], gain[2]
    i0, i1, i2 = 1.0 / g0, 1.0 / g1, 1.0 / g2
    inv = 1.0 / (hi - lo)
    cleared = 0
    for i in range(h):
        for j in range(w):
            c0, c1, c2 = colour[i, j, 0], colour[i, j, 1], colour[i, j, 2]
            shows = 0.0
            if seen[i, j] > 0:
                change = max(abs(c0 - scene[i, j, 0] * g0), abs(c1 - scene[i, j, 1] * g1),
                             abs(c2 - scene[i, j, 2] * g2))
                shows = min(max((hi - change) * inv, 0.0), 1.0)
                if seen[i, j] >= confirm or moving[i, j]:
                    s[i, j] *= 1.0 - shows
                    if shows > 0.5:
                        cleared += 1
            if p[i, j] < level:
                # the same colour again: one more frame of evidence; else a new memory
                seen[i, j] = min(seen[i, j] + 1, confirm) if shows > 0.5 else 1
                scene[i, j, 0] = c0 * i0
                scene[i, j, 1] = c1 * i1
                scene[i, j, 2] = c2 * i2
            elif seen[i, j] < confirm:
                if shows <= 0.5:
                    seen[i, j] = 0  # something else is there: forgotten
                elif p[i, j] < 0.5:
                    seen[i, j] += 1  # not said to be person, same colour: the run goes on
                else:
                    seen[i, j] = 1  # said to be person: kept, unconfirmed, the count restarts
    return cleared


@dataclass
class TemporalState:
    """What the filter carries from one frame to the next (all at net resolution).

    Attributes:
        prob: the stabilised probability of the previous frame, float32 (h, w).
        grey: the previous frame, grey float32 (h, w) in 0..255, blurred.
        frames: frames since the last reset.
        cuts: scene cuts detected since the filter was made.
        hold: fraction of places held (w < 0.5) in the last frame, for stats.
        cleared: fraction of places cleared as background in the last frame.
        tolerance: float32 (h, w): ``alpha_tol`` where the image did not change
            in the last frame, -1 where it did (None on a first frame or a cut);
            step 2 holds only where the alpha changed by less than this.
        alpha: the previous full-resolution output alpha (step 2).
        scene: float32 (h, w, 3), the blurred BGR colour (0..255, divided by
            ``gain``) last seen at each place while the net was sure it was
            background; meaningful only where ``seen`` > 0.
        seen: int32 (h, w), frames (up to ``scene_frames``) since the net was
            sure each place was background (p < ``scene_level``) or, if later,
            last said person there (p >= 0.5), while the colour stayed; 0: no
            memory (never seen, or another colour since). A place at
            ``scene_frames`` is confirmed and cleared wherever it shows that
            colour; an unconfirmed one only next to a clear image change.
        gain: float32 (3,), the camera's exposure and white-balance change per
            channel since the last reset, measured on places seen as background.
    """

    prob: np.ndarray | None = None
    grey: np.ndarray | None = None
    tolerance: np.ndarray | None = None
    alpha: np.ndarray | None = None
    scene: np.ndarray | None = None
    seen: np.ndarray | None = None
    gain: np.ndarray | None = None
    frames: int = 0
    cuts: int = 0
    hold: float = float("nan")
    cleared: float = float("nan")


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
        slack, span: a held value stays within ``slack + span * (1 - |2p - 1|)``
            of the net's probability ``p`` of this frame: where the net is
            sure, within ``slack``.
        clear: clear haze where the frame shows the background seen before.
        scene_level: probability below which a place counts as seen background.
        scene_lo, scene_hi: colour difference (0..255, largest over B, G, R, at
            net resolution after a 3x3 blur and the gain) from the remembered
            background below which a place still shows it (cleared in full),
            above which it shows something else (not cleared).
        scene_frames: frames (net runs) a place must show the same colour
            after the net was sure it was background, without the net saying
            person there (p >= 0.5), before that colour clears haze there
            whatever moves (the hysteresis that keeps a still person whom the
            net misses for a moment from being cleared once it sees them
            again). Before that, it clears only within ``_MOVING_NEAR`` net
            pixels of a clear image change (the haze a net draws next to a
            moving person); a still person is never cleared there for good.
    """

    name = "motion"

    def __init__(self, *, image_lo: float = 2.0, image_hi: float = 6.0, mask_lo: float = 0.3,
                 mask_hi: float = 0.8, leak: float = 0.03, spread: int = 1,
                 cut_level: float = 30.0, alpha_tol: float = 0.1, slack: float = 0.05,
                 span: float = 0.5, clear: bool = True, scene_level: float = 0.05,
                 scene_lo: float = 6.0, scene_hi: float = 12.0, scene_frames: int = 10):
        if not 0 <= image_lo < image_hi:
            raise ValueError("need 0 <= image_lo < image_hi")
        if not 0 <= mask_lo < mask_hi <= 1:
            raise ValueError("need 0 <= mask_lo < mask_hi <= 1")
        if not 0 <= scene_lo < scene_hi:
            raise ValueError("need 0 <= scene_lo < scene_hi")
        if scene_frames < 1:
            raise ValueError("scene_frames must be at least 1")
        for name, v in (("leak", leak), ("alpha_tol", alpha_tol), ("slack", slack),
                        ("span", span), ("scene_level", scene_level)):
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must lie in [0, 1]")
        self.image_lo, self.image_hi = float(image_lo), float(image_hi)
        self.mask_lo, self.mask_hi = float(mask_lo), float(mask_hi)
        self.leak = float(leak)
        self.spread = int(spread)
        self.cut_level = float(cut_level)
        self.alpha_tol = float(alpha_tol)
        self.slack, self.span = float(slack), float(span)
        self.clear = bool(clear)
        self.scene_level = float(scene_level)
        self.scene_lo, self.scene_hi = float(scene_lo), float(scene_hi)
        self.scene_frames = int(scene_frames)
        self._kernel = (np.ones((2 * self.spread + 1,) * 2, np.uint8)
                        if self.spread > 0 else None)
        r = _MOVING_NEAR
        self._near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        self.state = TemporalState()

    def reset(self) -> None:
        """Forget the previous frames (new camera, new clip); the next frame passes as is."""
        self.state = TemporalState(cuts=self.state.cuts)

    def _small(self, image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(colour float32 (h, w, 3), grey float32 (h, w)), both 0..255, 3x3-blurred."""
        # Bilinear, not area: OpenCV's area resize is slow for non-integer
        # factors, and the 3x3 blur below averages the noise anyway.
        small = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        colour = cv2.blur(small.astype(np.float32), (3, 3))
        return colour, cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)

    def _start(self, p: np.ndarray, colour: np.ndarray, grey: np.ndarray, cuts: int) -> np.ndarray:
        """A first frame (or a cut): it passes as is; only the seen background is kept."""
        self.state = TemporalState(prob=p.copy(), grey=grey, frames=1, cuts=cuts)
        if self.clear:
            self.state.gain = np.ones(3, np.float32)
            self.state.scene = colour.copy()
            self.state.seen = (p < self.scene_level).astype(np.int32)
        return p

    def update_probability(self, probability: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Stabilised probability float32 (h, w) for the net's ``probability`` of ``image``.

        Args:
            probability: float32 (h, w) in [0, 1], the net's output.
            image: the BGR uint8 frame (H, W, 3) it belongs to (any size).
        """
        p = np.asarray(probability, np.float32)
        if p.ndim != 2:
            raise ValueError(f"probability must be (h, w), got shape {p.shape}")
        colour, g = self._small(image, (p.shape[1], p.shape[0]))
        st = self.state
        if st.prob is None or st.prob.shape != p.shape:
            return self._start(p, colour, g, st.cuts)
        diff = cv2.absdiff(g, st.grey)
        if float(diff.mean()) > self.cut_level:
            return self._start(p, colour, g, st.cuts + 1)
        w_img = (diff - self.image_lo) * (1.0 / (self.image_hi - self.image_lo))
        if self._kernel is not None:
            w_img = cv2.dilate(w_img, self._kernel)
        s = np.empty_like(p)
        tol = np.empty_like(p)
        # Never hold what this frame contradicts: where the net is sure, stay near it.
        held = _follow(st.prob, p, w_img, np.float32(self.leak), np.float32(self.mask_lo),
                       np.float32(1.0 / (self.mask_hi - self.mask_lo)), np.float32(self.slack),
                       np.float32(self.span), np.float32(self.alpha_tol), s, tol)
        new = TemporalState(prob=s, grey=g, frames=st.frames + 1, cuts=st.cuts,
                            hold=held / s.size, tolerance=tol, alpha=st.alpha,
                            scene=st.scene, seen=st.seen, gain=st.gain)
        if self.clear and st.scene is not None:
            # A place the net was sure was background, and did not call person
            # in the scene_frames frames since, whose colour has not changed
            # since (after the camera's gain), still shows that background:
            # nobody can stand there without changing its colour. One sure
            # frame is not enough: a still person whom the net misses for a
            # moment shows the same colour when it sees them again. Next to
            # clear motion it is: there the net's haze follows a moving person,
            # and what is cleared comes back as soon as the motion stops.
            # The gain comes from still places only: where the net misses a
            # moving person (p < scene_level on it), the colour change is not the camera's.
            moving = cv2.dilate((w_img >= 1.0).astype(np.uint8), self._near)
            n = _clear_seen(s, p, colour, st.scene, st.seen, st.gain, w_img, moving,
                            np.float32(self.scene_level), np.float32(self.scene_lo),
                            np.float32(self.scene_hi), self.scene_frames, 64)
            new.cleared = n / s.size
        self.state = new
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
        out = _hold(alpha, prev, tol_rows, np.float32(self.slack), np.float32(self.span),
                    np.empty_like(alpha))
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
