"""The stages wired together for one stream: :class:`Processor`.

``Processor`` turns one BGR frame into one output frame (segment, refine,
temporal, composite) and owns the stages' state; batch tools and tests use it
directly, and the daemon (:mod:`livebg.engine.daemon`) splits it over its threads:
``segment`` (the net, stateless) on one, ``matte`` (temporal stage and
refinement, all the state) on the next, ``compose`` / ``compose_outputs`` on
the output thread.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from livebg.stages.protocols import Compositor, Refiner, Segmenter, TemporalStage
from livebg.stats import StageStats, Timer
from livebg.types import Segmentation

log = logging.getLogger(__name__)


class Processor:
    """Frame -> output image. Not thread-safe; one per stream.

    Args:
        segmenter, refiner, compositor: the stages (:mod:`livebg.stages.protocols`).
        temporal: the temporal stage, or None for none; its ``update_probability``
            runs on the net's output before refinement, ``update`` on the
            refined alpha.
        stats: where stage timings go (a private one when None).
    """

    def __init__(self, segmenter: Segmenter, refiner: Refiner, compositor: Compositor,
                 temporal: TemporalStage | None = None, stats: StageStats | None = None):
        self.segmenter = segmenter
        self.refiner = refiner
        self.compositor = compositor
        self.temporal = temporal
        self.stats = stats or StageStats()

    def alpha(self, image: np.ndarray) -> np.ndarray:
        """Full-resolution alpha float32 (H, W) in [0, 1] for a BGR uint8 frame."""
        return self.matte(image, self.segment(image))

    def segment(self, image: np.ndarray) -> Segmentation:
        """The net's output for a BGR uint8 frame. Stateless: may run ahead of :meth:`matte`."""
        with Timer(self.stats, "segment"):
            return self.segmenter.segment(image)

    def matte(self, image: np.ndarray, seg: Segmentation) -> np.ndarray:
        """Temporal stage and refinement of ``seg`` (the net's output for ``image``).

        Every stateful step happens here, so one thread owns that state.
        Returns alpha float32 (H, W) in [0, 1].
        """
        prob = seg.probability
        t_temporal = c_temporal = 0.0  # both temporal calls count as one "temporal" sample
        if self.temporal is not None:
            t0, c0 = time.perf_counter(), time.thread_time()
            prob = self.temporal.update_probability(prob, image)
            t_temporal, c_temporal = time.perf_counter() - t0, time.thread_time() - c0
        with Timer(self.stats, "refine"):
            alpha = self.refiner.refine(image, prob, seg.features)
        if self.temporal is not None:
            t0, c0 = time.perf_counter(), time.thread_time()
            alpha = self.temporal.update(alpha, image)
            self.stats.add("temporal", (t_temporal + time.perf_counter() - t0) * 1e3)
            self.stats.add_cpu("temporal", (c_temporal + time.thread_time() - c0) * 1e3)
        return alpha

    def compose(self, image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        with Timer(self.stats, "composite"):
            return self.compositor.compose(image, alpha)

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
            return self.compositor.compose_pair(image, alpha)

    def process(self, image: np.ndarray) -> np.ndarray:
        """Output frame (BGR, or BGRA for a transparent background) of the input's size."""
        return self.compose(image, self.alpha(image))

    def reset(self) -> None:
        """Forget state carried across frames (scene cut, new camera)."""
        self.refiner.reset()
        if self.temporal is not None:
            self.temporal.reset()
