"""Frame sources: camera, video file, still image and the built-in sample.

Every source keeps the :class:`Source` contract: ``read()`` returns the next
:class:`~livebg.types.Frame` or ``None`` when the stream has ended (a camera
that fails returns ``None`` too; the daemon decides whether to reopen),
``close()`` releases the device, ``describe()`` says in words what is being
read, ``width``/``height``/``fps`` say what it gives, and a source is a
context manager. :func:`open_source` opens one by name through
:data:`OPENERS`; the file-extension rule is :func:`livebg.stages.media.media_kind`.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import cv2
import numpy as np

from livebg.stages.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, media_kind
from livebg.types import Frame

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "OPENERS", "CameraSource", "ImageSource",
           "SampleSource", "Source", "SourceError", "SourceOptions", "VideoFileSource",
           "media_kind", "open_source", "read_image", "source_kind"]

log = logging.getLogger(__name__)

# OpenCV's own warnings ("can't open camera by index") would repeat on every
# reopen attempt; our log says what failed and what to do, once.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class SourceError(RuntimeError):
    """A source cannot be opened; the message says what to do."""


@runtime_checkable
class Source(Protocol):
    """What the engine needs of an input."""

    width: int    # frame width in pixels
    height: int   # frame height in pixels
    fps: float    # frames per second it gives (> 0)

    def read(self) -> Frame | None:
        """The next frame (BGR uint8 (height, width, 3)), or None: ended or failed."""

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def describe(self) -> str:
        """What is being read, in words, for logs and ``ctl status``."""


class _Base:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden where needed
        pass


def _fourcc_text(value: float) -> str:
    code = int(value)
    return "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\x00") or "?"


def decode_mjpeg(data: np.ndarray) -> np.ndarray | None:
    """One MJPEG frame (a JPEG, uint8 bytes of any shape) -> BGR uint8 (H, W, 3), or None.

    The same call OpenCV's V4L2 backend makes inside ``VideoCapture.read``
    for an MJPEG camera (``imdecode(..., IMREAD_COLOR)``, libjpeg-turbo in
    the opencv-python wheels): the camera source decodes explicitly with it
    so that the decode can be timed, and ``livebg bench`` feeds its paced
    run through this very function. A reduced-scale decode for the net
    alone would not pay: the output needs the full-resolution frame, and a
    second, reduced decode costs more than the net's resize of the full one.
    """
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if buf.size == 0:
        return None
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


class CameraSource(_Base):
    """A webcam through OpenCV (V4L2 on Linux).

    Asks for ``fourcc`` (MJPG by default) at the given size and rate, and logs
    what the camera actually gave, which may differ. An MJPEG stream is read
    as raw JPEG bytes (``CAP_PROP_CONVERT_RGB`` off) and decoded by
    :func:`decode_mjpeg`; should the backend still hand back decoded frames,
    they are used as they are.

    Args:
        device: index (``"0"`` or ``0``) or device path (``/dev/video0``).
    """

    def __init__(self, device: str | int = 0, *, width: int = 1280, height: int = 720,
                 fps: int = 30, fourcc: str = "MJPG"):
        self.device = device
        dev: str | int = int(device) if str(device).isdigit() else str(device)
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(dev, backend)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {device}: cannot open it (unplugged, busy, or no permission; "
                              "check `ls -l /dev/video*`, the `video` group, or `livebg doctor`)")
        if len(fourcc) == 4:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep latency low: no driver-side backlog
        self._cap = cap
        self._index = 0
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or float(fps)
        self.fourcc = _fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        self.requested = (width, height, fps, fourcc)
        # Raw JPEG bytes, decoded by decode_mjpeg (which the bench times the same way).
        self.raw_mjpeg = self.fourcc == "MJPG" and bool(cap.set(cv2.CAP_PROP_CONVERT_RGB, 0))
        log.info("camera %s: asked for %s %dx%d@%d, got %s %dx%d@%g", device, fourcc, width,
                 height, fps, self.fourcc, self.width, self.height, self.fps)

    def read(self) -> Frame | None:
        ok, image = self._cap.read()
        if not ok or image is None or image.size == 0:
            return None
        if self.raw_mjpeg and (image.ndim < 3 or image.shape[2] != 3):
            image = self._decode(image)
            if image is None:
                return None
        frame = Frame(image=image, timestamp=time.monotonic(), index=self._index)
        self._index += 1
        return frame

    def _decode(self, data: np.ndarray) -> np.ndarray | None:
        image = decode_mjpeg(data)
        if image is None:
            # Not JPEG after all (a driver that ignores CONVERT_RGB with another
            # layout): let OpenCV convert from now on, and say so once.
            log.warning("camera %s: raw MJPEG frames did not decode; letting OpenCV convert",
                        self.device)
            self.raw_mjpeg = False
            self._cap.set(cv2.CAP_PROP_CONVERT_RGB, 1)
        return image

    def describe(self) -> str:
        return f"camera {self.device} ({self.fourcc} {self.width}x{self.height}@{self.fps:g})"

    def close(self) -> None:
        self._cap.release()


class JpegStreamSource(_Base):
    """JPEG frames held in memory, decoded per read by :func:`decode_mjpeg`: a webcam's MJPEG.

    ``livebg bench`` uses it so that its paced run pays the decode a real
    MJPEG camera costs, through the camera source's own decode function.

    Args:
        frames: JPEG bytes (uint8 arrays) of equal-size frames, played in a loop.
        fps: the nominal rate (pacing is :class:`~livebg.engine.capture.PacedSource`'s).
    """

    def __init__(self, frames: list[np.ndarray], *, fps: float = 30.0):
        if not frames:
            raise SourceError("no JPEG frames given")
        first = decode_mjpeg(frames[0])
        if first is None:
            raise SourceError("the first frame is not a JPEG OpenCV can decode")
        self.frames = frames
        self.fps = float(fps)
        self.height, self.width = first.shape[:2]
        self._index = 0

    @classmethod
    def encode(cls, images, *, quality: int = 90, fps: float = 30.0) -> JpegStreamSource:
        """From BGR uint8 images, encoded as a webcam does (baseline JPEG, 4:2:2 chroma)."""
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]
        return cls([cv2.imencode(".jpg", im, params)[1] for im in images], fps=fps)

    def read(self) -> Frame | None:
        image = decode_mjpeg(self.frames[self._index % len(self.frames)])
        if image is None:
            return None
        frame = Frame(image=image, timestamp=self._index / self.fps, index=self._index)
        self._index += 1
        return frame

    def describe(self) -> str:
        return f"MJPEG in memory ({self.width}x{self.height}, {len(self.frames)} frames)"


class VideoFileSource(_Base):
    """Frames of a video file, decoded by OpenCV (FFmpeg backend).

    Args:
        loop: start again at the end instead of returning ``None``.
    """

    def __init__(self, path: str | Path, *, loop: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"{self.path}: OpenCV cannot decode this video; "
                              "convert it to H.264 MP4 or MJPEG AVI")
        self.loop = loop
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 30.0
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._index = 0

    def read(self) -> Frame | None:
        ok, image = self._cap.read()
        if not ok and self.loop and self._index > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        if not ok:
            return None
        frame = Frame(image=image, timestamp=self._index / self.fps, index=self._index)
        self._index += 1
        return frame

    def describe(self) -> str:
        return f"video {self.path} ({self.width}x{self.height}@{self.fps:g})"

    def close(self) -> None:
        self._cap.release()


def read_image(path: str | Path, *, max_side: int | None = None) -> np.ndarray:
    """A BGR uint8 image from disk, or SourceError saying why not (empty, truncated...).

    Its longest side is at most ``max_side`` (default
    :data:`~livebg.stages.imagefile.MAX_SIDE`): larger images are scaled
    down, with one warning.
    """
    from livebg.stages.imagefile import MAX_SIDE, ImageFileError, read_image_file

    try:
        return read_image_file(path, max_side=max_side or MAX_SIDE, what="image")
    except ImageFileError as e:
        raise SourceError(str(e)) from None


class ImageSource(_Base):
    """One still image, repeated ``count`` times (forever when None)."""

    def __init__(self, path: str | Path, *, count: int | None = 1, fps: float = 30.0):
        self.path = Path(path)
        self.image = read_image(path)
        self.count = count
        self.fps = fps
        self.height, self.width = self.image.shape[:2]
        self._index = 0

    def read(self) -> Frame | None:
        if self.count is not None and self._index >= self.count:
            return None
        frame = Frame(image=self.image, timestamp=self._index / self.fps, index=self._index)
        self._index += 1
        return frame

    def describe(self) -> str:
        return f"image {self.path} ({self.width}x{self.height})"


class SampleSource(_Base):
    """The built-in sample: a real photo of a person moving over a real scene.

    The person is the public-domain NASA portrait of astronaut Eileen Collins
    (``data/astronaut.jpg``) cut out with ``data/astronaut_alpha.png``; the
    scene is a CC0 café photo (``data/scene_coffee.jpg``); see
    ``data/PROVENANCE.md``. The person sways, bobs and leans towards the
    camera on a 4-second cycle, so the demo exercises moving edges.

    Args:
        count: frames to produce; None for an endless stream.
    """

    def __init__(self, *, width: int = 1280, height: int = 720, fps: float = 30.0,
                 count: int | None = 150):
        self.width, self.height, self.fps, self.count = width, height, fps, count
        person = cv2.imread(str(DATA_DIR / "astronaut.jpg"), cv2.IMREAD_COLOR)
        alpha = cv2.imread(str(DATA_DIR / "astronaut_alpha.png"), cv2.IMREAD_GRAYSCALE)
        scene = cv2.imread(str(DATA_DIR / "scene_coffee.jpg"), cv2.IMREAD_COLOR)
        if person is None or alpha is None or scene is None:
            raise SourceError(f"sample images missing from {DATA_DIR}: reinstall livebg")
        self.scene = _cover(scene, width, height)  # uint8 BGR (height, width, 3)
        # Scale so the person's head and shoulders fill about 85 % of the frame height.
        s = 0.85 * height / person.shape[0]
        size = (max(1, round(person.shape[1] * s)), max(1, round(person.shape[0] * s)))
        self.person = cv2.resize(person, size, interpolation=cv2.INTER_AREA)
        self.alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        self._index = 0

    def _placement(self, index: int) -> np.ndarray:
        """2x3 affine matrix placing the person for frame ``index``."""
        t = index / self.fps
        ph, pw = self.alpha.shape
        phase = 2 * math.pi * t / 4.0
        zoom = 1.0 + 0.06 * math.sin(phase)
        dx = 0.12 * self.width * math.sin(phase) + 0.5 * (self.width - pw * zoom)
        dy = self.height - ph * zoom + 0.02 * self.height * (1 - math.cos(2 * phase))
        return np.array([[zoom, 0, dx], [0, zoom, dy]], np.float32)

    def _roi(self, m: np.ndarray) -> tuple[int, int, int, int]:
        """Bounding box (x0, y0, x1, y1) of the placed person, clipped to the frame."""
        ph, pw = self.alpha.shape
        corners = np.array([[0, 0, 1], [pw, 0, 1], [0, ph, 1], [pw, ph, 1]], np.float32) @ m.T
        x0, y0 = np.floor(corners.min(0)).astype(int) - 1
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
        return (max(0, x0), max(0, y0), min(self.width, x1), min(self.height, y1))

    def _warp(self, image: np.ndarray, m: np.ndarray, roi) -> np.ndarray:
        x0, y0, x1, y1 = roi
        shifted = m.copy()
        shifted[:, 2] -= (x0, y0)
        return cv2.warpAffine(image, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)

    def true_alpha(self, index: int) -> np.ndarray:
        """The cut-out's alpha in frame ``index``: float32 (height, width) in [0, 1]."""
        m = self._placement(index)
        x0, y0, x1, y1 = roi = self._roi(m)
        out = np.zeros((self.height, self.width), np.float32)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = self._warp(self.alpha, m, roi)
        return out

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` of the clip as BGR uint8 (height, width, 3).

        Only the person's bounding box is warped and blended, so a 720p frame
        costs a few milliseconds.
        """
        m = self._placement(index)
        x0, y0, x1, y1 = roi = self._roi(m)
        out = self.scene.copy()
        if x1 > x0 and y1 > y0:
            a = self._warp(self.alpha, m, roi)
            fg = self._warp(self.person, m, roi)
            out[y0:y1, x0:x1] = cv2.blendLinear(fg, out[y0:y1, x0:x1], a, 1.0 - a)
        return out

    def read(self) -> Frame | None:
        if self.count is not None and self._index >= self.count:
            return None
        frame = Frame(image=self.render(self._index), timestamp=self._index / self.fps,
                      index=self._index)
        self._index += 1
        return frame

    def describe(self) -> str:
        return f"built-in sample ({self.width}x{self.height}@{self.fps:g})"


def _cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fill (width, height), centre-crop; same dtype."""
    h, w = image.shape[:2]
    s = max(width / w, height / h)
    resized = cv2.resize(image, (math.ceil(w * s), math.ceil(h * s)), interpolation=cv2.INTER_AREA)
    y = (resized.shape[0] - height) // 2
    x = (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[y:y + height, x:x + width])


@dataclass(frozen=True)
class SourceOptions:
    """What any source may need to open.

    Attributes:
        camera: a CameraConfig-like object (device, width, height, fps, fourcc);
            None: 1280x720 at 30 fps, device 0, MJPG.
        count: frames for sample and image sources (None: endless).
        loop: loop a video file.
    """

    camera: Any = None
    count: int | None = None
    loop: bool = False


def _open_sample(spec: str, o: SourceOptions) -> Source:
    cam = o.camera
    w, h, fps = (cam.width, cam.height, cam.fps) if cam else (1280, 720, 30)
    return SampleSource(width=w, height=h, fps=fps, count=o.count)


def _open_camera(spec: str, o: SourceOptions) -> Source:
    cam = o.camera
    if spec.startswith("camera:"):
        device = spec.split(":", 1)[1]
    elif spec.startswith("/dev/"):
        device = spec
    else:
        device = cam.device if cam else "0"
    kw = dict(width=cam.width, height=cam.height, fps=cam.fps, fourcc=cam.fourcc) if cam else {}
    return CameraSource(device, **kw)


def _open_image(spec: str, o: SourceOptions) -> Source:
    return ImageSource(Path(spec).expanduser(), count=o.count)


def _open_video(spec: str, o: SourceOptions) -> Source:
    return VideoFileSource(Path(spec).expanduser(), loop=o.loop)


# kind -> opener; source_kind() says which kind a spec names
OPENERS: dict[str, Callable[[str, SourceOptions], Source]] = {
    "sample": _open_sample,
    "camera": _open_camera,
    "image": _open_image,
    "video": _open_video,
}


def source_kind(spec: str) -> str | None:
    """Which :data:`OPENERS` entry ``spec`` names; None when it names nothing we know."""
    if spec == "sample":
        return "sample"
    if spec == "camera" or spec.startswith(("camera:", "/dev/video")):
        return "camera"
    path = Path(spec).expanduser()
    kind = media_kind(path)
    if kind is None and path.is_file():
        return "video"  # any other file: let the decoder try
    return kind


def open_source(spec: str, *, camera=None, count: int | None = None,
                loop: bool = False) -> Source:
    """Open the source named by ``spec``.

    Args:
        spec: ``camera`` (the configured camera), ``camera:N`` or a
            ``/dev/video*`` path, ``sample``, or a video or image file.
        camera, count, loop: see :class:`SourceOptions`.

    Raises:
        SourceError: it cannot be opened, or ``spec`` names nothing we know.
    """
    kind = source_kind(spec)
    if kind is None:
        raise SourceError(f"{spec}: not camera, sample, or an existing video or image file")
    return OPENERS[kind](spec, SourceOptions(camera=camera, count=count, loop=loop))
