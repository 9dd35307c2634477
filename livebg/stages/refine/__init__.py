"""Matte refinement: the net's low-resolution probability -> full-resolution alpha.

A refiner has one method, ``refine(image, probability, features=None)``,
returning float32 alpha (H, W) in [0, 1] at the frame's size, and ``reset()``,
which forgets any state carried between frames (call it on a scene cut or a
new camera), and ``timings()``, the milliseconds of the last call's sub-steps.
Refiners are made by name with :func:`make_refiner`:

* ``none``: the net's probability, bilinearly upsampled;
* ``guided``: a colour fast guided filter (:mod:`livebg.stages.refine.guided`);
* ``sss``: a graph-regularised matte on superpixels (a regular grid by
  default, or SLIC-like superpixels) with colour, non-local colour and
  optionally semantic affinities, then the guided filter
  (:mod:`livebg.stages.refine.sss`; its keyword options are measured one by one in
  ``scripts/ablation_refine.py``).
"""

from __future__ import annotations

import cv2
import numpy as np

MODES = ("none", "guided", "sss")


class UpsampleRefiner:
    """``none``: the net's probability, bilinearly upsampled. No state."""

    name = "none"

    def refine(self, image: np.ndarray, probability: np.ndarray,
               features: np.ndarray | None = None) -> np.ndarray:
        """Alpha float32 (H, W) in [0, 1] for a BGR frame (H, W, 3)."""
        h, w = image.shape[:2]
        return cv2.resize(probability, (w, h), interpolation=cv2.INTER_LINEAR)

    def reset(self) -> None:
        pass

    def timings(self) -> dict[str, float]:
        """Milliseconds of the last call's sub-steps (none here)."""
        return {}


def make_refiner(mode: str, **options):
    """A refiner by name, with keyword options for its class; ValueError for an unknown one."""
    if mode == "none":
        if options:
            raise TypeError(f"refinement none takes no options, got {sorted(options)}")
        return UpsampleRefiner()
    if mode == "guided":
        from livebg.stages.refine.guided import GuidedRefiner

        return GuidedRefiner(**options)
    if mode == "sss":
        from livebg.stages.refine.sss import SSSRefiner

        return SSSRefiner(**options)
    raise ValueError(f"unknown refinement {mode!r}; use one of {', '.join(MODES)}")
