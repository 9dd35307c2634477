"""The engine's four threads, side by side, and what they share (:class:`Engine`).

::

    capture ──slot──► segment ──slot──► matte ──slot──► output
    (Work: frame,     (+ processor,     (+ alpha)       composite, sinks,
     captured,         segmentation)                    fill-in frames
     generation)

Each thread takes :class:`~livebg.engine.slot.Work` items from one slot and
puts them, with its result added, into the next. The capture thread stamps
every frame with its source's generation, so the matte thread resets the
stateful stages exactly at the first frame of a new source, whatever was
dropped on the way. :class:`Engine` owns the slots, the stop event, the
processor new frames are given, the per-frame error count, and the threads.
"""

from __future__ import annotations

import logging
import threading
import time

from livebg.engine.capture import Capture
from livebg.engine.output import Output
from livebg.engine.slot import END, IDLE_WAIT, Slot
from livebg.processor import Processor
from livebg.sinks.base import StopRequested
from livebg.stats import StageStats

log = logging.getLogger(__name__)

OUTPUT_JOIN = 10.0  # seconds a stop waits for a sink's write before leaving the sinks open


def one_opencv_thread() -> None:
    """Make OpenCV run each call on the calling thread (process-wide).

    The engine's four threads already keep the cores busy; OpenCV's own pool
    on top of them adds hand-offs and spinning, not speed. Measured on the
    2-core test machine (1280x720, defaults), alternating runs: the paced
    daemon 123-128 % -> 110-115 % of one core (the pool's own threads; the
    engine threads' CPU stayed the same, p95 latency within noise), the
    bench's serial run (``measure_cpu``) 40-45 -> 33-35 CPU ms a frame.
    """
    import cv2

    cv2.setNumThreads(1)


