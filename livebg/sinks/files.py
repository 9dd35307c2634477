"""File sinks: a video file through OpenCV, a folder of PNG frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livebg.sinks.base import SinkBase, SinkError, check_frame, to_bgr

VIDEO_SUFFIXES = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise SinkError(f"{path} exists: choose another name or pass --overwrite")


class VideoFileSink(SinkBase):
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
        check_frame(image, self.size)
        self._writer.write(to_bgr(image))
        self.frames += 1

    def close(self) -> None:
        self._writer.release()

    def describe(self) -> str:
        return f"video {self.path}"


class PngSequenceSink(SinkBase):
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
        check_frame(image, self.size)
        path = self.dir / f"{self.frames:05d}.png"
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise SinkError(f"{path}: cannot write (disk full or no permission?)")
        self.frames += 1

    def describe(self) -> str:
        return f"png {self.dir}/"
