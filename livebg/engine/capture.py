"""The capture stage: owns the source, reads it, and reopens it when it fails.

:class:`Capture` runs on the engine's capture thread. For a live camera it
opens the device only while it is wanted (not paused, someone watching),
closes and reopens a camera that fails, vanishes or returns empty frames with
a doubling wait (0.25 s up to ``daemon.reopen_max``), and reports each episode
once, naming the process that holds a busy camera. Every frame is fitted to
the output size, which never changes. A file or sample played live is paced
like a camera by :class:`PacedSource`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from livebg.config import Config
from livebg.engine.frames import even_size, fit_frame
from livebg.engine.slot import Slot, Work
from livebg.stages.sources import CameraSource
from livebg.stats import StageStats
from livebg.types import Frame

log = logging.getLogger(__name__)

REOPEN_FIRST = 0.25  # first wait before reopening a failed camera
FAULT_READS = 5      # consecutive failed reads that make a fault
FAULT_SECONDS = 1.0  # ...or this long without a good frame


def is_camera(spec: str) -> bool:
    return spec == "camera" or spec.startswith(("camera:", "/dev/video"))


def camera_device(cfg: Config) -> str | None:
    """The device path of the configured camera, or None for other inputs."""
    from livebg.system.devices import device_path

    spec = cfg.input
    if not is_camera(spec):
        return None
    if spec.startswith("camera:"):
        return device_path(spec.split(":", 1)[1])
    if spec.startswith("/dev/"):
        return device_path(spec)
    return device_path(cfg.camera.device)


class PacedSource:
    """Delivers a file's frames in real time, like a camera.

    Sleeps until each frame is due at ``fps`` and stamps it with
    ``time.monotonic()`` when delivered. Falls behind gracefully: a late
    frame is delivered at once and the schedule restarts from it.
    """

    def __init__(self, source, fps: float | None = None):
        self.source = source
        self.fps = float(fps or source.fps or 30.0)
        self.width, self.height = source.width, source.height
        self._next: float | None = None
        self.last_wait = 0.0  # seconds the last read slept for its turn

    def read(self) -> Frame | None:
        now = time.monotonic()
        self.last_wait = 0.0
        if self._next is None or now - self._next > 1.0 / self.fps:
            self._next = now
        elif self._next > now:
            self.last_wait = self._next - now
            time.sleep(self.last_wait)
        frame = self.source.read()
        self._next += 1.0 / self.fps
        if frame is None:
            return None
        return Frame(image=frame.image, timestamp=time.monotonic(), index=frame.index)

    def describe(self) -> str:
        return f"{self.source.describe()}, paced at {self.fps:g} fps"

    def close(self) -> None:
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def output_size(cfg: Config, source) -> tuple[tuple[int, int], float]:
    """((w, h), fps) of the output, fixed for the run: the source's, or the camera's setting.

    ``source`` is the first source opened (None for a live camera, opened
    later on demand); the size is rounded down to even numbers.
    """
    if source is not None and not is_camera(cfg.input):
        w, h, fps = source.width, source.height, source.fps
    else:
        cam = cfg.camera
        w, h, fps = cam.width, cam.height, cam.fps
        if source is not None and source.fps:
            fps = source.fps
    return even_size(int(w), int(h)), float(fps or 30.0)


def default_source(cfg: Config, live: bool):
    """The configured input; a file or sample played live loops and is paced."""
    from livebg.factory import make_source

    if live and not is_camera(cfg.input):
        return PacedSource(make_source(cfg, count=None, loop=True))
    return make_source(cfg, count=None)


class Capture:
    """Source -> fitted frames, with reopening; the body of the capture thread.

    Args:
        factory: ``f(cfg, live) -> source``.
        live: reopen, retry and report failures (else a failure raises and
            the end of the stream ends the run).
        size: the output size (w, h) every frame is fitted to.
        config: returns the current configuration (it may change while running).
        stats: where the "grab" timing and drops go.
        max_frames: stop after this many frames.

    ``state`` is one of starting, running, paused, unavailable, ended;
    ``problem`` the current fault in one line (empty when none);
    ``generation`` counts the sources opened (each frame carries it, so the
    stages downstream reset exactly at a new source's first frame); ``hold``
    says why the source is not wanted now (``paused`` by the user, ``idle``:
    nobody watches), None when it is (set it with :meth:`set_hold`).
    """

    def __init__(self, factory: Callable[[Config, bool], Any], *, live: bool,
                 size: tuple[int, int], config: Callable[[], Config], stats: StageStats,
                 max_frames: int | None = None):
        self.factory = factory
        self.live = live
        self.size = size
        self.config = config
        self.stats = stats
        self.max_frames = max_frames
        self.state = "starting"
        self.problem = ""
        self.source = None
        self.info: dict = {}
        self.frames = 0          # frames delivered
        self.generation = 0      # sources opened so far; the frames of each carry its number
        self.hold: str | None = None
        self._hold_text = ""
        self._reopen = False
        self._wake = threading.Event()
        # the read loop's own state (one thread)
        self._delay = REOPEN_FIRST
        self._next_try = 0.0
        self._fails = 0
        self._last_good = 0.0
        self._scaled_from: tuple | None = None

    # -- from other threads -------------------------------------------------

    def wake(self) -> None:
        """Look again at the hold and stop state now."""
        self._wake.set()

    def set_hold(self, hold: str | None, why: str = "") -> None:
        """Release the source (``hold`` = ``paused`` or ``idle``, ``why`` for the log) or want it.

        Wanting it again shows "starting" until the first frame.
        """
        if hold is None and self.hold is not None and self.state == "paused":
            self.state = "starting"
        self.hold, self._hold_text = hold, why or (hold or "")
        self._wake.set()

    def request_reopen(self) -> None:
        """Close the source and open it again (its configuration changed)."""
        self._reopen = True
        self._wake.set()

    # -- the source -----------------------------------------------------------

    def set_source(self, source) -> None:
        """Use ``source`` (None: none); an opened source starts a new generation."""
        self.source = source
        if source is None:
            self.info = {}
            return
        self.generation += 1
        info: dict = {"describe": source.describe(), "width": int(source.width),
                      "height": int(source.height), "fps": float(source.fps)}
        if isinstance(source, CameraSource):
            info.update(device=str(source.device), fourcc=str(source.fourcc))
        self.info = info

    def describe(self) -> str:
        return self.info.get("describe") or f"{self.config().input} (not open)"

    def close_source(self) -> None:
        src, self.source = self.source, None
        if src is not None:
            try:
                src.close()
            except Exception as e:  # noqa: BLE001
                log.debug("closing the source: %s", e)

    def note_fault(self, error: BaseException | str) -> None:
        """Log the first failure of an episode in one line, with who holds a busy camera."""
        from livebg.system.devices import describe_holders, holders

        text = " ".join(str(error).split()) or type(error).__name__
        dev = camera_device(self.config())
        if dev:
            if not os.path.exists(dev):
                text = f"camera {dev} not found (unplugged?)"
            else:
                who = holders(dev, exclude={os.getpid()})
                if who:
                    text = (f"camera {dev} is busy: held by {describe_holders(who)}; close it "
                            "there, or choose another camera with camera.device")
        if text != self.problem:
            log.warning("%s; retrying, the virtual camera shows a 'camera unavailable' "
                        "frame meanwhile", text)
        self.problem = text

    # -- the thread -----------------------------------------------------------

    def run(self, out: Slot, stop: threading.Event) -> None:
        """Read until ``stop``, the end of a batch, or ``max_frames``; put :class:`Work` in ``out``.

        Returns when the stream ended or ``stop`` was set; the source is closed
        unless a put was cut short by ``stop``.
        """
        self._last_good = time.monotonic()
        while not stop.is_set():
            if self.max_frames is not None and self.frames >= self.max_frames:
                break
            if self._reopen:
                self._reopen = False
                self.close_source()
                self._next_try = 0.0
            if self.hold:
                self._release()
                continue
            if self.source is None and not self._open():
                continue
            t0 = time.monotonic()
            frame = self._read()
            if frame is None:
                if not self.live:
                    break  # end of the stream
                continue
            work = self._deliver(frame, t0)
            if not out.put(work, stop):
                return
        self.state = "ended"
        self.close_source()

    def _release(self) -> None:
        if self.source is not None:
            self.close_source()
            log.info("camera released (%s)", self._hold_text)
        self.state = "paused"
        # A hold change, a reopen or a stop sets _wake: no need to look more often.
        self._wake.wait(1.0)
        self._wake.clear()

    def _retry_later(self, error: BaseException | str) -> None:
        self.state = "unavailable"
        self.note_fault(error)
        self._next_try = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.config().daemon.reopen_max)

    def _open(self) -> bool:
        """Open the source when it is time; True when it is open (a new generation)."""
        now = time.monotonic()
        if now < self._next_try:
            self._wake.wait(min(0.1, self._next_try - now))
            self._wake.clear()
            return False
        try:
            src = self.factory(self.config(), self.live)
        except Exception as e:  # noqa: BLE001
            if not self.live:
                raise
            self._retry_later(e)
            return False
        self.set_source(src)
        self._last_good = time.monotonic()
        self._fails = 0
        log.info("source open: %s", src.describe())
        return True

    def _read(self) -> Frame | None:
        """The next good frame, or None (a failed read, counted, or the end of a batch)."""
        error: BaseException | None = None
        try:
            frame = self.source.read()
        except Exception as e:  # noqa: BLE001 - a camera driver can raise anything
            if not self.live:
                raise
            frame, error = None, e
        if frame is not None and frame.image is not None and frame.image.size > 0:
            return frame
        if self.live:
            self._fails += 1
            if (self._fails >= FAULT_READS
                    or time.monotonic() - self._last_good > FAULT_SECONDS):
                self._retry_later(error or f"{self.describe()}: no frames")
                self.close_source()
            else:
                time.sleep(0.01)
        return None

    def _deliver(self, frame: Frame, t0: float) -> Work:
        """A good frame, fitted to the output size, stamped with the time and generation."""
        t_cap = time.monotonic()
        t0 += self.source.last_wait if isinstance(self.source, PacedSource) else 0.0
        if self._fails or self.state != "running":
            if self.problem:
                log.info("source back: %s", self.describe())
            self.problem = ""
        self._fails, self._delay, self._last_good = 0, REOPEN_FIRST, t_cap
        self.state = "running"
        image = frame.image
        ih, iw = image.shape[:2]
        if (iw, ih) != self.size:
            if self._scaled_from != (iw, ih):
                self._scaled_from = (iw, ih)
                log.info("source gives %dx%d: frames are fitted to the output's %dx%d",
                         iw, ih, *self.size)
            image = fit_frame(image, self.size)
        self.stats.add("grab", (time.monotonic() - t0) * 1e3)
        self.frames += 1
        return Work(Frame(image, frame.timestamp, frame.index), t_cap, self.generation)
