"""Reading a recorded video for ``livebg process``: every frame, its timestamp, its audio.

:class:`VideoInput` opens a file with PyAV (FFmpeg), picks the first video
stream and every audio stream, and yields the video frames in order, upright
(the stream's rotation, from its display matrix, applied), with their own
presentation timestamps, so variable frame rate survives. Audio packets are
yielded untouched for the writer to copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)


class OfflineError(RuntimeError):
    """A problem with an input or output file, as one line that says what to do."""


@dataclass
class VideoFrameItem:
    """One decoded frame.

    Attributes:
        image: BGR uint8 (H, W, 3), upright.
        pts: presentation timestamp in units of the stream's time base (None if unknown).
        index: 0-based position in the stream.
    """

    image: np.ndarray
    pts: int | None
    index: int


def _rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """``image`` turned by the display rotation (counter-clockwise degrees, as FFmpeg reports)."""
    turns = (round(degrees / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


class VideoInput:
    """A video file opened for reading (a context manager).

    Args:
        path: the file.

    Raises:
        OfflineError: not a file, not a video FFmpeg can read, or no video stream.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise OfflineError(f"{self.path}: no such file")
        try:
            self.container = av.open(str(self.path), "r")
        except (av.FFmpegError, UnicodeDecodeError) as e:
            raise OfflineError(f"{self.path}: not a video FFmpeg can read ({_reason(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise OfflineError(f"{self.path}: no video stream in it")
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.audio = list(self.container.streams.audio)
        self.time_base: Fraction = self.video.time_base or Fraction(1, 90000)
        self.rate: Fraction = self.video.average_rate or self.video.guessed_rate or Fraction(30)
        self._count = 0

    @property
    def frame_count(self) -> int | None:
        """Frames in the stream as the container says (None when it does not)."""
        n = self.video.frames
        if n:
            return int(n)
        if self.video.duration and self.rate:
            return int(round(float(self.video.duration * self.time_base * self.rate)))
        return None

    @property
    def duration(self) -> float:
        """The video stream's duration in seconds (0 when unknown)."""
        if self.video.duration:
            return float(self.video.duration * self.time_base)
        if self.container.duration:
            return self.container.duration / 1e6
        return 0.0

    def packets(self) -> Iterator[av.Packet]:
        """Every packet of the video and audio streams, in file order (flush packets last)."""
        yield from self.container.demux(self.video, *self.audio)

    def decode(self, packet: av.Packet) -> Iterator[VideoFrameItem]:
        """The video frames a video packet (or the flush packet) gives, upright BGR."""
        try:
            frames = packet.decode()
        except av.FFmpegError as e:
            raise OfflineError(f"{self.path}: corrupt video ({_reason(e)})") from None
        for frame in frames:
            rotation = int(round(getattr(frame, "rotation", 0) or 0))
            image = _rotate(frame.to_ndarray(format="bgr24"), rotation)
            item = VideoFrameItem(image, frame.pts, self._count)
            self._count += 1
            yield item

    def close(self) -> None:
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _reason(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).split(":")[-1].strip() or type(e).__name__
