"""The stages wired together for one stream: :class:`Processor`.

``Processor`` turns one BGR frame into one output frame (segment, refine,
temporal, composite) and owns the stages' state; batch tools and tests use it
directly, and the daemon (:mod:`livebg.engine.daemon`) splits it over its threads:
``segment`` (the net, stateless) on one, ``matte`` (temporal stage and
refinement, all the state) on the next, ``compose`` / ``compose_outputs`` on
the output thread.

With a still gate (:class:`~livebg.stages.still.StillGate`), ``segment``
returns :data:`STILL` instead of running the net for a frame in which
nothing moved since the last full run; ``matte`` then hands back that run's
alpha (the same array), and ``compose`` tells the compositor it may reuse
the colour estimates it made for that alpha. Motion runs everything at once.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from livebg.stages.protocols import Compositor, Refiner, Segmenter, TemporalStage
from livebg.stages.still import StillGate
from livebg.stats import StageStats, Timer
from livebg.types import Segmentation

log = logging.getLogger(__name__)


class _Still:
    """The type of :data:`STILL`."""

    def __repr__(self) -> str:
        return "STILL"


STILL = _Still()
"""What :meth:`Processor.segment` returns for a frame that may reuse the last full run."""


class Processor:
    """Frame -> output image. Not thread-safe; one per stream.

    Args:
        segmenter, refiner, compositor: the stages (:mod:`livebg.stages.protocols`).
        temporal: the temporal stage, or None for none; its ``update_probability``
            runs on the net's output before refinement, ``update`` on the
            refined alpha.
        stats: where stage timings go (a private one when None).
        still: optional :class:`~livebg.stages.still.StillGate`: skip the
            net and the refinement of frames where nothing moved.
        subject: optional; has ``update(probability) -> probability`` and
            ``reset()`` (:mod:`livebg.stages.subject`), called after the
            temporal stage's first step, before refinement.
    """

    def __init__(self, segmenter: Segmenter, refiner: Refiner, compositor: Compositor,
                 temporal: TemporalStage | None = None, stats: StageStats | None = None,
                 still: StillGate | None = None, subject=None):
        self.segmenter = segmenter
        self.refiner = refiner
        self.compositor = compositor
        self.temporal = temporal
        self.subject = subject
        self.stats = stats or StageStats()
        self.still = still
        self._last_alpha: np.ndarray | None = None  # matte's last full-run alpha
        self._reused: np.ndarray | None = None      # the alpha last handed back for a still frame

    def alpha(self, image: np.ndarray) -> np.ndarray:
        """Full-resolution alpha float32 (H, W) in [0, 1] for a BGR uint8 frame."""
        return self.matte(image, self.segment(image))

    def segment(self, image: np.ndarray) -> Segmentation | _Still:
        """The net's output for a BGR uint8 frame, or :data:`STILL` (see the module).

        May run ahead of :meth:`matte` on another thread: the still gate's
        state is this method's alone.
        """
        with Timer(self.stats, "segment"):
            if self.still is not None and self.still.check(image):
                return STILL
            return self.segmenter.segment(image)

    def matte(self, image: np.ndarray, seg: Segmentation) -> np.ndarray:
        """Temporal stage and refinement of ``seg`` (the net's output for ``image``).

        Every stateful step happens here, so one thread owns that state.
        Returns alpha float32 (H, W) in [0, 1]; for ``seg`` :data:`STILL`,
        the last full run's alpha itself (the net runs here instead when
        there is none, e.g. right after a reset).
        """
        if seg is STILL and self.subject is not None and self.subject.fading:
            seg = self.segmenter.segment(image)  # a fade must go on while the image is still
        if seg is STILL:
            last = self._last_alpha
            if last is not None and last.shape == image.shape[:2]:
                self._reused = last
                return last
            seg = self.segmenter.segment(image)
        self._reused = None
        alpha = self._full_matte(image, seg)
        self._last_alpha = alpha
        return alpha

    def _full_matte(self, image: np.ndarray, seg: Segmentation) -> np.ndarray:
        prob = seg.probability
        t_temporal = c_temporal = 0.0  # both temporal calls count as one "temporal" sample
        if self.temporal is not None:
            t0, c0 = time.perf_counter(), time.thread_time()
            prob = self.temporal.update_probability(prob, image)
            t_temporal, c_temporal = time.perf_counter() - t0, time.thread_time() - c0
        if self.subject is not None:
            with Timer(self.stats, "subject"):
                prob = self.subject.update(prob)
        with Timer(self.stats, "refine"):
            alpha = self.refiner.refine(image, prob, seg.features)
        if self.temporal is not None:
            t0, c0 = time.perf_counter(), time.thread_time()
            alpha = self.temporal.update(alpha, image)
            self.stats.add("temporal", (t_temporal + time.perf_counter() - t0) * 1e3)
            self.stats.add_cpu("temporal", (c_temporal + time.thread_time() - c0) * 1e3)
        return alpha

    def _still(self, alpha: np.ndarray) -> dict:
        """``still=True`` for the compositor when ``alpha`` was handed back for a still frame."""
        return {"still": True} if alpha is self._reused else {}

    def compose(self, image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        with Timer(self.stats, "composite"):
            return self.compositor.compose(image, alpha, **self._still(alpha))

    def compose_outputs(self, image: np.ndarray, alpha: np.ndarray, *,
                        with_alpha: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(output, BGRA output or None): the frame for all sinks, and one for those wanting alpha.

        With ``with_alpha`` the second frame is BGRA: colour = the estimated
        person colour, A = the matte (the output itself when the background
        is transparent), made by :meth:`Compositor.compose_pair` from the same
        colour estimates and timed as "composite_pair" instead of
        "composite". Without ``with_alpha`` nothing extra is done.
        """
        if not with_alpha:
            return self.compose(image, alpha), None
        # One set of colour estimates for both outputs, timed as "composite_pair"
        # so that status and bench show what the second output costs.
        with Timer(self.stats, "composite_pair"):
            return self.compositor.compose_pair(image, alpha, **self._still(alpha))

    def process(self, image: np.ndarray) -> np.ndarray:
        """Output frame (BGR, or BGRA for a transparent background) of the input's size."""
        return self.compose(image, self.alpha(image))

    def reset(self) -> None:
        """Forget state carried across frames (scene cut, new camera)."""
        self.refiner.reset()
        if self.temporal is not None:
            self.temporal.reset()
        self._last_alpha = self._reused = None
        if self.still is not None:
            self.still.reset()
        if self.subject is not None:
            self.subject.reset()
