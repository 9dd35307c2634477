"""Stages wired together: a single-threaded Processor and a threaded Pipeline.

``Processor`` turns one BGR frame into one output frame (segment, refine,
temporal, composite) and owns the stages' state; batch tools and tests use it
directly. ``Pipeline`` runs a source, a processor and sinks on three threads
joined by bounded queues, so reading, the net and compositing overlap on
different cores (OpenCV, ONNX Runtime and the numba kernels release the GIL)::

    reader ──q──► segment+refine+temporal ──q──► composite+sinks
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from livebg.stats import StageStats, Timer
from livebg.types import Frame

log = logging.getLogger(__name__)

_END = object()  # end-of-stream marker travelling through the queues


class Processor:
    """Frame -> output image. Not thread-safe; one per stream.

    Args:
        segmenter: has ``segment(image) -> Segmentation``.
        refiner: has ``refine(image, probability, features) -> alpha`` and ``reset()``.
        compositor: has ``compose(image, alpha) -> output``.
        temporal: optional; has ``update(alpha, image) -> alpha`` (called on the
            refined alpha) and ``reset()``, and optionally
            ``update_probability(probability, image) -> probability``, called on
            the net's output before refinement.
        stats: where stage timings go (a private one when None).
    """

    def __init__(self, segmenter, refiner, compositor, temporal=None,
                 stats: StageStats | None = None):
        self.segmenter = segmenter
        self.refiner = refiner
        self.compositor = compositor
        self.temporal = temporal
        self.stats = stats or StageStats()

    def alpha(self, image: np.ndarray) -> np.ndarray:
        """Full-resolution alpha float32 (H, W) in [0, 1] for a BGR uint8 frame."""
        with Timer(self.stats, "segment"):
            seg = self.segmenter.segment(image)
        prob = seg.probability
        early = getattr(self.temporal, "update_probability", None)
        t_temporal = 0.0  # both temporal calls count as one "temporal" sample
        if early is not None:
            t0 = time.perf_counter()
            prob = early(prob, image)
            t_temporal = time.perf_counter() - t0
        with Timer(self.stats, "refine"):
            alpha = self.refiner.refine(image, prob, seg.features)
        if self.temporal is not None:
            t0 = time.perf_counter()
            alpha = self.temporal.update(alpha, image)
            self.stats.add("temporal", (t_temporal + time.perf_counter() - t0) * 1e3)
        return alpha

    def compose(self, image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        with Timer(self.stats, "composite"):
            return self.compositor.compose(image, alpha)

    def process(self, image: np.ndarray) -> np.ndarray:
        """Output frame (BGR, or BGRA for a transparent background) of the input's size."""
        return self.compose(image, self.alpha(image))

    def reset(self) -> None:
        """Forget state carried across frames (scene cut, new camera)."""
        self.refiner.reset()
        if self.temporal is not None:
            self.temporal.reset()


@dataclass
class RunResult:
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Pipeline:
    """Source -> Processor -> sinks on three threads with bounded queues.

    Args:
        latest_wins: for live sources: when processing falls behind, the
            reader drops the oldest waiting frame instead of blocking, so
            latency never grows.
        queue_size: bound of each queue (frames in flight between stages).
    """

    def __init__(self, source, processor: Processor, sinks: list, *,
                 stats: StageStats | None = None, latest_wins: bool = False,
                 queue_size: int = 2):
        self.source = source
        self.processor = processor
        self.sinks = sinks
        self.stats = stats or processor.stats
        self.latest_wins = latest_wins
        self._q_in: queue.Queue = queue.Queue(maxsize=queue_size)
        self._q_out: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.last_output: np.ndarray | None = None

    def stop(self) -> None:
        """Ask every thread to finish; ``run`` returns soon after."""
        self._stop.set()

    def _put(self, q: queue.Queue, item, drop_oldest: bool = False) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                if drop_oldest:
                    try:
                        q.get_nowait()
                        self.stats.dropped += 1
                    except queue.Empty:
                        pass
        return False

    def _get(self, q: queue.Queue):
        while not self._stop.is_set():
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                continue
        return _END

    def _guard(self, fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - re-raised by run()
                self._errors.append(e)
                self._stop.set()
        return run

    def _read_loop(self, max_frames: int | None) -> None:
        n = 0
        while not self._stop.is_set() and (max_frames is None or n < max_frames):
            t0 = time.perf_counter()
            frame = self.source.read()
            if frame is None:
                break
            self.stats.add("grab", (time.perf_counter() - t0) * 1e3)
            if not self._put(self._q_in, frame, drop_oldest=self.latest_wins):
                return
            n += 1
        self._put(self._q_in, _END)

    def _segment_loop(self) -> None:
        while True:
            frame = self._get(self._q_in)
            if frame is _END:
                self._put(self._q_out, _END)
                return
            alpha = self.processor.alpha(frame.image)
            if not self._put(self._q_out, (frame, alpha)):
                return

    def _output_loop(self) -> None:
        while True:
            item = self._get(self._q_out)
            if item is _END:
                return
            frame, alpha = item
            out = self.processor.compose(frame.image, alpha)
            with Timer(self.stats, "output"):
                for sink in self.sinks:
                    sink.write(out)
            self.last_output = out
            self.stats.frame_done(self._latency_ms(frame))

    @staticmethod
    def _latency_ms(frame: Frame) -> float | None:
        # Live sources stamp frames with time.monotonic(); files with media time.
        now = time.monotonic()
        lat = (now - frame.timestamp) * 1e3
        return lat if 0 <= lat < 10_000 else None

    def run(self, max_frames: int | None = None, *, log_every: float = 0.0) -> RunResult:
        """Run until the source ends, ``max_frames`` are read, or ``stop()``.

        Args:
            log_every: seconds between per-stage timing lines in the log (0: never).
        Raises:
            whatever a stage raised, after all threads have stopped.
        """
        threads = [
            threading.Thread(target=self._guard(lambda: self._read_loop(max_frames)),
                             name="livebg-read", daemon=True),
            threading.Thread(target=self._guard(self._segment_loop), name="livebg-segment",
                             daemon=True),
            threading.Thread(target=self._guard(self._output_loop), name="livebg-output",
                             daemon=True),
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        next_log = time.monotonic() + log_every
        try:
            while threads[-1].is_alive():
                threads[-1].join(timeout=0.1)
                if log_every and time.monotonic() >= next_log:
                    log.info("%s", self.stats.line())
                    next_log += log_every
        except KeyboardInterrupt:
            self.stop()
        self.stop()
        for t in threads:
            t.join(timeout=2.0)
        seconds = time.perf_counter() - t0
        if self._errors:
            raise self._errors[0]
        return RunResult(frames=self.stats.frames, seconds=seconds)
