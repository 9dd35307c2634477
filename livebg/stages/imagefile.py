"""Reading still images safely: complete files only, and never more pixels than we use.

Shared by the image source (``--input photo.jpg``, ``livebg matte``) and the
image background. A zero-byte, truncated or undecodable file is refused with
one line (libjpeg would otherwise decode a truncated JPEG to a grey bottom
and print a raw warning); a huge image is decoded at a reduced scale where
the format allows it (JPEG: libjpeg's DCT scaling, 1/2, 1/4 or 1/8) and then
scaled down to ``max_side``, which is logged once per file.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

# The longest side a frame of the live pipeline may have: 4K UHD. A 16000x16000
# input made a 16000x16000 output (7.1 GB resident for 3 frames).
MAX_SIDE = 3840

_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


class ImageFileError(ValueError):
    """The file is not a complete image we can read; the message says so in one line."""


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF marker, or None."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _jpeg_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the last start-of-scan (entropy-coded
    data never holds 0xFFD9: 0xFF is stuffed as 0xFF00)."""
    sos = data.rfind(b"\xff\xda")
    return sos > 0 and data.rfind(b"\xff\xd9") > sos


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG or PNG from its header, None for other formats."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def read_image_file(path: str | Path, *, max_side: int = MAX_SIDE,
                    what: str = "image") -> np.ndarray:
    """A BGR uint8 (h, w, 3) image from ``path``, its longest side at most ``max_side``.

    Args:
        path: a JPEG, PNG, WebP or BMP file (EXIF orientation applied).
        max_side: larger images are scaled down (aspect kept) and a warning
            says so.
        what: the role of the file in messages ("background image").

    Raises:
        ImageFileError: missing, a folder, unreadable, empty, truncated, or not
            an image OpenCV can decode.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise ImageFileError(f"{what} {p} is a folder (give the path of an image file)")
    if not p.is_file():
        raise ImageFileError(f"{what} {p}: no such file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ImageFileError(f"{what} {p}: cannot read it ({e.strerror})") from None
    if not data:
        raise ImageFileError(f"{what} {p} is empty (0 bytes)")
    if data[:2] == b"\xff\xd8" and not _jpeg_complete(data):
        raise ImageFileError(f"{what} {p} is a truncated JPEG (the file ends early; "
                             "copy it again)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise ImageFileError(f"{what} {p} is a truncated PNG (the file ends early; "
                             "copy it again)")
    size = image_size(data)
    scale = 1
    if size is not None and data[:2] == b"\xff\xd8":
        while scale < 8 and max(size) / (scale * 2) >= max_side:
            scale *= 2
    image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[scale])
    if image is None:
        raise ImageFileError(f"{what} {p}: not an image OpenCV can decode "
                             "(use JPEG, PNG, WebP or BMP)")
    h, w = image.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                           interpolation=cv2.INTER_AREA)
    if scale > 1 or image.shape[:2] != (h, w):
        full = size if size is not None else (w, h)
        log.warning("%s %s is %dx%d: scaled down to %dx%d (the largest side livebg uses "
                    "is %d)", what, p, full[0], full[1], image.shape[1], image.shape[0],
                    max_side)
    return image
