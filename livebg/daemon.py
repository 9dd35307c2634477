"""The long-running daemon: camera -> pipeline -> virtual camera, all day.

Three worker threads joined by bounded queues, and a supervisor on the
calling thread::

    capture ──slot──► segment (+refine, temporal) ──slot──► composite + sinks
       ▲                                                     │ fills in when
       └─ reopens with backoff, pauses on demand              └ no frame comes

* **capture** owns the source. For a live source (a camera, or any source
  going to a virtual camera, window or overlay) the newest frame wins: the
  slots hold one frame and an older waiting frame is dropped, so latency never
  grows. A camera that fails, vanishes or returns empty frames is closed and
  reopened with a doubling wait (0.25 s up to ``daemon.reopen_max``); a busy
  one is reported once, naming the process that holds it. A camera is opened
  by this thread only while some application watches (on demand), so the
  daemon starts, and keeps running, without one. Frames are scaled
  to the output size, which is fixed for the daemon's life (even width and
  height) so an application that has the virtual camera open never sees it
  change.
* **segment** runs the net, refinement and temporal stage.
* **output** composites and writes to every sink. When no fresh frame arrives
  within 2.5 frame periods (camera reopening, paused) it re-sends the last
  output, or a card saying why, at the camera's rate, so a call never sees a
  dead device.
* the **supervisor** (``run``) watches the configuration file (4 Hz) and
  applies a valid change within a second, rebuilding only what changed;
  follows who has the virtual camera open (on demand: no consumer, no camera);
  logs one timing line every ``log.stats_interval`` seconds; and serves the
  control socket's commands through :meth:`Daemon.handle`.

A file, image or sample going to file or null sinks runs as a batch: every
frame is processed, none dropped, and the daemon ends with the stream.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from livebg import config as config_mod
from livebg.config import Config, ConfigError
from livebg.stats import StageStats, Timer
from livebg.types import Frame

log = logging.getLogger(__name__)

_END = object()
LIVE_SINKS = ("virtual", "window", "overlay")
IDLE_GRACE = 2.0     # seconds without a consumer before pausing on demand
REOPEN_FIRST = 0.25  # first wait before reopening a failed camera
FAULT_READS = 5      # consecutive failed reads that make a fault
FAULT_SECONDS = 1.0  # ...or this long without a good frame

# Sections whose change is applied by rebuilding the processing stages;
# unknown sections added later default to the same (the safe choice).
_RESTART_SECTIONS = {"output", "overlay"}
_SOURCE_SECTIONS = {"input", "camera"}
_LIVE_SECTIONS = {"log", "daemon"}


def is_camera(spec: str) -> bool:
    return spec == "camera" or spec.startswith(("camera:", "/dev/video"))


def camera_device(cfg: Config) -> str | None:
    """The device path of the configured camera, or None for other inputs."""
    from livebg.loopback import device_path

    spec = cfg.input
    if not is_camera(spec):
        return None
    if spec.startswith("camera:"):
        return device_path(spec.split(":", 1)[1])
    if spec.startswith("/dev/"):
        return device_path(spec)
    return device_path(cfg.camera.device)


def even_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) rounded down to even numbers (YUV 4:2:0 needs both even)."""
    return max(2, width - width % 2), max(2, height - height % 2)


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at exactly ``size`` (w, h): cropped by a pixel, or scaled."""
    w, h = size
    ih, iw = image.shape[:2]
    if (iw, ih) == (w, h):
        return image
    if 0 <= iw - w <= 1 and 0 <= ih - h <= 1:
        return np.ascontiguousarray(image[:h, :w])
    interp = cv2.INTER_AREA if iw > w else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def make_card(size: tuple[int, int], text: str, base: np.ndarray | None = None) -> np.ndarray:
    """A frame saying ``text``: over ``base`` dimmed, or over dark grey."""
    w, h = size
    if base is not None and base.shape[:2] == (h, w):
        from livebg.sinks import to_bgr

        card = (to_bgr(base).astype(np.uint16) * 3 // 10).astype(np.uint8)
    else:
        card = np.full((h, w, 3), 32, np.uint8)
    scale = max(0.4, w / 1280 * 1.1)
    thick = max(1, round(2 * scale))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    org = ((w - tw) // 2, (h + th) // 2)
    cv2.putText(card, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), thick,
                cv2.LINE_AA)
    return card


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


def _default_source(cfg: Config, live: bool):
    from livebg.build import make_source

    if live and not is_camera(cfg.input):
        return PacedSource(make_source(cfg, count=None, loop=True))
    return make_source(cfg, count=None)


def _default_sinks(cfg: Config, width: int, height: int, fps: float) -> list:
    from livebg.build import make_sinks

    return make_sinks(cfg, width, height, fps)


class _Slot:
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

    def clear(self) -> None:
        while True:
            try:
                self.q.get_nowait()
            except queue.Empty:
                return


class Daemon:
    """Runs the configured source through the pipeline into the sinks until stopped.

    Args:
        cfg: the configuration to start with.
        config_path: the file to watch and reload (None: the user's file,
            ``$XDG_CONFIG_HOME/livebg/config.yaml``, watched even while absent).
        overrides: command-line overrides, re-applied on every reload.
        realtime: True for live behaviour (latest frame wins, pacing, reopen,
            fill-in), False for a batch; None decides from the input and sinks.
        max_frames: stop after this many captured frames.
        source_factory: ``f(cfg, live) -> source`` (tests wrap real sources).
        sink_factory: ``f(cfg, width, height, fps) -> [sinks]``.
        control: serve the control socket (``daemon.socket``).
        watch_config: reload when the configuration file changes.

    Use :meth:`run` on one thread (it blocks); :meth:`stop`, :meth:`reload`,
    :meth:`handle` from any other, or from signal handlers.
    """

    def __init__(self, cfg: Config, *, config_path: Path | None = None,
                 overrides: dict[str, Any] | None = None, realtime: bool | None = None,
                 max_frames: int | None = None,
                 source_factory: Callable[[Config, bool], Any] | None = None,
                 sink_factory: Callable[[Config, int, int, float], list] | None = None,
                 control: bool = True, watch_config: bool = True):
        self.cfg = cfg
        self.config_path = Path(config_path) if config_path else config_mod.user_config_path()
        self._explicit_config = config_path is not None
        self.overrides = dict(overrides or {})
        self.live = realtime if realtime is not None else (
            is_camera(cfg.input) or any(s in LIVE_SINKS for s in cfg.output.sinks))
        self.max_frames = max_frames
        self._source_factory = source_factory or _default_source
        self._sink_factory = sink_factory or _default_sinks
        self._control_enabled = control
        self._watch_config = watch_config

        self.stats = StageStats()
        self.processor = None
        self.sinks: list = []
        self.size: tuple[int, int] = (0, 0)
        self.fps = 30.0
        self.last_output: np.ndarray | None = None
        self.errors: list[BaseException] = []

        self._lock = threading.RLock()          # config, processor and state changes
        self._stop = threading.Event()
        self._wake = threading.Event()          # capture: pause state or source changed
        self._reload_requested = threading.Event()
        self._user_paused = False
        self._idle_paused = False
        self._reopen = False
        self._reset = False
        self._capture_state = "starting"        # starting, running, paused, unavailable, ended
        self._capture_problem = ""
        self._source = None
        self._source_info: dict = {}
        self._frames_in = 0
        self._last_frame = 0.0
        self._process_errors = 0
        self._started = time.monotonic()
        self._watcher = None
        self._server = None
        self._threads: list[threading.Thread] = []
        self._cards: dict[str, np.ndarray] = {}
        self._last_stat: tuple | None = self._stat_config()
        self._pending_stat: tuple | None = None
        self._pending_since = 0.0
        self._idle_since: float | None = None

    # ----------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Ask everything to stop; ``run`` returns within about half a second."""
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        """Reload the configuration file soon (safe from a signal handler)."""
        self._reload_requested.set()

    def reset_stats(self, window: int = 300) -> StageStats:
        """Start timings afresh (e.g. after a warm-up); returns the new StageStats."""
        stats = StageStats(window=window)
        self.stats = stats
        proc = self.processor
        if proc is not None:
            proc.stats = stats
        for slot in (getattr(self, "_q_in", None), getattr(self, "_q_out", None)):
            if slot is not None:
                slot.stats = stats
        return stats

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _open_first_source(self):
        """The source whose size decides the output's; None for a live camera.

        A live camera is opened by the capture thread, and only once some
        application watches (on demand): its size is the configured one.
        """
        if self.live and is_camera(self.cfg.input):
            return None
        return self._source_factory(self.cfg, self.live)

    def _decide_size(self, source) -> tuple[tuple[int, int], float]:
        if source is not None and not is_camera(self.cfg.input):
            w, h, fps = source.width, source.height, getattr(source, "fps", 30.0)
        else:
            cam = self.cfg.camera
            w, h, fps = cam.width, cam.height, cam.fps
            if source is not None and getattr(source, "fps", 0):
                fps = source.fps
        return even_size(int(w), int(h)), float(fps or 30.0)

    def run(self) -> int:
        """Start, serve until :meth:`stop` (or the end of a batch), clean up.

        Returns 0, or 1 when a live run was ended by an error (logged).
        Raises what a stage raised in a batch, or AlreadyRunning / SourceError /
        SinkError / ModelError when it cannot start.
        """
        from livebg.build import make_processor

        try:
            self._start_control()
            if self._stop.is_set():
                return 0
            source = self._open_first_source()
            self.size, self.fps = self._decide_size(source)
            self._set_source(source)
            w, h = self.size
            self.processor = make_processor(self.cfg, w, h, stats=self.stats)
            self.sinks = self._sink_factory(self.cfg, w, h, self.fps)
            self._start_watcher()
            log.info("running: %s -> %s (%dx%d@%g%s)", self._source_text(),
                     ", ".join(s.describe() for s in self.sinks) or "no sink", w, h, self.fps,
                     ", live" if self.live else "")
            self._start_threads()
            self._supervise()
        finally:
            self._shutdown()
        if self.errors:
            if self.live:
                # A failure while serving (not a setup problem): exit 1, so that
                # systemd's Restart=on-failure brings the daemon back.
                e = self.errors[0]
                log.error("stopped by an error: %s", " ".join(str(e).split()) or repr(e),
                          exc_info=e)
                return 1
            raise self.errors[0]
        return 0

    def _start_control(self) -> None:
        from livebg.control import ControlServer, socket_path

        if not self._control_enabled:
            return
        path = socket_path(self.cfg.daemon.socket)
        if path is None:
            return
        self._server = ControlServer(path, self.handle)
        self._server.start()

    def _virtual_devices(self) -> list[str]:
        """Device nodes of sinks whose consumers matter (virtual cameras)."""
        from livebg.sinks import VirtualCameraSink

        out = []
        for s in self.sinks:
            dev = getattr(s, "on_demand_device", None)
            if dev is None and isinstance(s, VirtualCameraSink):
                dev = s.device
            if dev:
                out.append(str(dev))
        return out

    def _start_watcher(self) -> None:
        from livebg.loopback import OpenWatcher

        devices = self._virtual_devices()
        if not devices or not self.live:
            return
        try:
            self._watcher = OpenWatcher(devices[0])
        except OSError as e:
            log.warning("cannot follow who opens %s (%s): on-demand pausing is off",
                        devices[0], e)
            return
        self._idle_since = time.monotonic()
        if self.cfg.daemon.on_demand and not self._watcher.consumers:
            self._idle_paused = True  # nobody watches yet: do not even open the camera
            log.info("waiting for an application to open %s", devices[0])

    def _start_threads(self) -> None:
        self._q_in = _Slot(1 if self.live else 2, self.live, self.stats)
        self._q_out = _Slot(1 if self.live else 2, self.live, self.stats)
        for name, fn in (("capture", self._capture_loop), ("segment", self._segment_loop),
                         ("output", self._output_loop)):
            t = threading.Thread(target=self._guard(fn), name=f"livebg-{name}", daemon=True)
            self._threads.append(t)
            t.start()

    def _guard(self, fn):
        def run():
            from livebg.sinks import StopRequested

            try:
                fn()
            except StopRequested as e:
                log.info("%s: stopping", e)
                self.stop()
            except BaseException as e:  # noqa: BLE001 - re-raised by run()
                log.debug("thread %s failed", threading.current_thread().name, exc_info=True)
                self.errors.append(e)
                self.stop()
        return run

    def _shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + 0.6
        for t in self._threads:
            t.join(timeout=max(0.05, deadline - time.monotonic()))
        for t in self._threads:
            if t.is_alive():
                log.warning("thread %s did not stop in time", t.name)
        if not any(t.is_alive() and t.name == "livebg-capture" for t in self._threads):
            self._close_source()
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:  # noqa: BLE001 - close the others anyway
                log.warning("closing %s: %s", s.describe(), e)
        if self._watcher is not None:
            self._watcher.close()
        if self._server is not None:
            self._server.close()
        log.info("stopped")

    # ------------------------------------------------------------- capture

    def _want_camera(self) -> bool:
        return not (self._user_paused or self._idle_paused)

    def _set_source(self, source) -> None:
        self._source = source
        if source is None:
            self._source_info = {}
            return
        info = {"describe": source.describe()}
        for k in ("device", "fourcc", "width", "height", "fps"):
            v = getattr(source, k, None)
            if v is not None:
                info[k] = v if isinstance(v, (int, float)) else str(v)
        self._source_info = info

    def _source_text(self) -> str:
        return self._source_info.get("describe") or f"{self.cfg.input} (not open)"

    def _close_source(self) -> None:
        src, self._source = self._source, None
        if src is not None:
            try:
                src.close()
            except Exception as e:  # noqa: BLE001
                log.debug("closing the source: %s", e)

    def _note_fault(self, error: BaseException | str) -> None:
        """Log the first failure of an episode in one line, with who holds a busy camera."""
        from livebg.loopback import describe_holders, holders

        text = " ".join(str(error).split()) or type(error).__name__
        dev = camera_device(self.cfg)
        if dev:
            if not os.path.exists(dev):
                text = f"camera {dev} not found (unplugged?)"
            else:
                who = holders(dev, exclude={os.getpid()})
                if who:
                    text = (f"camera {dev} is busy: held by {describe_holders(who)}; close it "
                            "there, or choose another camera with camera.device")
        if text != self._capture_problem:
            log.warning("%s; retrying, the virtual camera shows a 'camera unavailable' "
                        "frame meanwhile", text)
        self._capture_problem = text

    def _capture_loop(self) -> None:
        delay = REOPEN_FIRST
        next_try = 0.0
        fails = 0
        last_good = time.monotonic()
        index = 0
        scaled_from: tuple | None = None
        while not self._stop.is_set():
            if self.max_frames is not None and index >= self.max_frames:
                break
            if self._reopen:
                self._reopen = False
                self._close_source()
                next_try = 0.0
            if not self._want_camera():
                if self._source is not None:
                    self._close_source()
                    log.info("camera released (%s)", "paused" if self._user_paused
                             else "no application has the virtual camera open")
                self._capture_state = "paused"
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            if self._source is None:
                now = time.monotonic()
                if now < next_try:
                    self._wake.wait(min(0.1, next_try - now))
                    self._wake.clear()
                    continue
                try:
                    with self._lock:
                        cfg = self.cfg
                    src = self._source_factory(cfg, self.live)
                except Exception as e:  # noqa: BLE001
                    if not self.live:
                        raise
                    self._capture_state = "unavailable"
                    self._note_fault(e)
                    next_try = time.monotonic() + delay
                    delay = min(delay * 2, self.cfg.daemon.reopen_max)
                    continue
                self._set_source(src)
                self._reset = True
                last_good = time.monotonic()
                fails = 0
                log.info("source open: %s", src.describe())
            t0 = time.monotonic()
            try:
                frame = self._source.read()
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
                    self._capture_state = "unavailable"
                    self._note_fault(error or f"{self._source_text()}: no frames")
                    self._close_source()
                    next_try = time.monotonic() + delay
                    delay = min(delay * 2, self.cfg.daemon.reopen_max)
                else:
                    time.sleep(0.01)
                continue
            t_cap = time.monotonic()
            t0 += getattr(self._source, "last_wait", 0.0)  # pacing is not work
            if fails or self._capture_state != "running":
                if self._capture_problem:
                    log.info("source back: %s", self._source_text())
                self._capture_problem = ""
            fails, delay, last_good = 0, REOPEN_FIRST, t_cap
            self._capture_state = "running"
            image = frame.image
            ih, iw = image.shape[:2]
            if (iw, ih) != self.size:
                if scaled_from != (iw, ih):
                    scaled_from = (iw, ih)
                    log.info("source gives %dx%d: frames are fitted to the output's %dx%d",
                             iw, ih, *self.size)
                image = fit_frame(image, self.size)
            self.stats.add("grab", (time.monotonic() - t0) * 1e3)
            self._frames_in += 1
            index += 1
            if not self._q_in.put((Frame(image, frame.timestamp, frame.index), t_cap),
                                  self._stop):
                return
        self._capture_state = "ended"
        self._close_source()
        self._q_in.put(_END, self._stop)

    # ------------------------------------------------------------ processing

    def _segment_loop(self) -> None:
        while True:
            item = self._q_in.get(0.05)
            if item is None:
                if self._stop.is_set():
                    return
                continue
            if item is _END:
                self._q_out.put(_END, self._stop)
                return
            frame, t_cap = item
            proc = self.processor
            if self._reset:
                self._reset = False
                proc.reset()
            try:
                alpha = proc.alpha(frame.image)
            except Exception as e:  # noqa: BLE001
                if not self.live:
                    raise
                self._frame_error(e)
                continue
            if not self._q_out.put((frame, t_cap, alpha, proc), self._stop):
                return

    def _frame_error(self, e: BaseException) -> None:
        self._process_errors += 1
        if self._process_errors in (1, 10, 100) or self._process_errors % 1000 == 0:
            log.error("processing a frame failed (%d so far): %s", self._process_errors, e,
                      exc_info=self._process_errors == 1)

    def _card(self, state: str) -> np.ndarray:
        text = {"unavailable": "camera unavailable - reconnecting",
                "paused": "livebg paused",
                "starting": "starting camera"}.get(state, "livebg")
        key = f"{state}:{id(self.last_output)}"
        card = self._cards.get(key)
        if card is None:
            self._cards.clear()
            card = self._cards[key] = make_card(self.size, text, self.last_output)
        return card

    def _write(self, image: np.ndarray) -> None:
        with Timer(self.stats, "output"):
            for sink in self.sinks:
                sink.write(image)

    def _output_loop(self) -> None:
        period = 1.0 / max(1.0, self.fps)
        last_write = time.monotonic()
        while True:
            item = self._q_out.get(min(0.05, period))
            if item is _END:
                return
            if item is None:
                if self._stop.is_set():
                    return
                if not self.live:
                    continue
                now = time.monotonic()
                idle = self._idle_paused and not self._user_paused
                wait = 1.0 if idle else 2.5 * period if self._capture_state == "running" \
                    else period
                if now - last_write >= wait:
                    state = self._capture_state
                    if self._user_paused:
                        image = self._card("paused")
                    elif state == "unavailable":
                        image = self._card("unavailable")
                    elif self.last_output is not None:
                        image = self.last_output
                    else:
                        image = self._card("starting")
                    self._write(image)
                    last_write = now if now - last_write > 2 * wait else last_write + wait
                continue
            frame, t_cap, alpha, proc = item
            try:
                out = proc.compose(frame.image, alpha)
            except Exception as e:  # noqa: BLE001
                if not self.live:
                    raise
                self._frame_error(e)
                continue
            self._write(out)
            self.last_output = out
            last_write = time.monotonic()
            self._last_frame = last_write
            self.stats.frame_done((last_write - t_cap) * 1e3)

    # ------------------------------------------------------------ supervisor

    def _supervise(self) -> None:
        next_stats = time.monotonic() + self.cfg.log.stats_interval
        while not self._stop.is_set():
            self._stop.wait(0.05 if self._watcher is not None else 0.25)
            if not any(t.is_alive() for t in self._threads if t.name == "livebg-output"):
                break
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
            if self._watch_config:
                self._check_config_file()
            self._check_consumers()
            interval = self.cfg.log.stats_interval
            now = time.monotonic()
            if interval and now >= next_stats:
                log.info("%s%s", self.stats.line(), self._state_suffix())
                next_stats = now + interval
            elif not interval:
                next_stats = now

    def _state_suffix(self) -> str:
        state = self.state()
        return "" if state == "running" else f" [{state}]"

    def _stat_config(self) -> tuple | None:
        try:
            st = self.config_path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _check_config_file(self) -> None:
        stat = self._stat_config()
        if stat == self._last_stat:
            self._pending_stat = None
            return
        if stat != self._pending_stat:  # wait until it stops changing (editors write in steps)
            self._pending_stat = stat
            self._pending_since = time.monotonic()
            return
        if time.monotonic() - self._pending_since < 0.2:
            return
        self._last_stat = stat
        self._pending_stat = None
        log.info("%s changed: reloading", self.config_path)
        self.reload()

    def _check_consumers(self) -> None:
        w = self._watcher
        if w is None:
            return
        on_demand = self.cfg.daemon.on_demand
        consumers = w.consumers
        now = time.monotonic()
        if consumers or not on_demand:
            self._idle_since = None
            if self._idle_paused:
                self._idle_paused = False
                if not self._user_paused:
                    self._wake_capture()
                log.info("virtual camera opened by %s: resuming",
                         ", ".join(str(c) for c in consumers) or "someone")
            return
        if self._idle_since is None:
            self._idle_since = now
        if not self._idle_paused and now - self._idle_since >= IDLE_GRACE:
            self._idle_paused = True
            self._wake.set()
            log.info("no application has the virtual camera open: pausing")

    # ------------------------------------------------------------ reconfiguration

    def load_config(self) -> Config:
        """Defaults, the configuration file, then the command-line overrides."""
        cfg = Config()
        path = self.config_path
        if path.is_file() or self._explicit_config:
            cfg = config_mod.load_file(path, cfg)
        for key, value in self.overrides.items():
            cfg = config_mod.set_value(cfg, key, value)
        return cfg

    def reload(self) -> dict:
        """Re-read the configuration file and apply it; the old one stays on error."""
        try:
            cfg = self.load_config()
        except ConfigError as e:
            log.error("%s; keeping the running configuration", e)
            return {"ok": False, "error": str(e)}
        return self.apply(cfg)

    def apply(self, new: Config) -> dict:
        """Switch to ``new``, rebuilding only the stages whose section changed.

        Returns a control reply: ``{"ok": true, "changed": [...], ...}`` or
        ``{"ok": false, "error": ...}`` (the running configuration stays).
        """
        from livebg.build import make_compositor, make_processor
        from livebg.pipeline import Processor

        with self._lock:
            old = self.cfg
            changed = [f.name for f in dataclasses.fields(Config)
                       if getattr(old, f.name) != getattr(new, f.name)]
            if not changed:
                log.info("configuration unchanged")
                return {"ok": True, "changed": []}
            w, h = self.size
            proc = self.processor
            try:
                rebuild = [c for c in changed if c not in _RESTART_SECTIONS | _SOURCE_SECTIONS
                           | _LIVE_SECTIONS | {"background"}]
                if rebuild and proc is not None:
                    proc = make_processor(new, w, h, stats=self.stats)
                elif "background" in changed and proc is not None:
                    proc = Processor(proc.segmenter, proc.refiner, make_compositor(new),
                                     proc.temporal, stats=self.stats)
            except Exception as e:  # noqa: BLE001 - ModelError, SourceError, ValueError...
                msg = f"cannot apply the new configuration ({' '.join(str(e).split())})"
                log.error("%s; keeping the running configuration", msg)
                return {"ok": False, "error": msg}
            self.cfg = new
            self.processor = proc
            notes = []
            if _SOURCE_SECTIONS & set(changed):
                self._reopen = True
                self._wake.set()
                notes.append("source reopened")
            if "log" in changed:
                logging.getLogger().setLevel(getattr(logging, new.log.level.upper()))
            restart = [c for c in changed if c in _RESTART_SECTIONS]
            if new.daemon.socket != old.daemon.socket:
                restart.append("daemon.socket")
            if restart:
                notes.append(f"{', '.join(restart)}: takes effect after a restart")
                log.warning("%s changed: takes effect when livebg restarts", ", ".join(restart))
            log.info("configuration applied (%s changed)", ", ".join(changed))
            return {"ok": True, "changed": changed, **({"notes": notes} if notes else {})}

    # ------------------------------------------------------------ control

    def state(self) -> str:
        if self._user_paused:
            return "paused"
        if self._idle_paused:
            return "idle"
        return self._capture_state

    def status(self) -> dict:
        proc = self.processor
        seg = getattr(proc, "segmenter", None)
        summary = self.stats.summary()
        latency = summary.pop("latency", None)
        watcher = self._watcher
        return {
            "ok": True,
            "state": self.state(),
            "paused": self._user_paused or self._idle_paused,
            "paused_by": "user" if self._user_paused else ("on-demand" if self._idle_paused
                                                           else None),
            "fps": round(self.stats.fps(), 2) if time.monotonic() - self._last_frame < 1.0
            else 0.0,
            "frames": self.stats.frames,
            "captured": self._frames_in,
            "dropped": self.stats.dropped,
            "errors": self._process_errors,
            "stages_ms": {k: {"p50": round(v["p50"], 2), "p95": round(v["p95"], 2)}
                          for k, v in summary.items()},
            "latency_ms": ({"p50": round(latency["p50"], 2), "p95": round(latency["p95"], 2)}
                           if latency else None),
            "input": self.cfg.input,
            "camera": {**self._source_info, "problem": self._capture_problem or None},
            "output": {"width": self.size[0], "height": self.size[1], "fps": self.fps},
            "model": getattr(seg, "name", None),
            "provider": getattr(seg, "provider", None),
            "refine": self.cfg.refine.mode,
            "background": self.cfg.background.mode,
            "sinks": [s.describe() for s in self.sinks],
            "consumers": [str(c) for c in watcher.consumers] if watcher else None,
            "on_demand": bool(watcher and self.cfg.daemon.on_demand),
            "config": str(self.config_path),
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self._started, 1),
        }

    def pause(self) -> None:
        self._user_paused = True
        self._wake.set()
        log.info("paused: camera released")

    def _wake_capture(self) -> None:
        if self._capture_state == "paused":
            self._capture_state = "starting"
        self._wake.set()

    def resume(self) -> None:
        self._user_paused = False
        if not self._idle_paused:
            self._wake_capture()
        log.info("resumed")

    def snapshot(self) -> tuple[bytes, int, int]:
        """(PNG bytes, width, height) of the latest output frame; ValueError before one."""
        image = self.last_output
        if image is None:
            raise ValueError("no output frame yet")
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise ValueError("PNG encoding failed")
        return buf.tobytes(), image.shape[1], image.shape[0]

    def handle(self, request: dict) -> dict:
        """Answer one control request (the protocol: :mod:`livebg.control`)."""
        from livebg.control import dispatch

        return dispatch(self, request)
