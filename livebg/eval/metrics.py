"""Quality metrics for person mattes: single frames and clips.

Every function takes plain NumPy arrays. An *alpha* is an (H, W) array that is
either float in [0, 1] or uint8 in 0..255 (255 = person) or bool; it is
normalised by :func:`as_alpha` to float32 in [0, 1]. All results are plain
Python floats in **alpha units** (fractions in [0, 1], never percent and never
x100): multiply by 100 to compare with papers that report dtSSD or MAE x100.

Single frame:

* :func:`iou` - intersection over union of the person class.
* :func:`boundary_iou` - Boundary IoU (Cheng et al., CVPR 2021).
* :func:`mae`, :func:`band_mae` - mean absolute alpha error, optionally only in
  a band around the true contour (:func:`band_mask`).
* :func:`ghost` - share of the true background, away from the person, that
  the matte does not clear (haze, held blobs).

Clips (sequences of frames):

* :func:`dtssd` - temporal coherence against ground truth (Erofeev et al. 2015).
* :func:`flicker` - reference-free alpha change where the image is still.
* :func:`lag` / :func:`estimate_lag` - how many frames the predicted edge trails
  the true one on moving content.

Band width: ``d = max(1, round(dilation_ratio * sqrt(H**2 + W**2)))`` pixels,
the Boundary IoU paper's rule (2 % of the image diagonal by default). Distances
are chessboard (a (2d+1)x(2d+1) square window), which is what the reference
implementation's d-fold erosion with a 3x3 kernel computes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import cv2
import numpy as np

log = logging.getLogger(__name__)

_RANGE_TOL = 1e-4


def as_alpha(x: np.ndarray, name: str = "alpha") -> np.ndarray:
    """Normalise a mask or matte to float32 in [0, 1].

    Args:
        x: (H, W) array: uint8 in 0..255, bool, or float in [0, 1]. A uint8
            array is always read as 0..255: pass a 0/1 mask as bool.
        name: used in error messages.

    Returns:
        float32 (H, W) in [0, 1] (a view-free copy only where a conversion was
        needed).

    Raises:
        ValueError: not 2-D, or a float array outside [0, 1] (e.g. a float
            array holding 0..255).
        TypeError: any other dtype (uint16, int, ...).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected an (H, W) array, got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1.0 / 255.0)
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (float(x.min()) < -_RANGE_TOL or float(x.max()) > 1.0 + _RANGE_TOL):
            raise ValueError(
                f"{name}: float values must lie in [0, 1], got [{x.min():.4g}, {x.max():.4g}]"
                " (uint8 masks must be passed as uint8)"
            )
        return x.astype(np.float32, copy=False)
    raise TypeError(f"{name}: expected uint8, bool or float, got {x.dtype}")


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = as_alpha(pred, "pred")
    g = as_alpha(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred shape {p.shape} differs from gt shape {g.shape}")
    return p, g


def binarize(alpha: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Person mask of an alpha: bool (H, W), True where ``alpha >= threshold``.

    ``alpha`` may be uint8 0..255 or float [0, 1]; ``threshold`` is in [0, 1].
    """
    return as_alpha(alpha) >= threshold


def boundary_width(shape: tuple[int, ...], dilation_ratio: float = 0.02) -> int:
    """Band width d in pixels: ``max(1, round(dilation_ratio * image diagonal))``.

    Args:
        shape: (H, W, ...) of the image.
        dilation_ratio: fraction of the diagonal, e.g. 0.02.
    """
    h, w = shape[:2]
    return max(1, int(round(dilation_ratio * math.hypot(h, w))))


def _square(d: int) -> np.ndarray:
    return np.ones((2 * d + 1, 2 * d + 1), np.uint8)


def inner_boundary(mask: np.ndarray, d: int) -> np.ndarray:
    """Mask pixels within chessboard distance d of the background: ``mask - erode(mask, d)``.

    As in the Boundary IoU reference implementation, the area outside the image
    counts as background, so a mask cut by the image border has a band along
    that border too.

    Args:
        mask: bool (H, W).
        d: band width in pixels, >= 1.

    Returns:
        bool (H, W), a subset of ``mask``.
    """
    m = mask.astype(np.uint8)
    eroded = cv2.erode(m, _square(d), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & (eroded == 0)


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of the person class after binarising both at ``threshold``.

    Args:
        pred, gt: (H, W) alpha, float [0, 1] or uint8 0..255.
        threshold: in [0, 1]; a pixel is person where ``alpha >= threshold``.

    Returns:
        |P & G| / |P | G| in [0, 1]; 1.0 when both masks are empty.
    """
    p, g = _pair(pred, gt)
    pb, gb = p >= threshold, g >= threshold
    union = int(np.count_nonzero(pb | gb))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pb & gb)) / union


