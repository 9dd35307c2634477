"""The hand-off between the engine's threads: :class:`Work` items in bounded :class:`Slot` queues.

A live run uses one-item slots in ``latest`` mode, so a stage that falls
behind sees the newest frame, never a backlog (dropped frames are counted in
``stats.dropped``); a batch waits for room and loses nothing.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import TYPE_CHECKING

import numpy as np

from livebg.stats import StageStats
from livebg.types import Frame, Segmentation

if TYPE_CHECKING:
    from livebg.processor import Processor


@dataclasses.dataclass(frozen=True)
class Work:
    """One frame on its way through the threads; each stage adds its result.

    Attributes:
        frame: the captured frame, already fitted to the output size.
        captured: ``time.monotonic()`` when the capture thread got it (seconds).
        generation: which source it came from; the capture thread counts up
            for every source it opens, so a change means "new scene, reset state".
        processor: the stages to use for it, chosen by the segment thread
            (a reconfiguration swaps them between frames, never within one).
        segmentation: the net's output (segment thread), or ``processor.STILL``
            when the still gate let the frame reuse the last full run.
        alpha: the refined matte, float32 (H, W) in [0, 1] (matte thread).
    """

    frame: Frame
    captured: float
    generation: int
    processor: Processor | None = None
    segmentation: Segmentation | None = None
    alpha: np.ndarray | None = None

    def with_(self, **changes) -> Work:
        """A copy with some fields set (the item itself never changes once queued)."""
        return dataclasses.replace(self, **changes)


END = object()  # the end of a batch: passed from stage to stage, then ends the output
# Longest sleep of a thread waiting at a slot. A stop wakes every waiting thread
# at once (Slot.wake, from Engine.halt), so this only bounds a missed wake-up;
# while nobody watches, each thread wakes about once a second (20 times a second
# before: 1.6 % of a core idle on the 2-core test machine).
IDLE_WAIT = 1.0
_WAKE = object()  # put by Slot.wake: a waiting get returns None at once


class Slot:
    """A bounded queue; ``latest`` mode drops the oldest item when full."""

    def __init__(self, size: int, latest: bool, stats: StageStats):
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.latest = latest
        self.stats = stats

    def put(self, item, stop: threading.Event) -> bool:
        """Queue ``item``; False when ``stop`` was set first.

        Latest mode never waits: a full slot loses its oldest item. Otherwise
        it waits for room (a batch loses nothing).
        """
        while not stop.is_set():
            try:
                if self.latest:
                    self.q.put_nowait(item)
                else:
                    self.q.put(item, timeout=0.05)
                return True
            except queue.Full:
                if self.latest:
                    try:
                        self.q.get_nowait()
                    except queue.Empty:
                        continue
                    self.stats.drop()
        return False

    def get(self, timeout: float):
        """The next item, or None after ``timeout`` seconds without one or after :meth:`wake`."""
        try:
            item = self.q.get(timeout=timeout)
        except queue.Empty:
            return None
        return None if item is _WAKE else item

    def wake(self) -> None:
        """Make a waiting :meth:`get` return None now (the engine is stopping).

        A slot that is full has no waiting reader, so nothing is put there.
        """
        try:
            self.q.put_nowait(_WAKE)
        except queue.Full:
            pass
