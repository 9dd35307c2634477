"""The sink contract: what every output (virtual camera, overlay, files, window) promises.

Like pyvirtualcam's backends: ``write(image)`` takes a BGR uint8 (H, W, 3) or
BGRA uint8 (H, W, 4) frame of the size the sink was opened with (wrong dtype:
``TypeError``; wrong shape: ``ValueError``; :func:`check_frame` says so);
``close()`` releases it; ``describe()`` names it for logs and ``ctl status``;
every sink is a context manager. A sink never overwrites a file the user has
unless ``overwrite`` is set.

A sink whose ``wants_alpha`` is true (the overlay) is given BGRA frames with
the matte as alpha whatever the background mode; the others get the composited
frame (BGR, or BGRA for ``background.mode: transparent``). Either kind may also
get a BGR fill-in frame (a card saying the camera is unavailable or paused).
:mod:`livebg.sinks.registry` opens a sink by name.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np


class SinkError(RuntimeError):
    """A sink cannot be opened or written; the message says what to do."""


class StopRequested(Exception):
    """Raised by a sink when the user asked to stop (e.g. closed the preview)."""


@runtime_checkable
class Sink(Protocol):
    """What the engine needs of an output."""

    wants_alpha: bool
    on_demand_device: str | None  # a device node whose openers are the audience, or None

    def write(self, image: np.ndarray) -> None:
        """Take one frame: uint8 (H, W, 3) BGR or (H, W, 4) BGRA of the opened size."""

    def close(self) -> None:
        """Release the device, file or server; safe to call twice."""

    def describe(self) -> str:
        """A short name for logs and status, e.g. ``virtual camera /dev/video10``."""


def check_frame(image: np.ndarray, size: tuple[int, int]) -> None:
    """Raise ``TypeError`` unless ``image`` is uint8, ``ValueError`` unless it is (h, w, 3|4).

    Args:
        image: the frame a sink was given.
        size: (width, height) the sink was opened with.
    """
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


class SinkBase:
    """Shared plumbing: the opened size, context manager, a default ``describe``."""

    wants_alpha: ClassVar[bool] = False
    on_demand_device: str | None = None

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
