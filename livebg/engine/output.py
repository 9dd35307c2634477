"""The output stage: composite each processed frame and hand it to every sink.

Runs on the engine's output thread. Sinks get the composited BGR frame (BGRA
for a transparent background); a sink whose class sets ``wants_alpha = True``
(the overlay) gets a BGRA cut-out instead (colour = the person's estimated
colour, A = the matte), made from the same colour estimates as the BGR
output (timed as "composite_pair"; done only when such a sink exists). In a live run, when no
fresh frame arrives within 2.5 frame periods (camera reopening, paused), the
last output, or a card saying why, is re-sent (at the camera's rate; a
paused card 5 times a second, once a second while nobody watches), so a
call never sees a dead device.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

import numpy as np

from livebg.engine.frames import make_card
from livebg.engine.slot import END, IDLE_WAIT, Slot, Work
from livebg.stats import StageStats, Timer

log = logging.getLogger(__name__)

CARD_TEXT = {"unavailable": "camera unavailable - reconnecting",
             "paused": "livebg paused",
             "starting": "starting camera"}


def _fill_in_wait(state: str, period: float) -> float:
    """Seconds without a new frame before a fill-in frame is sent, in engine ``state``.

    Nobody watching (idle): once a second, which keeps a consumer that opens
    the device from timing out; paused by the user: 5 times a second (the
    card does not change, and each frame costs the virtual camera's
    conversion: 5 % of a core at 30 a second on the 2-core test machine);
    running: after 2.5 frame periods (a late frame, not a stall); else
    (unavailable, starting) at the camera's rate.
    """
    if state == "idle":
        return 1.0
    if state == "paused":
        return max(period, 0.2)
    return 2.5 * period if state == "running" else period


def wants_alpha(sink) -> bool:
    """True for a sink whose ``wants_alpha`` is true now (BGRA frames, real alpha)."""
    return bool(sink.wants_alpha)


class Output:
    """Sinks, the latest output, and the fill-in frames.

    Args:
        sinks: opened sinks of ``size``.
        size: (w, h) of every frame.
        fps: the rate fill-in frames are sent at.
        stats: where "output" (writing to the sinks) and frame latency go.
    """

    def __init__(self, sinks: list, size: tuple[int, int], fps: float, stats: StageStats):
        self.sinks = sinks
        self.size = size
        self.fps = fps
        self.stats = stats
        self.alpha_wanted = any(wants_alpha(s) for s in sinks)
        self.last_output: np.ndarray | None = None   # what the plain sinks got last
        self.last_alpha: np.ndarray | None = None    # what the alpha sinks got last
        self.last_time = 0.0                          # time.monotonic() of the last new frame
        self._cards: dict[str, np.ndarray] = {}
        self._compositor = None  # the one the last frame used; closed when replaced

    def write(self, image: np.ndarray, with_alpha: np.ndarray | None = None) -> None:
        """``image`` to every sink, ``with_alpha`` (when given) to those that want alpha."""
        with Timer(self.stats, "output"):
            for sink in self.sinks:
                sink.write(with_alpha if with_alpha is not None and wants_alpha(sink)
                           else image)

    def card(self, state: str) -> np.ndarray:
        """The card for ``state`` over the dimmed last output (cached while both hold)."""
        key = f"{state}:{id(self.last_output)}"
        card = self._cards.get(key)
        if card is None:
            self._cards.clear()
            card = self._cards[key] = make_card(self.size, CARD_TEXT.get(state, "livebg"),
                                                self.last_output)
        return card

    def fill_in(self, state: str) -> None:
        """Re-send the last output, or a card saying why there is none (``state``)."""
        if state in ("paused", "unavailable"):
            self.write(self.card(state))
        elif self.last_output is not None:
            self.write(self.last_output, self.last_alpha)
        else:
            self.write(self.card("starting"))

    def close(self) -> list[Exception]:
        """Close every sink; call only once the output thread has ended. Returns what
        failed (a video file found incomplete: the run failed)."""
        failed = []
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:  # noqa: BLE001 - close the others anyway
                log.warning("closing %s: %s", s.describe(), e)
                failed.append(e)
        return failed

    def _use(self, compositor) -> None:
        """Note the compositor of this frame; close the one it replaced (a video background).

        Items arrive in order, so once a frame uses a new compositor no later
        frame uses the old one: closing it here, on its only user's thread, is safe.
        """
        old, self._compositor = self._compositor, compositor
        if old is not None and old is not compositor:
            old.close()

    def run(self, q: Slot, stop: threading.Event, *, live: Callable[[], bool],
            state: Callable[[], str], on_error: Callable[[BaseException], None]) -> None:
        """Composite and write :class:`Work` items from ``q`` until ``END`` or ``stop``.

        ``state()`` is the engine's state (running, paused, idle, unavailable,
        starting) for the fill-in frames while ``live()`` (a batch can turn
        live, never back). A frame that fails to composite goes to
        ``on_error`` when live, else raises.
        """
        period = 1.0 / max(1.0, self.fps)
        last_write = time.monotonic()
        while True:
            # Sleep until the next fill-in frame would be due (a frame, END or a
            # stop wakes it sooner): about once a second while nobody watches.
            due = last_write + _fill_in_wait(state(), period) if live() else math.inf
            item = q.get(min(IDLE_WAIT, max(0.002, due - time.monotonic())))
            if item is END:
                return
            if item is None:
                if stop.is_set():
                    return
                if live():
                    last_write = self._fill_in_due(state(), period, last_write)
                continue
            if not self._write_work(item, live(), on_error):
                continue
            last_write = self.last_time
            self.stats.frame_done((last_write - item.captured) * 1e3)

    def _fill_in_due(self, st: str, period: float, last_write: float) -> float:
        """Send a fill-in frame when none came for a while; returns the new last write time."""
        now = time.monotonic()
        wait = _fill_in_wait(st, period)
        if now - last_write >= wait:
            self.fill_in(st)
            return now if now - last_write > 2 * wait else last_write + wait
        return last_write

    def _write_work(self, work: Work, live: bool, on_error) -> bool:
        """Composite ``work`` and write it; False when it failed (live: counted, skipped)."""
        proc = work.processor
        self._use(proc.compositor)
        try:
            # Asked per frame: an overlay wants its cut-out only while a page watches.
            out, out_alpha = proc.compose_outputs(
                work.frame.image, work.alpha, with_alpha=any(wants_alpha(s) for s in self.sinks))
        except Exception as e:  # noqa: BLE001
            if not live:
                raise
            on_error(e)
            return False
        self.write(out, out_alpha)
        self.last_output, self.last_alpha = out, out_alpha
        self.last_time = time.monotonic()
        return True