def reuse_freed_memory() -> bool:
    """Make glibc keep freed large blocks for reuse (process-wide); False where it cannot.

    Each frame allocates several arrays of 1-4 MB (the frame, the mattes, the
    output). By default glibc often maps one afresh and unmaps it when freed,
    so the kernel zeroes its pages on first touch again. With the mmap and
    trim thresholds raised they come from the heap and are reused. Measured
    at 1280x720 on the 2-core test machine, alternating runs: the bench's
    serial run 450-620 -> 40-50 page faults a frame, system time 1.8-2.4 ->
    0.1-0.3 ms, 33-34 -> 30-32 CPU ms a frame; the paced daemon 380-410 ->
    105 faults a frame, system time 1.9 -> 0.9 ms (its CPU share moved less
    than the runs' noise, +-3 %); peak memory the same (324 and 385 MB).
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt to speak of)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 256 << 20)) and bool(mallopt(m_trim_threshold, 512 << 20))


def tune_process() -> None:
    """The process-wide settings every frame loop wants: :func:`one_opencv_thread`
    and :func:`reuse_freed_memory` (the daemon, and the bench's serial runs that
    stand for it)."""
    one_opencv_thread()
    reuse_freed_memory()


class Engine:
    """The threads of one run and what they share.

    Args:
        capture: the source side (its thread body is :meth:`Capture.run`).
        output: the sinks side (:meth:`Output.run`).
        processor: the stages given to each new frame; swap it with
            :attr:`processor` between frames (a reconfiguration).
        stats: timings and counts, shared by every part.
        live: latest-frame-wins slots, per-frame errors logged and skipped,
            fill-in frames; else a batch (every frame, errors raise).
        stop: set to stop every thread.
    """

    def __init__(self, capture: Capture, output: Output, processor: Processor,
                 stats: StageStats, *, live: bool, stop: threading.Event):
        self.capture = capture
        self.output = output
        self.processor = processor
        self.stats = stats
        self.live = live
        self.stop = stop
        self.errors: list[BaseException] = []   # what ended a thread
        self.frame_errors = 0                    # live frames that failed and were skipped
        size = 1 if live else 2
        self.slots = [Slot(size, live, stats) for _ in range(3)]
        self.threads: list[threading.Thread] = []

    def state(self) -> str:
        """paused (by the user), idle (no audience), or the capture's state."""
        return self.capture.hold or self.capture.state

    def go_live(self) -> None:
        """Turn a batch into a live run (a switch to a camera): newest frame wins, failures
        are retried with the "camera unavailable" card, fill-in frames. Never back."""
        self.live = True
        self.capture.live = True
        for slot in self.slots:
            slot.latest = True

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        tune_process()
        for name, body in (("capture", capture_loop), ("segment", segment_loop),
                           ("matte", matte_loop), ("output", output_loop)):
            t = threading.Thread(target=self._guard, args=(body,), name=f"livebg-{name}",
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def _guard(self, body) -> None:
        try:
            body(self)
        except StopRequested as e:
            log.info("%s: stopping", e)
            self.halt()
        except BaseException as e:  # noqa: BLE001 - re-raised by Daemon.run
            log.debug("thread %s failed", threading.current_thread().name, exc_info=True)
            self.errors.append(e)
            self.halt()

    def halt(self) -> None:
        """Ask every thread to stop; a waiting one notices at once, a busy one after its frame."""
        self.stop.set()
        self.capture.wake()
        for slot in self.slots:
            slot.wake()

    @property
    def output_alive(self) -> bool:
        return any(t.is_alive() for t in self.threads if t.name == "livebg-output")

    def join(self, timeout: float = 3.0) -> bool:
        """Stop and wait for the threads; True when the sinks may be closed.

        The output thread gets up to ``OUTPUT_JOIN`` seconds: a sink is never
        closed while a write to it may still be running.
        """
        self.halt()
        # 3 s: a stage notices the stop between frames, and one 720p frame took up to
        # about 1 s of wall time on 2 cores under load 12 (0.6 s left the matte thread
        # running into the interpreter's exit once).
        deadline = time.monotonic() + timeout
        for t in self.threads:
            wait = OUTPUT_JOIN if t.name == "livebg-output" else deadline - time.monotonic()
            t.join(timeout=max(0.05, wait))
        for t in self.threads:
            if t.is_alive():
                log.warning("thread %s did not stop in time", t.name)
        return not self.output_alive

    @property
    def capture_alive(self) -> bool:
        return any(t.is_alive() for t in self.threads if t.name == "livebg-capture")

    # -- shared by the loops ------------------------------------------------------

    def items(self, src: Slot, dst: Slot):
        """Items from ``src`` until the end marker (passed on to ``dst``) or a stop."""
        while True:
            item = src.get(IDLE_WAIT)
            if item is None:
                if self.stop.is_set():
                    return
                continue
            if item is END:
                dst.put(END, self.stop)
                return
            yield item

    def frame_error(self, e: BaseException) -> None:
        """A live frame failed: count it, log the 1st, 10th, 100th and every 1000th, go on."""
        self.frame_errors += 1
        n = self.frame_errors
        if n in (1, 10, 100) or n % 1000 == 0:
            log.error("processing a frame failed (%d so far): %s", n, e, exc_info=n == 1)


# -- the thread bodies ---------------------------------------------------------------


def capture_loop(e: Engine) -> None:
    """Source -> Work(frame, captured, generation); the end of a batch puts END."""
    q_in = e.slots[0]
    e.capture.run(q_in, e.stop)
    q_in.put(END, e.stop)


def segment_loop(e: Engine) -> None:
    """The net only (stateless), so that it overlaps the refinement of the previous frame."""
    q_in, q_mid = e.slots[0], e.slots[1]
    for work in e.items(q_in, q_mid):
        proc = e.processor
        try:
            seg = proc.segment(work.frame.image)
        except Exception as err:  # noqa: BLE001
            if not e.live:
                raise
            e.frame_error(err)
            continue
        if not q_mid.put(work.with_(processor=proc, segmentation=seg), e.stop):
            return


def matte_loop(e: Engine) -> None:
    """Temporal stage and refinement: every stateful step, so their state has one owner."""
    q_mid, q_out = e.slots[1], e.slots[2]
    generation = None
    for work in e.items(q_mid, q_out):
        proc = work.processor
        if work.generation != generation:  # tagged at capture: a new source starts afresh
            generation = work.generation
            proc.reset()
        try:
            alpha = proc.matte(work.frame.image, work.segmentation)
        except Exception as err:  # noqa: BLE001
            if not e.live:
                raise
            e.frame_error(err)
            continue
        if not q_out.put(work.with_(alpha=alpha), e.stop):
            return


def output_loop(e: Engine) -> None:
    """Composite and write each frame; fill in when none comes (live)."""
    e.output.run(e.slots[2], e.stop, live=lambda: e.live, state=e.state,
                 on_error=e.frame_error)