def boundary_iou(
    pred: np.ndarray, gt: np.ndarray, dilation_ratio: float = 0.02, threshold: float = 0.5
) -> float:
    """Boundary IoU (Cheng et al. 2021) of the person class.

    Each binary mask M is reduced to its inner band ``M - erode(M, d)`` (the
    pixels of M within chessboard distance d of its contour, the image border
    counting as contour; see :func:`inner_boundary`), with
    ``d = boundary_width(shape, dilation_ratio)``. The score is the IoU of the
    two bands. This equals the reference code (pad by one zero pixel, erode
    d times with a 3x3 kernel) done as one erosion with a (2d+1)^2 square.

    Args:
        pred, gt: (H, W) alpha, float [0, 1] or uint8 0..255.
        dilation_ratio: band width as a fraction of the image diagonal.
        threshold: binarisation threshold in [0, 1] (``alpha >= threshold``).

    Returns:
        Boundary IoU in [0, 1]; 1.0 when both masks are empty.
    """
    p, g = _pair(pred, gt)
    d = boundary_width(p.shape, dilation_ratio)
    pb = inner_boundary(p >= threshold, d)
    gb = inner_boundary(g >= threshold, d)
    union = int(np.count_nonzero(pb | gb))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pb & gb)) / union


def band_mask(gt: np.ndarray, dilation_ratio: float = 0.02, threshold: float = 0.5) -> np.ndarray:
    """Pixels within d of the true contour, on either side.

    A pixel is in the band when its (2d+1)x(2d+1) window holds both person and
    background pixels of the binarised ``gt``: ``dilate(G, d) & ~erode(G, d)``.
    Unlike :func:`boundary_iou`, the image border is *not* a contour here (the
    mask is extended by replication), so a torso cut by the bottom edge adds no
    band there: the band covers only real person/background transitions.

    Args:
        gt: (H, W) alpha, float [0, 1] or uint8 0..255.
        dilation_ratio: d as a fraction of the image diagonal.
        threshold: binarisation threshold in [0, 1].

    Returns:
        bool (H, W); all False when gt is empty or full.
    """
    g = (as_alpha(gt, "gt") >= threshold).astype(np.uint8)
    k = _square(boundary_width(g.shape, dilation_ratio))
    dil = cv2.dilate(g, k, borderType=cv2.BORDER_REPLICATE)
    ero = cv2.erode(g, k, borderType=cv2.BORDER_REPLICATE)
    return (dil > 0) & (ero == 0)


