"""Output-frame helpers: a fixed even size, fitting frames to it, and message cards."""

from __future__ import annotations

import cv2
import numpy as np

from livebg.sinks.base import to_bgr


def even_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) rounded down to even numbers (YUV 4:2:0 needs both even)."""
    return max(2, width - width % 2), max(2, height - height % 2)


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at exactly ``size`` (w, h): cropped by a pixel, or scaled."""
    w, h = size
    ih, iw = image.shape[:2]
    if (iw, ih) == (w, h):
        return image
    if 0 <= iw - w <= 1 and 0 <= ih - h <= 1:
        return np.ascontiguousarray(image[:h, :w])
    interp = cv2.INTER_AREA if iw > w else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def make_card(size: tuple[int, int], text: str, base: np.ndarray | None = None) -> np.ndarray:
    """A BGR frame saying ``text``: over ``base`` dimmed, or over dark grey."""
    w, h = size
    if base is not None and base.shape[:2] == (h, w):
        card = (to_bgr(base).astype(np.uint16) * 3 // 10).astype(np.uint8)
    else:
        card = np.full((h, w, 3), 32, np.uint8)
    scale = max(0.4, w / 1280 * 1.1)
    thick = max(1, round(2 * scale))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    org = ((w - tw) // 2, (h + th) // 2)
    cv2.putText(card, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), thick,
                cv2.LINE_AA)
    return card
