"""The one file-extension rule: which names are images, which are videos.

Used for inputs, backgrounds, ``matte`` folders and the tray's file dialogs.
Plain :mod:`pathlib` only, so the tray can use it without loading OpenCV.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"})


def media_kind(path: str | Path) -> str | None:
    """``image``, ``video`` or None from a file name's extension (case-insensitive)."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None
