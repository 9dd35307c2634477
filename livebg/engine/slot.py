"""The hand-off between the engine's threads: a bounded queue that can drop the oldest.

A live run uses one-item slots in ``latest`` mode, so a stage that falls
behind sees the newest frame, never a backlog (dropped frames are counted in
``stats.dropped``); a batch waits for room and loses nothing.
"""

from __future__ import annotations

import queue
import threading

from livebg.stats import StageStats


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
                        self.stats.dropped += 1
                    except queue.Empty:
                        pass
        return False

    def get(self, timeout: float):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None
