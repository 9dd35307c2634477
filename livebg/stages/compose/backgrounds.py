"""Background sources for the compositor: still images and looping videos.

Both hand out BGR uint8 frames of exactly the requested output size, scaled
with the same geometry (``fit_image``). Files are opened and checked when the
object is built, so a bad path fails at start-up rather than on the first
frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

FITS = ("cover", "fit")

# Resized clip frames are kept in memory (so each later loop costs no decoding)
# only while they fit in this many bytes at the output size.
DEFAULT_VIDEO_CACHE_BYTES = 300 * 2**20


def fit_image(
    image: np.ndarray,
    height: int,
    width: int,
    *,
    fit: str = "cover",
    color: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Scale ``image`` to exactly ``height`` x ``width``, keeping its aspect.

    Args:
        image: BGR uint8 (h, w, 3), any size and aspect.
        height, width: output size in pixels (>= 1).
        fit: "cover" scales to fill the output and crops the overflow equally
            on both sides; "fit" scales to lie inside the output and pads the
            rest with ``color``.
        color: BGR padding colour for "fit", ints 0..255.

    Returns:
        A new C-contiguous BGR uint8 array (height, width, 3). An image that
        already has the output size is copied unchanged.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
    ih, iw = image.shape[:2]
    if (ih, iw) == (height, width):
        return np.ascontiguousarray(image).copy()
    if fit == "cover":
        # Crop the source to the output's aspect first, then resize once:
        # never enlarges pixels that would be cropped away.
        scale = max(width / iw, height / ih)
        cw = min(iw, max(1, round(width / scale)))
        ch = min(ih, max(1, round(height / scale)))
        x0 = (iw - cw) // 2
        y0 = (ih - ch) // 2
        return _resize(image[y0 : y0 + ch, x0 : x0 + cw], width, height)
    scale = min(width / iw, height / ih)
    nw = min(width, max(1, round(iw * scale)))
    nh = min(height, max(1, round(ih * scale)))
    out = solid(height, width, color)
    x0 = (width - nw) // 2
    y0 = (height - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = _resize(image, nw, nh)
    return out


def solid(height: int, width: int, color: tuple[int, int, int]) -> np.ndarray:
    """A new BGR uint8 (height, width, 3) frame of one colour."""
    # One row, then copied down: broadcasting a 3-vector over the whole frame
    # is ~50x slower in numpy.
    row = np.tile(np.asarray(color, np.uint8), width)
    out = np.empty((height, width * 3), np.uint8)
    out[:] = row
    return out.reshape(height, width, 3)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    ih, iw = image.shape[:2]
    if (ih, iw) == (height, width):
        return np.ascontiguousarray(image)
    shrinking = width * height < iw * ih
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interp)


class BackgroundError(ValueError):
    """A background file that cannot be used; the message says why in one line."""


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as BGR uint8 (h, w, 3), its longest side at most
    :data:`~livebg.stages.imagefile.MAX_SIDE` (larger ones are scaled down, with
    one warning).

    Grey, 16-bit and alpha images are converted to 8-bit BGR; EXIF orientation
    is applied. Raises BackgroundError (a ValueError) naming the path when the
    file is missing, empty, truncated or cannot be decoded.
    """
    from livebg.stages.imagefile import ImageFileError, read_image_file

    try:
        return read_image_file(path, what="background image")
    except ImageFileError as e:
        raise BackgroundError(str(e)) from None


class ImageBackground:
    """A still image, resized once per output size.

    Args:
        path: image file (any size and aspect).
        fit: "cover" or "fit", see ``fit_image``.
        color: BGR padding colour for "fit".
    """

    def __init__(
        self, path: str | Path, *, fit: str = "cover", color: tuple[int, int, int] = (0, 0, 0)
    ):
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
        self._image = load_image(path)
        self._fit = fit
        self._color = color
        self._resized: np.ndarray | None = None

    def frame(self, height: int, width: int) -> np.ndarray:
        """The background at (height, width, 3) BGR uint8; cached, do not modify."""
        r = self._resized
        if r is None or r.shape[:2] != (height, width):
            r = fit_image(self._image, height, width, fit=self._fit, color=self._color)
            self._resized = r
        return r

    def close(self) -> None:
        self._resized = None


