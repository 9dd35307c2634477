"""A preview window on the desktop."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from livebg.sinks.base import SinkBase, SinkError, StopRequested, check_frame


class WindowSink(SinkBase):
    """A preview window (OpenCV HighGUI). Esc or q closes it and stops.

    Raises:
        SinkError: no display (on Linux: neither DISPLAY nor WAYLAND_DISPLAY
            is set, checked first because OpenCV's Qt aborts the process).
    """

    TITLE = "livebg preview"

    def __init__(self, width: int, height: int):
        super().__init__(width, height)
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                     or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("no display for a preview window (neither DISPLAY nor "
                            "WAYLAND_DISPLAY is set): use --output FILE.mp4 or --output null")
        try:
            cv2.namedWindow(self.TITLE, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise SinkError("no display for a preview window: use --output FILE.mp4 or "
                            f"--output null ({str(e).strip().splitlines()[-1]})") from None

    def write(self, image: np.ndarray) -> None:
        check_frame(image, self.size)
        cv2.imshow(self.TITLE, image)
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
            raise StopRequested("preview window closed")

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.TITLE)
        except cv2.error:
            pass

    def describe(self) -> str:
        return "window"
