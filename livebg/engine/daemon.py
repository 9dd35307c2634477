"""The live engine: camera -> processing -> virtual camera (and other sinks), all day.

Four worker threads (:mod:`livebg.engine.threads`) joined by bounded queues of
:class:`~livebg.engine.slot.Work` items (:mod:`livebg.engine.slot`), and a
supervisor on the calling thread::

    capture ──slot──► segment ──slot──► matte ──slot──► composite + sinks
       ▲              (the net)     (temporal,          │ fills in when
       │                             refinement)        └ no frame comes
       └─ reopens with backoff, pauses on demand

* **capture** (:mod:`livebg.engine.capture`) owns the source: it opens, fits, and
  reopens a failing camera with backoff. For a live run (a camera, or any
  source going to a virtual camera, window or overlay) the newest frame wins:
  the slots hold one frame and an older waiting frame is dropped, so latency
  never grows. A camera is opened only while some application watches (on
  demand, :mod:`livebg.engine.ondemand`), so the daemon starts, and keeps running,
  without one. The output size is fixed for the daemon's life (even width and
  height) so an application that has the virtual camera open never sees it
  change.
* **segment** runs the net (stateless), so it works on frame t+1 while
* **matte** runs the temporal stage and the refinement of frame t: every
  stateful step, so that state has a single owner; a new source resets it
  (the capture thread stamps each frame with its source's generation, so no
  frame of the old source can pass its state on, whatever is dropped).
* **output** (:mod:`livebg.engine.output`) composites, gives BGRA frames to sinks
  that want alpha, writes to every sink, and in a live run fills in with the
  last output or a card when no fresh frame comes.
* the **supervisor** (:meth:`Daemon.run`) watches the configuration file
  (4 Hz) and applies a valid change within a second, rebuilding only what
  changed (:mod:`livebg.engine.reconfig`); follows who has the virtual camera open; logs one timing line every
  ``log.stats_interval`` seconds; and serves the control socket's commands
  through :meth:`Daemon.handle`.

A file, image or sample going to file or null sinks runs as a batch: every
frame is processed, none dropped, and the daemon ends with the stream.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from livebg.config import Config, ConfigError
from livebg.engine.capture import Capture, default_source, is_camera, output_size
from livebg.engine.ondemand import OnDemand
from livebg.engine.output import Output
from livebg.engine.reconfig import ConfigFile, plan
from livebg.engine.threads import Engine
from livebg.stats import StageStats

log = logging.getLogger(__name__)

LIVE_SINKS = ("virtual", "window", "overlay")


def _default_sinks(cfg: Config, width: int, height: int, fps: float) -> list:
    from livebg.factory import make_sinks

    return make_sinks(cfg, width, height, fps)


class Daemon:
    """Runs the configured source through the processing stages into the sinks until stopped.

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
        self.config_file = ConfigFile(config_path, overrides)
        self.config_path = self.config_file.path
        self.live = realtime if realtime is not None else (
            is_camera(cfg.input) or any(s in LIVE_SINKS for s in cfg.output.sinks))
        self._source_factory = source_factory or default_source
        self._sink_factory = sink_factory or _default_sinks
        self._control_enabled = control
        self._watch_config = watch_config

        self.stats = StageStats()
        self.processor = None
        self.sinks: list = []
        self.output: Output | None = None
        self.size: tuple[int, int] = (0, 0)
        self.fps = 30.0

        self._lock = threading.RLock()          # config, processor and state changes
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._user_paused = False
        self._started = time.monotonic()
        self._ondemand: OnDemand | None = None
        self._server = None
        self.engine: Engine | None = None
        self.capture = Capture(self._source_factory, live=self.live, size=self.size,
                               config=self._config, stats=self.stats, max_frames=max_frames)

    def _config(self) -> Config:
        with self._lock:
            return self.cfg

    # ----------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Ask everything to stop; ``run`` returns within about half a second."""
        self._stop.set()
        self.capture.wake()

    def request_reload(self) -> None:
        """Reload the configuration file soon (safe from a signal handler)."""
        self._reload_requested.set()

    def reset_stats(self, window: int = 300) -> StageStats:
        """Start timings afresh (e.g. after a warm-up); returns the (same) StageStats."""
        self.stats.reset(window)
        return self.stats

    @property
    def errors(self) -> list[BaseException]:
        """What ended a thread (empty while all is well)."""
        return self.engine.errors if self.engine is not None else []

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def last_output(self) -> np.ndarray | None:
        """The latest composited frame (what the sinks without alpha got)."""
        return self.output.last_output if self.output is not None else None

    def _open_first_source(self):
        """The source whose size decides the output's; None for a live camera.

        A live camera is opened by the capture thread, and only once some
        application watches (on demand): its size is the configured one.
        """
        if self.live and is_camera(self.cfg.input):
            return None
        return self._source_factory(self.cfg, self.live)

    def run(self) -> int:
        """Start, serve until :meth:`stop` (or the end of a batch), clean up.

        Returns 0, or 1 when a live run was ended by an error (logged).
        Raises what a stage raised in a batch, or AlreadyRunning / SourceError /
        SinkError / ModelError when it cannot start.
        """
        from livebg.factory import make_processor

        try:
            self._start_control()
            if self._stop.is_set():
                return 0
            source = self._open_first_source()
            self.size, self.fps = output_size(self.cfg, source)
            self.capture.size = self.size
            self.capture.set_source(source)
            w, h = self.size
            # Sinks before the processor: a missing virtual camera is then one line
            # in about 1 s, not after the net and the kernels have loaded (8 s here).
            self.sinks = self._sink_factory(self.cfg, w, h, self.fps)
            self.processor = make_processor(self.cfg, w, h, stats=self.stats)
            self.output = Output(self.sinks, self.size, self.fps, self.stats)
            self.engine = Engine(self.capture, self.output, self.processor, self.stats,
                                 live=self.live, stop=self._stop)
            if self.live:
                self._ondemand = OnDemand.start(self.sinks, self.cfg.daemon.on_demand)
                self._update_hold()
            log.info("running: %s -> %s (%dx%d@%g%s)", self.capture.describe(),
                     ", ".join(s.describe() for s in self.sinks) or "no sink", w, h, self.fps,
                     ", live" if self.live else "")
            if self.output.alpha_wanted and self.cfg.background.mode != "transparent":
                log.info("sinks that want alpha get a second, transparent composite")
            self.engine.start()
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
        from livebg.system.control import ControlServer, socket_path

        if not self._control_enabled or not self.live:
            return  # a batch (file or sample to files) needs no socket: it runs beside a daemon
        path = socket_path(self.cfg.daemon.socket)
        if path is None:
            return
        self._server = ControlServer(path, self.handle)
        self._server.start()

    def _shutdown(self) -> None:
        self.stop()
        sinks_free = True
        if self.engine is not None:
            sinks_free = self.engine.join()
            if not self.engine.capture_alive:
                self.capture.close_source()
        else:
            self.capture.close_source()
        if not sinks_free:
            log.warning("a sink is still writing: left open")
        elif self.output is not None:
            self.errors.extend(self.output.close())
        else:
            for s in self.sinks:
                s.close()
        if self._ondemand is not None:
            self._ondemand.close()
        if self._server is not None:
            self._server.close()
        log.info("stopped")

    def _update_hold(self) -> None:
        """Tell the capture whether the camera is wanted: paused by the user, nobody watching."""
        if self._user_paused:
            self.capture.set_hold("paused", "paused")
        elif self._ondemand is not None and self._ondemand.idle:
            self.capture.set_hold("idle", "no application has the virtual camera open")
        else:
            self.capture.set_hold(None)

    # ------------------------------------------------------------ supervisor

    def _supervise(self) -> None:
        next_stats = time.monotonic() + self.cfg.log.stats_interval
        while not self._stop.is_set():
            self._stop.wait(0.05 if self._ondemand is not None else 0.25)
            if not self.engine.output_alive:
                break
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
            if self._watch_config and self.config_file.changed():
                log.info("%s changed: reloading", self.config_path)
                self.reload()
            if self._ondemand is not None:
                if self._ondemand.check(self.cfg.daemon.on_demand) is not None:
                    self._update_hold()
            interval = self.cfg.log.stats_interval
            now = time.monotonic()
            if interval and now >= next_stats:
                state = self.state()
                log.info("%s%s", self.stats.line(), "" if state == "running" else f" [{state}]")
                next_stats = now + interval
            elif not interval:
                next_stats = now

    # ------------------------------------------------------------ reconfiguration

    def load_config(self) -> Config:
        """Defaults, the configuration file, then the command-line overrides."""
        return self.config_file.load()

    def reload(self) -> dict:
        """Re-read the configuration file and apply it; the old one stays on error."""
        try:
            cfg = self.load_config()
        except ConfigError as e:
            log.error("%s; keeping the running configuration", e)
            return {"ok": False, "error": str(e)}
        return self.apply(cfg)

    def update(self, edit: Callable[[Config], Config]) -> tuple[dict, Config]:
        """Apply ``edit(running configuration)`` with no other change in between.

        Returns (:meth:`apply`'s reply, the edited configuration). Raises what
        ``edit`` raises (ConfigError); then nothing changes.
        """
        with self._lock:
            new = edit(self.cfg)
            return self.apply(new), new

    def apply(self, new: Config) -> dict:
        """Switch to ``new``, rebuilding only the stages whose section changed.

        Returns a control reply: ``{"ok": true, "changed": [...], ...}`` or
        ``{"ok": false, "error": ...}`` (the running configuration stays).
        """
        with self._lock:
            old = self.cfg
            try:
                change = plan(old, new, self.processor, self.size, self.stats)
            except Exception as e:  # noqa: BLE001 - ModelError, SourceError, ValueError...
                msg = f"cannot apply the new configuration ({' '.join(str(e).split())})"
                log.error("%s; keeping the running configuration", msg)
                return {"ok": False, "error": msg}
            if not change.changed:
                log.info("configuration unchanged")
                return {"ok": True, "changed": []}
            self.cfg = new
            self.processor = change.processor
            if self.engine is not None:
                self.engine.processor = change.processor
            notes = []
            if change.reopen:
                if not self.live and is_camera(new.input):
                    self.live = True
                    if self.engine is not None:
                        self.engine.go_live()
                    notes.append("now live: a camera is retried until it answers")
                self.capture.request_reopen()
                notes.append("source reopened")
            if "log" in change.changed:
                logging.getLogger().setLevel(getattr(logging, new.log.level.upper()))
            applied = [c for c in change.changed if c not in change.restart]
            if change.restart:
                notes.append(f"{', '.join(change.restart)}: not applied now, takes effect "
                             "when livebg restarts")
                log.warning("%s changed: not applied now, takes effect when livebg restarts",
                            ", ".join(change.restart))
            if applied:
                log.info("configuration applied (%s changed)", ", ".join(applied))
            return {"ok": True, "changed": change.changed, "applied": applied,
                    "restart": list(change.restart), **({"notes": notes} if notes else {})}

    # ------------------------------------------------------------ control

    def state(self) -> str:
        """paused (by the user), idle (no audience), or the capture's state."""
        return self.capture.hold or self.capture.state

    def status(self) -> dict:
        seg = self.processor.segmenter if self.processor is not None else None
        summary = self.stats.summary()
        latency = summary.pop("latency", None)
        od = self._ondemand
        idle = od is not None and od.idle
        last_time = self.output.last_time if self.output is not None else 0.0
        return {
            "ok": True,
            "state": self.state(),
            "paused": self._user_paused or idle,
            "paused_by": "user" if self._user_paused else ("on-demand" if idle else None),
            "fps": round(self.stats.fps(), 2) if time.monotonic() - last_time < 1.0 else 0.0,
            "frames": self.stats.frames,
            "captured": self.capture.frames,
            "dropped": self.stats.dropped,
            "errors": self.engine.frame_errors if self.engine is not None else 0,
            "stages_ms": {k: {"p50": round(v["p50"], 2), "p95": round(v["p95"], 2)}
                          for k, v in summary.items()},
            "latency_ms": ({"p50": round(latency["p50"], 2), "p95": round(latency["p95"], 2)}
                           if latency else None),
            "input": self.cfg.input,
            "camera": {**self.capture.info, "problem": self.capture.problem or None},
            "output": {"width": self.size[0], "height": self.size[1], "fps": self.fps},
            "model": seg.name if seg is not None else None,
            "provider": seg.provider if seg is not None else None,
            "refine": self.cfg.refine.mode,
            "background": self.cfg.background.mode,
            "sinks": [s.describe() for s in self.sinks],
            "consumers": [str(c) for c in od.consumers] if od else None,
            "on_demand": bool(od and self.cfg.daemon.on_demand),
            "config": str(self.config_path),
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self._started, 1),
        }

    def pause(self) -> None:
        self._user_paused = True
        self._update_hold()
        log.info("paused: camera released")

    def resume(self) -> None:
        self._user_paused = False
        self._update_hold()
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
        """Answer one control request (the protocol: :mod:`livebg.system.control`)."""
        from livebg.system.control import dispatch

        return dispatch(self, request)
