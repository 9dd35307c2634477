"""Frame sinks: virtual camera, video file, PNG sequence, preview window, null.

Contract, like pyvirtualcam's: ``write(image)`` takes a BGR uint8 (H, W, 3)
or BGRA uint8 (H, W, 4) frame of the size the sink was opened with (wrong
dtype: TypeError; wrong shape: ValueError); ``close()`` releases it; every
sink is a context manager. A sink never overwrites a file the user has unless
``overwrite`` is set.

A sink class that sets ``wants_alpha = True`` (the overlay) is given BGRA
frames with the matte as alpha whatever the background mode; the others get
the composited frame (BGR, or BGRA for ``background.mode: transparent``).
Either kind may also get a BGR fill-in frame (a card saying the camera is
unavailable or paused).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
MODPROBE = ("sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=livebg")


class SinkError(RuntimeError):
    """A sink cannot be opened or written; the message says what to do."""


class StopRequested(Exception):
    """Raised by a sink when the user asked to stop (e.g. closed the preview)."""


def _check(image: np.ndarray, size: tuple[int, int]) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"frame must be a uint8 array, got {getattr(image, 'dtype', type(image))}")
    w, h = size
    if image.ndim != 3 or image.shape[:2] != (h, w) or image.shape[2] not in (3, 4):
        raise ValueError(f"frame must have shape ({h}, {w}, 3 or 4), got {image.shape}")


def to_bgr(image: np.ndarray) -> np.ndarray:
    """BGRA -> BGR composited over black (straight alpha); BGR passes through."""
    if image.shape[2] == 3:
        return image
    a = image[..., 3:4].astype(np.uint16)
    return ((image[..., :3].astype(np.uint16) * a + 127) // 255).astype(np.uint8)


class _Sink:
    def __init__(self, width: int, height: int):
        self.size = (width, height)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__


class NullSink(_Sink):
    """Discards frames (benchmarks, tests). Counts them."""

    def __init__(self, width: int, height: int):
        super().__init__(width, height)
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        _check(image, self.size)
        self.frames += 1

    def describe(self) -> str:
        return "null"


def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise SinkError(f"{path} exists: choose another name or pass --overwrite")


class VideoFileSink(_Sink):
    """A video file through OpenCV: MPEG-4 in .mp4/.mov, MJPEG in .avi/.mkv.

    BGRA frames are composited over black (no common codec here keeps alpha;
    use a PNG sequence for that).
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, *,
                 overwrite: bool = False):
        super().__init__(width, height)
        self.path = Path(path)
        codec = VIDEO_SUFFIXES.get(self.path.suffix.lower())
        if codec is None:
            raise SinkError(f"{self.path}: unknown video type; use one of {', '.join(VIDEO_SUFFIXES)}")
        _refuse_overwrite(self.path, overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), fps,
                                       (width, height))
        if not self._writer.isOpened():
            raise SinkError(f"{self.path}: OpenCV cannot write {codec} video here")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        _check(image, self.size)
        self._writer.write(to_bgr(image))
        self.frames += 1

    def close(self) -> None:
        self._writer.release()

    def describe(self) -> str:
        return f"video {self.path}"


class PngSequenceSink(_Sink):
    """``DIR/00000.png``, ``DIR/00001.png``, ...; BGRA frames keep their alpha."""

    def __init__(self, directory: str | Path, width: int, height: int, *,
                 overwrite: bool = False):
        super().__init__(width, height)
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise SinkError(f"{self.dir} is a file, not a folder for a PNG sequence")
        if self.dir.is_dir() and any(self.dir.glob("*.png")) and not overwrite:
            raise SinkError(f"{self.dir} already holds PNG files: choose an empty folder "
                            "or pass --overwrite")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        _check(image, self.size)
        path = self.dir / f"{self.frames:05d}.png"
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise SinkError(f"{path}: cannot write (disk full or no permission?)")
        self.frames += 1

    def describe(self) -> str:
        return f"png {self.dir}/"


class WindowSink(_Sink):
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
        _check(image, self.size)
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


class VirtualCameraSink(_Sink):
    """A virtual camera through pyvirtualcam (v4l2loopback on Linux).

    Args:
        device: e.g. ``/dev/video10``; empty or None for the first loopback device.
    Raises:
        SinkError: no loopback device / driver, with the command that fixes it.
    """

    def __init__(self, width: int, height: int, fps: float, *, device: str | None = None):
        super().__init__(width, height)
        import pyvirtualcam

        kwargs = {"fmt": pyvirtualcam.PixelFormat.BGR}
        if device:
            kwargs["device"] = device
        if sys.platform.startswith("linux"):
            kwargs["backend"] = "v4l2loopback"
        try:
            self._cam = pyvirtualcam.Camera(width, height, fps, **kwargs)
        except (RuntimeError, ValueError) as e:
            reason = " ".join(str(e).split())
            if sys.platform.startswith("linux"):
                raise SinkError(f"no usable v4l2loopback device ({reason}); run: {MODPROBE}"
                                " (install the v4l2loopback-dkms package first if needed)") from None
            raise SinkError(f"no virtual camera ({reason}); install OBS Studio and start its "
                            "virtual camera once") from None
        self.device = self._cam.device
        log.info("virtual camera: %s %dx%d@%g", self.device, width, height, fps)

    def write(self, image: np.ndarray) -> None:
        _check(image, self.size)
        self._cam.send(np.ascontiguousarray(to_bgr(image)))

    def close(self) -> None:
        self._cam.close()

    def describe(self) -> str:
        return f"virtual camera {self.device}"


def open_sink(spec: str, width: int, height: int, fps: float, *, device: str = "",
              overwrite: bool = False, overlay: dict | None = None):
    """Open the sink named by ``spec``: virtual, overlay, window, null, FILE.mp4, or DIR.

    ``overlay`` holds the keyword options of :class:`livebg.sinks.overlay.OverlaySink`.
    """
    if spec == "virtual":
        return VirtualCameraSink(width, height, fps, device=device or None)
    if spec == "overlay":
        from livebg.sinks.overlay import OverlaySink

        return OverlaySink(width, height, fps, **(overlay or {}))
    if spec == "window":
        return WindowSink(width, height)
    if spec == "null":
        return NullSink(width, height)
    path = Path(spec).expanduser()
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFileSink(path, width, height, fps, overwrite=overwrite)
    if path.suffix == "" or path.is_dir():
        return PngSequenceSink(path, width, height, overwrite=overwrite)
    raise SinkError(f"output {spec!r}: use virtual, overlay, window, null, a video file "
                    f"({', '.join(VIDEO_SUFFIXES)}) or a folder for PNG frames")