def mae(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute alpha error, in alpha units [0, 1].

    Args:
        pred, gt: (H, W) alpha, float [0, 1] or uint8 0..255.
        mask: optional bool (H, W); average only where True.

    Returns:
        mean |pred - gt|; NaN when ``mask`` selects no pixel.
    """
    p, g = _pair(pred, gt)
    err = np.abs(p - g)
    if mask is None:
        return float(err.mean(dtype=np.float64))
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != p.shape:
        raise ValueError(f"mask shape {mask.shape} differs from alpha shape {p.shape}")
    n = int(np.count_nonzero(mask))
    if n == 0:
        return math.nan
    return float(err[mask].sum(dtype=np.float64) / n)


def band_mae(
    pred: np.ndarray, gt: np.ndarray, dilation_ratio: float = 0.02, threshold: float = 0.5
) -> float:
    """MAE inside :func:`band_mask` of ``gt``; NaN when gt has no contour."""
    return mae(pred, gt, band_mask(gt, dilation_ratio, threshold))


def ghost(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.1,
          dilation_ratio: float = 0.02) -> float:
    """Ghost share: the fraction of true-background pixels where ``pred > threshold``.

    True background: ``gt`` below half a level (no trace of the person) and,
    with ``dilation_ratio`` > 0, farther than ``d = boundary_width(shape,
    dilation_ratio)`` (chessboard) from the person (``gt >= 0.5``): the band
    next to the contour is what :func:`boundary_iou` and :func:`band_mae`
    score, so a soft or slightly wide edge is not counted here, only haze and
    blobs away from the person. ``dilation_ratio=0`` counts every
    true-background pixel.

    Args:
        pred, gt: (H, W) alpha, float [0, 1] or uint8 0..255.
        threshold: alpha above which a pixel counts as not cleared, in [0, 1].
        dilation_ratio: the margin next to the person left out, as a fraction
            of the image diagonal (0.02: the boundary band).

    Returns:
        The share in [0, 1]; NaN when there is no true-background pixel.
    """
    p, g = _pair(pred, gt)
    background = g < 0.5 / 255.0
    if dilation_ratio > 0:
        d = boundary_width(g.shape, dilation_ratio)
        near = cv2.dilate((g >= 0.5).astype(np.uint8), _square(d),
                          borderType=cv2.BORDER_CONSTANT, borderValue=0)
        background &= near == 0
    n = int(np.count_nonzero(background))
    if n == 0:
        return math.nan
    return int(np.count_nonzero(background & (p > threshold))) / n


# --------------------------------------------------------------------------- clips


def _stack(seq: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    out = [as_alpha(a, f"{name}[{i}]") for i, a in enumerate(seq)]
    if out and any(a.shape != out[0].shape for a in out):
        raise ValueError(f"{name}: all frames must have the same shape")
    return out


def dtssd(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Temporal coherence error dtSSD (Erofeev et al. 2015), in alpha units.

    ``mean over t = 1..T-1 of sqrt(mean over pixels of
    ((a_t - a_{t-1}) - (g_t - g_{t-1}))**2)``. Papers usually report it x100.

    Args:
        preds, gts: equally long sequences (T >= 2) of (H, W) alphas.

    Returns:
        dtSSD >= 0; 0 when the prediction changes exactly as the truth does
        (including a constant offset).
    """
    p = _stack(preds, "preds")
    g = _stack(gts, "gts")
    if len(p) != len(g):
        raise ValueError(f"{len(p)} predictions for {len(g)} ground-truth frames")
    if len(p) < 2:
        raise ValueError("dtssd needs at least 2 frames")
    if p[0].shape != g[0].shape:
        raise ValueError(f"pred shape {p[0].shape} differs from gt shape {g[0].shape}")
    vals = []
    for t in range(1, len(p)):
        diff = (p[t] - p[t - 1]).astype(np.float64) - (g[t] - g[t - 1])
        vals.append(math.sqrt(float(np.mean(diff * diff))))
    return float(np.mean(vals))


def still_pixels(
    frame_prev: np.ndarray,
    frame_cur: np.ndarray,
    *,
    threshold: float = 6.0,
    blur_sigma: float = 1.0,
) -> np.ndarray:
    """Pixels whose image did not change between two frames.

    Rule: ``D = GaussianBlur(I_t - I_{t-1}, sigma=blur_sigma)`` per channel
    (float, 0..255 intensity units); a pixel is still when ``|D| <= threshold``
    on every channel. The blur averages sensor noise away (sigma 1 cuts the
    noise of a frame difference ~3.5x) so that noise alone does not count as
    change, while an edge moving by a pixel still does. A slow exposure drift
    of about a level per frame counts as still.

    Args:
        frame_prev, frame_cur: uint8 (H, W, 3) BGR or (H, W) grey, same shape.
        threshold: largest blurred difference that counts as still, 0..255 units.
        blur_sigma: Gaussian sigma in pixels; 0 disables the blur.

    Returns:
        bool (H, W).
    """
    a = np.asarray(frame_prev)
    b = np.asarray(frame_cur)
    if a.shape != b.shape:
        raise ValueError(f"frame shapes differ: {a.shape} vs {b.shape}")
    diff = cv2.subtract(b, a, dtype=cv2.CV_32F)
    if blur_sigma > 0:
        diff = cv2.GaussianBlur(diff, (0, 0), blur_sigma, borderType=cv2.BORDER_REPLICATE)
    diff = np.abs(diff)
    if diff.ndim == 3:  # largest change over the channels (cv2: much faster than max(axis=2))
        chans = cv2.split(diff)
        diff = chans[0]
        for c in chans[1:]:
            diff = cv2.max(diff, c)
    return diff <= threshold


def flicker(
    alphas: Sequence[np.ndarray],
    frames: Sequence[np.ndarray] | None = None,
    *,
    still: Sequence[np.ndarray] | np.ndarray | None = None,
    still_threshold: float = 6.0,
    blur_sigma: float = 1.0,
) -> float:
    """Reference-free flicker: mean |a_t - a_{t-1}| where the image is still.

    For each frame pair (t-1, t) take the still pixels S_t, either given in
    ``still`` or derived from the images by :func:`still_pixels`; the pair's
    score is mean |a_t - a_{t-1}| over S_t. The result is the mean over the
    pairs whose S_t is not empty. Units: alpha units in [0, 1] (x100 for
    percent).

    Args:
        alphas: T >= 2 alphas (H, W), float [0, 1] or uint8.
        frames: T images (uint8 BGR or grey) the alphas belong to; needed when
            ``still`` is not given.
        still: optional known still pixels: T-1 bool (H, W) masks (entry t-1
            for the pair (t-1, t)), a (T-1, H, W) bool array, or one (H, W)
            bool mask used for every pair.
        still_threshold, blur_sigma: passed to :func:`still_pixels`.

    Returns:
        flicker >= 0; NaN when no pair has a still pixel.
    """
    a = _stack(alphas, "alphas")
    if len(a) < 2:
        raise ValueError("flicker needs at least 2 frames")
    n_pairs = len(a) - 1
    if still is None:
        if frames is None:
            raise ValueError("flicker needs either frames or an explicit still mask")
        if len(frames) != len(a):
            raise ValueError(f"{len(frames)} frames for {len(a)} alphas")
        masks = (
            still_pixels(frames[t - 1], frames[t], threshold=still_threshold, blur_sigma=blur_sigma)
            for t in range(1, len(a))
        )
    else:
        if isinstance(still, np.ndarray) and still.ndim == 2:
            masks = [still] * n_pairs
        else:
            masks = list(still)
            if len(masks) != n_pairs:
                raise ValueError(
                    f"still: expected {n_pairs} masks (one per frame pair), got {len(masks)}"
                )
    vals = []
    for t, m in zip(range(1, len(a)), masks):
        m = np.asarray(m, dtype=bool)
        if m.shape != a[t].shape:
            raise ValueError(f"still mask shape {m.shape} differs from alpha shape {a[t].shape}")
        n = int(np.count_nonzero(m))
        if n:
            vals.append(float(np.abs(a[t] - a[t - 1])[m].sum(dtype=np.float64)) / n)
    if not vals:
        log.debug("flicker: no frame pair has a still pixel")
        return math.nan
    return float(np.mean(vals))


@dataclass(frozen=True)
class LagEstimate:
    """Result of :func:`estimate_lag`.

    Attributes:
        frames: best integer shift k in 0..max_shift.
        subframe: continuous estimate in [0, max_shift] (V-shaped interpolation
            around ``frames``).
        shifts: int array of the shifts scored, -1..max_shift (-1 compares with
            the next frame; it is only used for interpolation near 0).
        scores: float array, mean score over the moving frames for each shift.
    """

    frames: int
    subframe: float
    shifts: np.ndarray
    scores: np.ndarray


def estimate_lag(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    moving: Sequence[bool],
    *,
    max_shift: int = 5,
    metric: str = "iou",
    threshold: float = 0.5,
    dilation_ratio: float = 0.02,
) -> LagEstimate:
    """How many frames the predicted mask trails the truth on moving content.

    For each shift k in -1..K (K = ``max_shift``), score(k) is the mean over
    the evaluated frames t of ``metric(pred_t, gt_{t-k})``. The evaluated
    frames are the moving ones (``moving[t]``) with t >= K and t + 1 < T, the
    same set for every k. The lag is the k in 0..K with the highest score (a
    mask one frame behind gives 1, a perfect one 0; ties go to the smaller k).

    The continuous estimate fits a symmetric V (two lines of equal and opposite
    slope) through the scores at k-1, k, k+1: offset = (s+ - s-) /
    (2 (s_k - min(s-, s+))), clamped to +-0.5 and the result to [0, K]. A V,
    not a parabola, because the IoU of a shape and its shifted copy falls
    linearly with a small shift, so a V is exact for steady motion.

    Args:
        preds, gts: T alphas (H, W) each, float [0, 1] or uint8.
        moving: T flags, True where the content moved between t-1 and t.
        max_shift: K, largest lag considered, in frames.
        metric: "iou" or "boundary_iou".
        threshold, dilation_ratio: passed to the metric.

    Raises:
        ValueError: no moving frame t with K <= t < T-1, or a bad argument.
    """
    if metric not in ("iou", "boundary_iou"):
        raise ValueError(f"metric must be 'iou' or 'boundary_iou', got {metric!r}")
    if max_shift < 0:
        raise ValueError("max_shift must be >= 0")
    n = len(gts)
    if len(preds) != n or len(moving) != n:
        raise ValueError(f"lengths differ: {len(preds)} preds, {n} gts, {len(moving)} moving flags")
    frames = [t for t in range(max_shift, n - 1) if moving[t]]
    if not frames:
        raise ValueError(
            f"no moving frame t with {max_shift} <= t < {n - 1}; "
            "the clip needs a longer moving stretch"
        )
    pb = {t: binarize(preds[t], threshold) for t in frames}
    gb = [binarize(g, threshold) for g in gts]

    def score(p: np.ndarray, g: np.ndarray) -> float:
        if metric == "iou":
            return iou(p, g)
        return boundary_iou(p, g, dilation_ratio)

    shifts = np.arange(-1, max_shift + 1)
    scores = np.array([np.mean([score(pb[t], gb[t - k]) for t in frames]) for k in shifts])
    sc = scores[1:]  # shifts 0..K
    k = int(np.argmax(sc))
    sub = float(k)
    if k < max_shift:
        left, mid, right = scores[k], scores[k + 1], scores[k + 2]  # shifts k-1, k, k+1
        denom = 2.0 * (mid - min(left, right))
        if denom > 0:
            sub = k + float(np.clip((right - left) / denom, -0.5, 0.5))
    sub = float(np.clip(sub, 0.0, max_shift))
    return LagEstimate(frames=k, subframe=sub, shifts=shifts, scores=scores)


def lag(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    moving: Sequence[bool],
    *,
    max_shift: int = 5,
    metric: str = "iou",
    continuous: bool = False,
) -> float:
    """Frames by which the prediction trails the truth; see :func:`estimate_lag`.

    Returns the best integer shift (as a float), or the continuous estimate
    when ``continuous`` is true.
    """
    est = estimate_lag(preds, gts, moving, max_shift=max_shift, metric=metric)
    return est.subframe if continuous else float(est.frames)


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class FrameScores:
    """Per-frame (or averaged) scores, all in alpha units / fractions in [0, 1].

    MAE fields may be NaN (no band); :func:`summarize` ignores NaN.
    """

    iou: float
    boundary_iou: float
    mae: float
    band_mae: float


def score_frame(
    pred: np.ndarray, gt: np.ndarray, *, threshold: float = 0.5, dilation_ratio: float = 0.02
) -> FrameScores:
    """All single-frame metrics of one (H, W) prediction against its truth."""
    return FrameScores(
        iou=iou(pred, gt, threshold),
        boundary_iou=boundary_iou(pred, gt, dilation_ratio, threshold),
        mae=mae(pred, gt),
        band_mae=band_mae(pred, gt, dilation_ratio, threshold),
    )


def summarize(scores: Iterable[FrameScores]) -> FrameScores:
    """Field-wise mean of several :class:`FrameScores`, ignoring NaN.

    A field that is NaN everywhere (or an empty input) gives NaN.
    """
    items = list(scores)
    out = {}
    for f in fields(FrameScores):
        vals = np.array([getattr(s, f.name) for s in items], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        out[f.name] = float(vals.mean()) if vals.size else math.nan
    return FrameScores(**out)


@dataclass(frozen=True)
class ClipScores:
    """Scores of a predicted clip against its ground truth.

    Attributes:
        all_frames: mean :class:`FrameScores` over every frame.
        moving_frames: mean over frames with ``moving[t]`` (NaN if none).
        dtssd: :func:`dtssd`, alpha units.
        flicker: :func:`flicker`, alpha units (NaN without still pixels).
        lag: continuous :func:`estimate_lag` in frames (NaN when the moving
            stretch is too short).
    """

    all_frames: FrameScores
    moving_frames: FrameScores
    dtssd: float
    flicker: float
    lag: float


def score_clip(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    moving: Sequence[bool],
    *,
    frames: Sequence[np.ndarray] | None = None,
    still: Sequence[np.ndarray] | np.ndarray | None = None,
    threshold: float = 0.5,
    dilation_ratio: float = 0.02,
) -> ClipScores:
    """Every metric of a predicted clip.

    Args:
        preds, gts: T alphas (H, W).
        moving: T flags (content moved between t-1 and t).
        frames: the T images, used for flicker when ``still`` is None.
        still: known still pixels per frame pair (see :func:`flicker`).
        threshold, dilation_ratio: for the single-frame metrics.
    """
    if len(preds) != len(gts) or len(moving) != len(gts):
        raise ValueError("preds, gts and moving must have the same length")
    per = [
        score_frame(p, g, threshold=threshold, dilation_ratio=dilation_ratio)
        for p, g in zip(preds, gts)
    ]
    moving_scores = [s for s, m in zip(per, moving) if m]
    if still is None and frames is None:
        fl = math.nan
    else:
        fl = flicker(preds, frames, still=still)
    try:
        est = estimate_lag(preds, gts, moving, threshold=threshold, dilation_ratio=dilation_ratio)
        lg = est.subframe
    except ValueError as exc:
        log.debug("lag not measured: %s", exc)
        lg = math.nan
    return ClipScores(
        all_frames=summarize(per),
        moving_frames=summarize(moving_scores),
        dtssd=dtssd(preds, gts),
        flicker=fl,
        lag=lg,
    )
