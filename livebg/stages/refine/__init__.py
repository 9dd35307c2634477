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
  (:mod:`livebg.stages.refine.sss`; its options are measured one by one in
  ``scripts/ablation_refine.py``).

Each refiner takes one frozen options dataclass (:class:`~.guided.GuidedOptions`,
:class:`~.sss.SSSOptions`). Research-only options live in
:mod:`livebg.stages.refine.experimental`, off the runtime path.
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


def options_for(mode: str, **values):
    """The options dataclass of ``mode`` from keyword values (TypeError for an unknown key)."""
    if mode == "guided":
        from livebg.stages.refine.guided import GuidedOptions

        return GuidedOptions(**values)
    if mode == "sss":
        from livebg.stages.refine.sss import SSSOptions

        return SSSOptions(**values)
    if mode == "none":
        if values:
            raise TypeError(f"refinement none takes no options, got {sorted(values)}")
        return None
    raise ValueError(f"unknown refinement {mode!r}; use one of {', '.join(MODES)}")


def make_refiner(mode: str, options=None):
    """A refiner by name with its options dataclass (None: the defaults).

    Raises ValueError for an unknown mode, TypeError for options of another mode.
    """
    if mode == "none":
        if options is not None:
            raise TypeError("refinement none takes no options")
        return UpsampleRefiner()
    if mode == "guided":
        from livebg.stages.refine.guided import GuidedOptions, GuidedRefiner

        if options is not None and not isinstance(options, GuidedOptions):
            raise TypeError(f"guided takes GuidedOptions, got {type(options).__name__}")
        return GuidedRefiner(options)
    if mode == "sss":
        from livebg.stages.refine.sss import SSSOptions, SSSRefiner

        if options is not None and not isinstance(options, SSSOptions):
            raise TypeError(f"sss takes SSSOptions, got {type(options).__name__}")
        return SSSRefiner(options)
    raise ValueError(f"unknown refinement {mode!r}; use one of {', '.join(MODES)}")
