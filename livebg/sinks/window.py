"""A preview window on the desktop, drawn by a thread of its own.

OpenCV's HighGUI (the Qt build in the opencv-python wheels) belongs to the
thread that made its first window: ``imshow`` from any other thread is
queued to that one and, in OpenCV 5, fails with ``QMetaObject::invokeMethod:
No such method GuiReceiver::showImage(QString,cv::InputArray)`` and a black
window. The engine writes from its output thread and opens sinks on the main
thread, so this sink starts a ``livebg-window`` thread that makes every
HighGUI call itself (``namedWindow``, ``imshow``, ``waitKey``,
``destroyWindow``); :meth:`WindowSink.write` only hands it the newest frame.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import cv2
import numpy as np

from livebg.sinks.base import SinkBase, SinkError, StopRequested, check_frame, to_bgr

log = logging.getLogger(__name__)

# The window thread wakes at least this often (ms) to pump the GUI's events
# (moves, resizes, key presses) when no frame comes, e.g. while paused.
PUMP_MS = 15
OPEN_TIMEOUT_S = 30.0  # a first window can take seconds on a loaded machine (Qt start-up)
MAX_WIDTH = 1280       # the window opens at the frame's size, at most this wide


class WindowSink(SinkBase):
    """A preview window (OpenCV HighGUI on its own thread). Esc or q closes it and stops.

    Args:
        width, height: size of the frames in pixels.
        title: the window's title.

    Raises:
        SinkError: no display (on Linux: neither DISPLAY nor WAYLAND_DISPLAY
            is set, checked first because OpenCV's Qt aborts the process), or
            the window cannot be opened.
    """

    TITLE = "livebg preview"

    def __init__(self, width: int, height: int, *, title: str = TITLE):
        super().__init__(width, height)
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                     or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("no display for a preview window (neither DISPLAY nor "
                            "WAYLAND_DISPLAY is set): use --output FILE.mp4 or --output null")
        self.title = title
        self.shown = 0                      # frames drawn by the window thread
        self._frame: np.ndarray | None = None
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._open_error = ""
        self._closed_by_user = ""
        self._thread = threading.Thread(target=self._run, name="livebg-window", daemon=True)
        self._thread.start()
        if not self._ready.wait(OPEN_TIMEOUT_S):
            self._stop.set()
            raise SinkError(f"the preview window did not open within {OPEN_TIMEOUT_S:g} s: "
                            "use --output FILE.mp4 or --output null")
        if self._open_error:
            raise SinkError("no display for a preview window: use --output FILE.mp4 or "
                            f"--output null ({self._open_error})")

    # -- the window thread: every HighGUI call happens here ---------------------

    def _run(self) -> None:
        w, h = self.size
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO
                            | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            self._open_error = str(e).strip().splitlines()[-1]
            self._ready.set()
            return
        self._ready.set()
        try:
            scale = min(1.0, MAX_WIDTH / w)
            cv2.resizeWindow(self.title, round(w * scale), round(h * scale))
        except cv2.error as e:  # the window keeps the size the GUI gave it
            log.debug("preview window: cannot resize: %s", str(e).strip().splitlines()[-1])
        try:
            self._loop()
        finally:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # let the GUI take the window down now, from this thread
            except cv2.error:
                pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if self._frame is None:
                    self._cond.wait(PUMP_MS / 1000)
                frame, self._frame = self._frame, None
            if frame is not None:
                cv2.imshow(self.title, frame)
                self.shown += 1
            key = cv2.waitKey(1 if frame is not None else PUMP_MS)
            if key != -1 and key & 0xFF in (27, ord("q")):
                self._closed_by_user = "preview window closed (Esc or q)"
                return
            if self.shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self._closed_by_user = "preview window closed"
                return

    # -- the engine's side -------------------------------------------------------

    def write(self, image: np.ndarray) -> None:
        """Hand ``image`` to the window thread (the newest frame wins; never blocks)."""
        check_frame(image, self.size)
        if self._closed_by_user:
            raise StopRequested(self._closed_by_user)
        if not self._thread.is_alive():
            raise SinkError("the preview window's thread ended; see the log")
        with self._cond:
            self._frame = to_bgr(image)
            self._cond.notify()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def describe(self) -> str:
        return "window"
