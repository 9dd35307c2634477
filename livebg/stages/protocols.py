"""What the engine needs of each processing stage, written down.

:class:`~livebg.processor.Processor` calls exactly these methods and no
others; a stage is any object that has them (structural typing, like the
:class:`~livebg.sinks.base.Sink` protocol). Shapes: frames are BGR uint8
(H, W, 3); mattes float32 (H, W) in [0, 1] at the frame's size; the net's
probability float32 (h, w) in [0, 1] at its own resolution.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from livebg.types import Segmentation


@runtime_checkable
class Segmenter(Protocol):
    """The net: stateless, so it may run a frame ahead of the stateful stages."""

    name: str      # the model's name, for status
    provider: str  # where it runs (ONNX Runtime's execution provider)

    def segment(self, image: np.ndarray) -> Segmentation:
        """The net's probability (and optional features) for one frame."""

    def close(self) -> None:
        """Release the session."""


@runtime_checkable
class Refiner(Protocol):
    """Low-resolution probability -> full-resolution matte; may carry state across frames."""

    name: str

    def refine(self, image: np.ndarray, probability: np.ndarray,
               features: np.ndarray | None = None) -> np.ndarray:
        """Alpha float32 (H, W) in [0, 1] for ``image`` (H, W, 3)."""

    def reset(self) -> None:
        """Forget the state carried from earlier frames (new scene, new source)."""

    def timings(self) -> dict[str, float]:
        """Milliseconds of the last call's sub-steps (may be empty)."""


@runtime_checkable
class TemporalStage(Protocol):
    """Temporal stability: two steps around the refiner, with state across frames."""

    def update_probability(self, probability: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Step 1, before refinement: the net's probability, steadied (same shape)."""

    def update(self, alpha: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Step 2, after refinement: the full-resolution alpha, steadied (same shape)."""

    def reset(self) -> None:
        """Forget the previous frames."""


@runtime_checkable
class Compositor(Protocol):
    """Frame + matte -> output frame(s) over the configured background."""

    def compose(self, frame: np.ndarray, alpha: np.ndarray, *,
                still: bool = False) -> np.ndarray:
        """BGR uint8 (H, W, 3), or BGRA (H, W, 4) for a transparent background.

        ``still``: the caller vouches the frame shows the same still picture as
        the one this very ``alpha`` array was last composed with (estimates may
        be reused; see :mod:`livebg.stages.still`).
        """

    def compose_pair(self, frame: np.ndarray, alpha: np.ndarray, *,
                     still: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(the output above, a BGRA cut-out with the matte as alpha) from one set of estimates."""

    def close(self) -> None:
        """Release a video background; safe to call twice."""