class VideoBackground:
    """A video file played in a loop, one clip frame per ``frame()`` call.

    Frames are decoded on demand and resized to the output size. While the
    whole clip fits in ``max_cache_bytes`` at the output size, the resized
    frames of the first loop are kept, so later loops cost neither decoding
    nor resizing; a longer clip is decoded on the fly every loop (one decode
    and one resize per call). A change of output size drops the cache and
    playback continues from the same clip position.

    Args:
        path: any file OpenCV's VideoCapture can read.
        fit: "cover" or "fit", see ``fit_image``.
        color: BGR padding colour for "fit".
        max_cache_bytes: memory cap for the resized frames.

    Raises:
        ValueError: the file is missing or no frame can be decoded from it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fit: str = "cover",
        color: tuple[int, int, int] = (0, 0, 0),
        max_cache_bytes: int = DEFAULT_VIDEO_CACHE_BYTES,
    ):
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
        self._path = Path(path).expanduser()
        if self._path.is_dir():
            raise BackgroundError(
                f"background video {self._path} is a directory (give the path of a video file)"
            )
        if not self._path.is_file():
            raise BackgroundError(
                f"background video not found: {self._path} (check the path or pick another video)"
            )
        self._fit = fit
        self._color = color
        self._max_cache_bytes = max_cache_bytes
        self._cap: cv2.VideoCapture | None = self._open()
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise BackgroundError(
                f"cannot decode any frame of background video {self._path} "
                "(use a format OpenCV/FFmpeg can read, e.g. MP4 or WebM)"
            )
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._count_hint = count if count > 0 else None
        self._pending: np.ndarray | None = first  # clip frame 0, decoded to check the file
        self._cap_pos = 1  # clip index that the capture's next read() returns
        self._index = 0  # clip index of the frame the next frame() call returns
        self._length: int | None = None  # known once the first loop ends
        self._size: tuple[int, int] | None = None
        self._cache: list[np.ndarray] = []  # resized clip frames 0..len-1
        self._caching = False
        self._last: np.ndarray | None = None
        self._broken = False

    @property
    def path(self) -> Path:
        return self._path

    @property
    def index(self) -> int:
        """Clip index (0-based) of the frame the next ``frame()`` call returns."""
        return self._index

    @property
    def length(self) -> int | None:
        """Number of frames in the clip, or None until the first loop has ended."""
        return self._length

    @property
    def cached(self) -> bool:
        """True once the whole clip is held in memory at the current size."""
        return self._length is not None and len(self._cache) == self._length

    def frame(self, height: int, width: int) -> np.ndarray:
        """The next clip frame as BGR uint8 (height, width, 3); do not modify it."""
        if self._cap is None:
            raise RuntimeError(f"background video {self._path} is closed")
        if self._size != (height, width):
            self._size = (height, width)
            self._cache = []
            n = self._length or self._count_hint
            self._caching = n is None or n * height * width * 3 <= self._max_cache_bytes
        i = self._index
        if i < len(self._cache):
            out = self._cache[i]
        else:
            raw = self._raw_at(i)
            if raw is None and i > 0:  # end of the clip: wrap
                self._length = i
                i = 0
                raw = None if self._cache else self._raw_at(0)
            if self._cache and i == 0:
                out = self._cache[0]
            elif raw is None:
                if not self._broken:
                    log.error(
                        "background video %s stopped decoding; holding its last frame", self._path
                    )
                    self._broken = True
                out = self._last
                if out is None:
                    out = np.zeros((height, width, 3), np.uint8)
                elif out.shape[:2] != (height, width):
                    out = fit_image(out, height, width, fit=self._fit, color=self._color)
            else:
                out = fit_image(raw, height, width, fit=self._fit, color=self._color)
                if self._caching and len(self._cache) == i:  # fill contiguously from frame 0
                    if (i + 1) * out.nbytes <= self._max_cache_bytes:
                        self._cache.append(out)
                    else:
                        log.info(
                            "background video %s is too long to keep in memory; "
                            "decoding every loop",
                            self._path,
                        )
                        self._caching = False
                        self._cache = []
        self._last = out
        self._index = i + 1
        if self._length is not None and self._index >= self._length:
            self._index = 0
        return out

    def close(self) -> None:
        """Release the capture and the cached frames. Idempotent."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._cache = []
        self._pending = None
        self._last = None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self._path))
        if not cap.isOpened():
            raise BackgroundError(
                f"cannot open background video {self._path} "
                "(use a format OpenCV/FFmpeg can read, e.g. MP4 or WebM)"
            )
        return cap

    def _raw_at(self, i: int) -> np.ndarray | None:
        """Decode clip frame ``i`` at its native size, or None past the end."""
        if i == 0 and self._pending is not None:
            raw, self._pending = self._pending, None
            return raw
        if self._cap_pos != i:
            self._seek(i)
        ok, raw = self._cap.read()
        if not ok or raw is None:
            return None
        self._cap_pos = i + 1
        return raw

    def _seek(self, i: int) -> None:
        """Position the capture at clip frame ``i``; reopen the file if it cannot seek."""
        self._pending = None
        self._cap_pos = i
        if self._cap.set(cv2.CAP_PROP_POS_FRAMES, i):
            return
        self._cap.release()
        self._cap = self._open()
        for _ in range(i):
            if not self._cap.grab():
                break
