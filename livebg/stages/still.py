"""Do nothing twice: skip the net and the refinement while nothing in the picture moves.

A webcam in a call mostly sees a still room and a person who moves a little.
:class:`StillGate` looks at each frame before the net runs, at the net's own
low resolution (the same blurred grey image the temporal stage compares), and
compares it with the frame of the last *full* run (not the previous frame, so
that a slow drift adds up and is caught). When no place changed by more than
sensor noise, the frame reuses the last full run's alpha: no net, no
refinement, no temporal update, and the compositor reuses its colour
estimates and blurred background (:meth:`~livebg.processor.Processor.compose`).

* Motion runs everything at once, on the frame it shows up in: no lag.
* While still, the net still runs every ``refresh`` frames (a lower rate),
  so that the temporal stage's slow convergence and a change too small to
  see in the grey image (lighting) still come through.
* A place "moved" when its grey level changed by more than ``image_hi``
  (one such place is enough), or when more than ``max_noisy`` of the places
  changed by more than ``image_lo`` (many small changes: a slow, low-contrast
  motion). Sensor noise stays under both after a 5x5 box blur: on the
  sample at 640x360 with sensor noise sigma 2 and JPEG 80, still frames
  differ by at most 2.8 levels and in 0.03 % of places by more than 2 (a
  3x3 blur: 5.0 and 0.5 %, too close), while one frame of the sample's
  motion changes 20 % of the places by more than 2 and peaks at 85.

The gate's state lives on the thread that calls :meth:`check` (the daemon's
segment thread); :meth:`reset` may be called from another thread and takes
effect at the next check.
"""

from __future__ import annotations

import cv2
import numpy as np


class StillGate:
    """Decides per frame whether the last full run's alpha can be reused.

    Args:
        size: (w, h) of the comparison image (the net's input size).
        image_lo, image_hi: grey-level changes (0..255, after a 3x3 blur),
            the temporal stage's thresholds for "still" and "moving".
        max_noisy: fraction of places allowed above ``image_lo``.
        refresh: a full run at least every this many frames (1: never skip).
    """

    def __init__(self, size: tuple[int, int], *, image_lo: float = 2.0, image_hi: float = 6.0,
                 max_noisy: float = 0.002, refresh: int = 4):
        if refresh < 1:
            raise ValueError("refresh must be >= 1")
        if not 0 <= image_lo < image_hi:
            raise ValueError("need 0 <= image_lo < image_hi")
        self.size = (int(size[0]), int(size[1]))
        self.image_lo, self.image_hi = float(image_lo), float(image_hi)
        self.max_noisy = float(max_noisy)
        self.refresh = int(refresh)
        self._ref: np.ndarray | None = None  # grey of the last full run
        self._since = 0                       # frames since the last full run
        self._reset = False
        self.skipped = 0                      # frames skipped so far (for stats and tests)
        self.full = 0                         # full runs so far

    def reset(self) -> None:
        """The next frame runs in full (new source, processor reset)."""
        self._reset = True

    def grey(self, image: np.ndarray) -> np.ndarray:
        """The comparison image: BGR uint8 (H, W, 3) -> blurred grey float32 (h, w)."""
        small = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.blur(small.astype(np.float32), (5, 5))

    def check(self, image: np.ndarray) -> bool:
        """True: ``image`` may reuse the last full run. False: run in full (recorded as such)."""
        g = self.grey(image)
        still = False
        if not self._reset and self._ref is not None and self._since + 1 < self.refresh:
            diff = cv2.absdiff(g, self._ref)
            still = (float(diff.max()) <= self.image_hi
                     and np.count_nonzero(diff > self.image_lo) <= self.max_noisy * diff.size)
        if still:
            self._since += 1
            self.skipped += 1
        else:
            self._reset = False
            self._ref = g
            self._since = 0
            self.full += 1
        return still
