"""A sink that discards frames (benchmarks, tests) and counts them."""

from __future__ import annotations

import numpy as np

from livebg.sinks.base import SinkBase, check_frame


class NullSink(SinkBase):
    """Discards frames (benchmarks, tests). Counts them."""

    def __init__(self, width: int, height: int):
        super().__init__(width, height)
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        check_frame(image, self.size)
        self.frames += 1

    def describe(self) -> str:
        return "null"
