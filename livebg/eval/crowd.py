"""Clips with a second person, for ``subject: main`` versus ``all``.

The main person is framed like a webcam's user (head and torso, rising from
the bottom edge, swaying a little); a second person cut out of another photo
is composited *behind* them, in one of four cases:

* ``behind_still``: smaller (half the frame's height, full body: a few
  metres behind), standing to one side;
* ``behind_walk``: the same, walking across the whole frame, behind the user;
* ``beside``: of similar size (head and torso, rising from the bottom edge),
  sitting beside the user for the whole clip;
* ``cross``: larger than ``behind_walk`` and nearer, walking across close
  behind the user, so that the two silhouettes touch and overlap.

Every frame has two exact truths: ``masks`` (the main person only) and
``masks_all`` (everyone: ``main + (1 - main) * other``). The frame is
``main_colour + (1 - main) * (other_colour + (1 - other) * background)`` plus
fresh Gaussian noise (and an optional JPEG round trip), like
:func:`livebg.eval.clips.generate_clip`. Deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from livebg.eval.clips import (Clip, _background_paths, _gaussian_noise, _imread, fit_background,
                               load_pairs)
from livebg.eval.metrics import as_alpha

CASES = ("behind_still", "behind_walk", "beside", "cross")


def _layer(person_bgr: np.ndarray, mask: np.ndarray, size: tuple[int, int], *, crop: float,
           height: float, x: float, bottom: float) -> tuple[np.ndarray, np.ndarray]:
    """One person placed in the frame: (premultiplied colour float32 (H, W, 3), alpha (H, W)).

    Args:
        crop: fraction of the person's height kept (from the top of the head).
        height: that part's height as a fraction of the frame's height.
        x: horizontal centre of the kept part, as a fraction of the width.
        bottom: where the crop line lands, as a fraction of the height.
    """
    w_out, h_out = size
    ys, xs = np.nonzero(mask > 0.5)
    y0, y1 = int(ys.min()), int(ys.max()) + 1
    y_cut = y0 + crop * (y1 - y0)
    cx = float(xs[ys < y_cut].mean())
    s = height * h_out / (y_cut - y0)
    rgba = np.empty(mask.shape + (4,), np.float32)
    rgba[..., 3] = mask
    rgba[..., :3] = person_bgr.astype(np.float32) * mask[..., None]
    if crop < 1.0:
        rgba[int(math.ceil(y_cut)) + 2:] = 0  # nothing below the crop line (the frame's edge)
    affine = np.array([[s, 0.0, x * w_out - cx * s], [0.0, s, bottom * h_out - y_cut * s]])
    if s < 0.5:  # warpAffine does not average; shrink first so a small person is not aliased
        f = 2 * s
        rgba = cv2.resize(rgba, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        affine[:, :2] /= f
    out = cv2.warpAffine(rgba, affine, (w_out, h_out), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = np.clip(out[..., 3], 0.0, 1.0)
    return out[..., :3], alpha


def _plan(case: str, rng: np.random.Generator, n: int) -> tuple[dict, list[dict]]:
    """(main person's placement, the other's placement per frame) for ``case``."""
    side = rng.choice([-1.0, 1.0])
    main = {"crop": rng.uniform(0.40, 0.50), "height": rng.uniform(0.80, 0.90),
            "x": 0.5 + rng.uniform(-0.06, 0.06), "bottom": 1.0}
    sway = rng.uniform(0.005, 0.015)
    if case == "beside":
        main["x"] = 0.5 - side * rng.uniform(0.16, 0.20)
        other = {"crop": rng.uniform(0.40, 0.50), "height": rng.uniform(0.70, 0.85),
                 "x": 0.5 + side * rng.uniform(0.22, 0.27), "bottom": 1.0}
        others = [dict(other) for _ in range(n)]
    elif case == "behind_still":
        other = {"crop": 1.0, "height": rng.uniform(0.45, 0.60),
                 "x": 0.5 + side * rng.uniform(0.32, 0.40), "bottom": rng.uniform(0.80, 0.90)}
        others = [dict(other) for _ in range(n)]
    else:  # walking across, behind the user
        far = case == "behind_walk"
        base = {"crop": 1.0 if far else 0.75,
                "height": rng.uniform(0.45, 0.60) if far else rng.uniform(0.60, 0.70),
                "bottom": rng.uniform(0.80, 0.90) if far else 1.0}
        x0, x1 = 0.5 - side * 0.62, 0.5 + side * 0.62
        others = [dict(base, x=x0 + (x1 - x0) * t / max(1, n - 1)) for t in range(n)]
    mains = [dict(main, x=main["x"] + sway * math.sin(2 * math.pi * t / 45.0)) for t in range(n)]
    return mains, others


def generate_crowd_clip(main_bgr: np.ndarray, main_mask: np.ndarray, other_bgr: np.ndarray,
                        other_mask: np.ndarray, background_bgr: np.ndarray, *, case: str,
                        size: tuple[int, int] = (640, 360), n_frames: int = 60, seed: int = 0,
                        noise_sigma: float = 2.0, jpeg_quality: int | None = None,
                        name: str = "crowd") -> Clip:
    """One clip of ``case`` (see the module doc); ``masks`` main only, ``masks_all`` everyone.

    Args:
        main_bgr, other_bgr: uint8 (h, w, 3) photos of the two people.
        main_mask, other_mask: their masks, uint8 (255 = person) or float [0, 1].
        background_bgr: uint8 background photo (scaled to cover the frame).
        case: one of :data:`CASES`.
        size: (W, H) in pixels.
        n_frames: clip length (60: two seconds at 30 frames/s).
        seed: seeds the placement and the noise.
        noise_sigma: Gaussian sensor noise in 0..255 levels.
        jpeg_quality: a JPEG round trip per frame at this quality, or None.
    """
    if case not in CASES:
        raise ValueError(f"case {case!r}: use one of {', '.join(CASES)}")
    m_main, m_other = as_alpha(main_mask, "main_mask"), as_alpha(other_mask, "other_mask")
    geo_rng, noise_rng = np.random.default_rng(seed).spawn(2)
    mains, others = _plan(case, geo_rng, n_frames)
    background = fit_background(background_bgr, size, geo_rng).astype(np.float32)
    frames, masks, masks_all = [], [], []
    for t in range(n_frames):
        fc, fa = _layer(main_bgr, m_main, size, **mains[t])
        oc, oa = _layer(other_bgr, m_other, size, **others[t])
        comp = fc + (1.0 - fa)[..., None] * (oc + (1.0 - oa)[..., None] * background)
        if noise_sigma > 0:
            noise = _gaussian_noise(noise_rng, comp.shape, noise_sigma)
            frame = cv2.addWeighted(comp, 1.0, noise, 1.0, 0.0, dtype=cv2.CV_8U)
        else:
            frame = cv2.addWeighted(comp, 1.0, comp, 0.0, 0.0, dtype=cv2.CV_8U)
        if jpeg_quality is not None:
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        frames.append(frame)
        masks.append(fa)
        masks_all.append(fa + (1.0 - fa) * oa)
    params = {"seed": int(seed), "size": list(size), "case": case, "n_frames": n_frames,
              "noise_sigma": float(noise_sigma), "jpeg_quality": jpeg_quality,
              "main": mains[0], "other_first": others[0], "other_last": others[-1]}
    return Clip(frames=frames, masks=masks, moving=[t > 0 for t in range(n_frames)], name=name,
                params=params, masks_all=masks_all)


def generate_crowd_clips(data_dir: str | Path, *, n_clips: int = 8,
                         size: tuple[int, int] = (640, 360), seed: int = 0,
                         backgrounds=None, n_frames: int = 60,
                         jpeg_quality: int | None = None) -> Iterator[Clip]:
    """``n_clips`` clips cycling through :data:`CASES`, two different people each.

    Yields clips named ``NNN_<case>_<main>_<other>``.
    """
    pairs = load_pairs(data_dir)
    if len(pairs) < 2:
        raise FileNotFoundError(f"{data_dir}: need at least two image/mask pairs for crowd clips")
    bgs = _background_paths(backgrounds)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    seeds = rng.integers(0, 2**31 - 1, size=n_clips)
    for i in range(n_clips):
        a = pairs[order[(2 * i) % len(pairs)]]
        b = pairs[order[(2 * i + 1) % len(pairs)]]
        case = CASES[i % len(CASES)]
        yield generate_crowd_clip(
            _imread(a[0], cv2.IMREAD_COLOR), _imread(a[1], cv2.IMREAD_GRAYSCALE),
            _imread(b[0], cv2.IMREAD_COLOR), _imread(b[1], cv2.IMREAD_GRAYSCALE),
            _imread(bgs[i % len(bgs)], cv2.IMREAD_COLOR), case=case, size=size,
            n_frames=n_frames, seed=int(seeds[i]), jpeg_quality=jpeg_quality,
            name=f"{i:03d}_{case}_{a[0].stem}_{b[0].stem}")
