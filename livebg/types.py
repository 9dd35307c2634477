"""Plain data passed between stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    Attributes:
        image: BGR uint8 array of shape (H, W, 3), C-contiguous.
        timestamp: capture time in seconds (``time.monotonic()`` clock for live
            sources, presentation time for files).
        index: 0-based count of frames produced by the source.
    """

    image: np.ndarray
    timestamp: float
    index: int


@dataclass
class Segmentation:
    """What the segmentation network says about one frame.

    Attributes:
        probability: person probability, float32 (h, w) in [0, 1] at the
            network's resolution (e.g. 144x256). Never thresholded.
        features: optional inner feature map, float32 (h', w', C), or None
            when the model does not expose one.
    """

    probability: np.ndarray
    features: np.ndarray | None = field(default=None)
