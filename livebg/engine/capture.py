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
        self.fps = float(fps or getattr(source, "fps", 30.0) or 30.0)
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
        w, h, fps = source.width, source.height, getattr(source, "fps", 30.0)
    else:
        cam = cfg.camera
        w, h, fps = cam.width, cam.height, cam.fps
        if source is not None and getattr(source, "fps", 0):
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
    ``problem`` the current fault in one line (empty when none).
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
        self.fresh = False       # a new source opened: the next frame starts a new scene
        self._reopen = False
        self._wake = threading.Event()

    # -- from other threads -------------------------------------------------

    def wake(self, resuming: bool = False) -> None:
        """Look again at the pause state now (``resuming``: show 'starting' meanwhile)."""
        if resuming and self.state == "paused":
            self.state = "starting"
        self._wake.set()

    def request_reopen(self) -> None:
        """Close the source and open it again (its configuration changed)."""
        self._reopen = True
        self._wake.set()

    # -- the source -----------------------------------------------------------

    def set_source(self, source) -> None:
        self.source = source
        if source is None:
            self.info = {}
            return
        info = {"describe": source.describe()}
        for k in ("device", "fourcc", "width", "height", "fps"):
            v = getattr(source, k, None)
            if v is not None:
                info[k] = v if isinstance(v, (int, float)) else str(v)
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

    def run(self, out, stop: threading.Event, paused: Callable[[], str | None]) -> None:
        """Read until ``stop``, the end of a batch, or ``max_frames``; put (Frame, t) in ``out``.

        ``paused()`` says why the camera is not wanted now, or None when it is.
        Returns when the stream ended or ``stop`` was set; the source is closed
        unless a put was cut short by ``stop``.
        """
        delay = REOPEN_FIRST
        next_try = 0.0
        fails = 0
        last_good = time.monotonic()
        index = 0
        scaled_from: tuple | None = None
        while not stop.is_set():
            if self.max_frames is not None and index >= self.max_frames:
                break
            if self._reopen:
                self._reopen = False
                self.close_source()
                next_try = 0.0
            why = paused()
            if why:
                if self.source is not None:
                    self.close_source()
                    log.info("camera released (%s)", why)
                self.state = "paused"
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            if self.source is None:
                now = time.monotonic()
                if now < next_try:
                    self._wake.wait(min(0.1, next_try - now))
                    self._wake.clear()
                    continue
                try:
                    src = self.factory(self.config(), self.live)
                except Exception as e:  # noqa: BLE001
                    if not self.live:
                        raise
                    self.state = "unavailable"
                    self.note_fault(e)
                    next_try = time.monotonic() + delay
                    delay = min(delay * 2, self.config().daemon.reopen_max)
                    continue
                self.set_source(src)
                self.fresh = True
                last_good = time.monotonic()
                fails = 0
                log.info("source open: %s", src.describe())
            t0 = time.monotonic()
            try:
                frame = self.source.read()
                error: BaseException | None = None
            except Exception as e:  # noqa: BLE001 - a camera driver can raise anything
                if not self.live:
                    raise
                frame, error = None, e
            if frame is None or frame.image is None or frame.image.size == 0:
                if not self.live:
                    break  # end of the stream
                fails += 1
                if fails >= FAULT_READS or time.monotonic() - last_good > FAULT_SECONDS:
                    self.state = "unavailable"
                    self.note_fault(error or f"{self.describe()}: no frames")
                    self.close_source()
                    next_try = time.monotonic() + delay
                    delay = min(delay * 2, self.config().daemon.reopen_max)
                else:
                    time.sleep(0.01)
                continue
            t_cap = time.monotonic()
            t0 += getattr(self.source, "last_wait", 0.0)  # pacing is not work
            if fails or self.state != "running":
                if self.problem:
                    log.info("source back: %s", self.describe())
                self.problem = ""
            fails, delay, last_good = 0, REOPEN_FIRST, t_cap
            self.state = "running"
            image = frame.image
            ih, iw = image.shape[:2]
            if (iw, ih) != self.size:
                if scaled_from != (iw, ih):
                    scaled_from = (iw, ih)
                    log.info("source gives %dx%d: frames are fitted to the output's %dx%d",
                             iw, ih, *self.size)
                image = fit_frame(image, self.size)
            self.stats.add("grab", (time.monotonic() - t0) * 1e3)
            self.frames += 1
            index += 1
            if not out.put((Frame(image, frame.timestamp, frame.index), t_cap), stop):
                return
        self.state = "ended"
        self.close_source()
