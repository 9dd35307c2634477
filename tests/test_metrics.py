"""Metrics against hand-computed values on tiny arrays."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from livebg.eval import metrics as M


def square(shape, r0, r1, c0, c1, dtype=np.float32):
    """Mask with ones on rows r0..r1-1, cols c0..c1-1."""
    m = np.zeros(shape, dtype)
    m[r0:r1, c0:c1] = 1
    return m


# --------------------------------------------------------------------------- as_alpha


def test_as_alpha_normalises_uint8_bool_float():
    u = np.array([[0, 255], [51, 102]], np.uint8)
    np.testing.assert_allclose(M.as_alpha(u), [[0, 1], [0.2, 0.4]], atol=1e-7)
    assert M.as_alpha(u).dtype == np.float32
    np.testing.assert_array_equal(M.as_alpha(np.array([[True, False]])), [[1.0, 0.0]])
    f = np.array([[0.25, 1.0]], np.float64)
    np.testing.assert_array_equal(M.as_alpha(f), [[0.25, 1.0]])


def test_as_alpha_rejects_bad_input():
    with pytest.raises(ValueError, match="0, 1"):
        M.as_alpha(np.array([[0.0, 255.0]]))  # float holding 0..255
    with pytest.raises(ValueError, match="shape"):
        M.as_alpha(np.zeros((2, 2, 1), np.float32))
    with pytest.raises(TypeError):
        M.as_alpha(np.zeros((2, 2), np.int32))


# --------------------------------------------------------------------------- iou


def test_iou_hand_counted():
    pred = square((4, 4), 0, 2, 0, 2)  # 4 px
    gt = square((4, 4), 0, 2, 0, 3)  # 6 px, contains pred
    assert M.iou(pred, gt) == pytest.approx(4 / 6)
    # uint8 and float give the same answer
    assert M.iou((pred * 255).astype(np.uint8), (gt * 255).astype(np.uint8)) == pytest.approx(4 / 6)
    # disjoint
    assert M.iou(square((4, 4), 0, 1, 0, 1), square((4, 4), 3, 4, 3, 4)) == 0.0


def test_iou_threshold_and_empty():
    z = np.zeros((4, 4), np.float32)
    assert M.iou(z, z) == 1.0  # empty vs empty
    assert M.iou(z, square((4, 4), 0, 1, 0, 1)) == 0.0
    pred = np.full((4, 4), 0.49, np.float32)
    pred[0, 0] = 0.5  # exactly the threshold counts as person
    gt = square((4, 4), 0, 1, 0, 2)
    assert M.iou(pred, gt) == pytest.approx(1 / 2)
    assert M.iou(pred, gt, threshold=0.4) == pytest.approx(2 / 16)


def test_iou_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        M.iou(np.zeros((4, 4)), np.zeros((4, 5)))


# --------------------------------------------------------------------------- boundary iou


def test_boundary_width():
    assert M.boundary_width((8, 8)) == 1  # 0.02 * 11.3 rounds to 0 -> at least 1
    assert M.boundary_width((720, 1280)) == round(0.02 * math.hypot(720, 1280)) == 29
    assert M.boundary_width((100, 100), 0.05) == 7


def test_boundary_iou_hand_counted():
    # 6x6 squares in an 8x8 image, d = 1: each band is the square's ring (20 px).
    gt = square((8, 8), 1, 7, 1, 7)
    pred = square((8, 8), 1, 7, 2, 8)  # shifted right by one column
    # rings overlap on rows 1 and 6, cols 2..6: 10 px; union 20 + 20 - 10 = 30.
    assert M.boundary_iou(pred, gt) == pytest.approx(10 / 30)
    assert M.iou(pred, gt) == pytest.approx(30 / 42)
    assert M.boundary_iou(gt, gt) == 1.0


def test_boundary_iou_image_border_is_contour_and_empty_cases():
    full = np.ones((8, 8), np.float32)
    band = M.inner_boundary(full > 0.5, 1)
    assert band.sum() == 28  # outer ring of the image, as in the reference code
    assert M.boundary_iou(full, full) == 1.0
    z = np.zeros((8, 8), np.float32)
    assert M.boundary_iou(z, z) == 1.0
    assert M.boundary_iou(z, full) == 0.0


def _reference_boundary(mask: np.ndarray, dilation_ratio: float) -> np.ndarray:
    """Cheng et al.'s mask_to_boundary (boundary-iou-api), verbatim in spirit."""
    h, w = mask.shape
    dilation = int(round(dilation_ratio * np.sqrt(h**2 + w**2)))
    dilation = max(dilation, 1)
    new_mask = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    kernel = np.ones((3, 3), dtype=np.uint8)
    new_mask_erode = cv2.erode(new_mask, kernel, iterations=dilation)
    return mask - new_mask_erode[1 : h + 1, 1 : w + 1]


@pytest.mark.parametrize("ratio", [0.02, 0.05])
def test_boundary_iou_matches_reference_implementation(ratio):
    rng = np.random.default_rng(3)
    for _ in range(5):
        blobs = []
        for _ in range(2):
            noise = rng.random((90, 120)).astype(np.float32)
            m = (cv2.GaussianBlur(noise, (0, 0), 6) > 0.5).astype(np.uint8)
            m[:, :10] = 1  # touch the border too
            blobs.append(m)
        gb, pb = (_reference_boundary(m, ratio) for m in blobs)
        ref = ((gb * pb) > 0).sum() / ((gb + pb) > 0).sum()
        assert M.boundary_iou(blobs[1] > 0, blobs[0] > 0, ratio) == pytest.approx(ref, abs=1e-12)
        as_255 = M.boundary_iou(blobs[1] * 255, blobs[0] * 255, ratio)
        assert as_255 == pytest.approx(ref, abs=1e-12)


# --------------------------------------------------------------------------- band, mae


def test_band_mask_hand_counted():
    gt = square((8, 8), 2, 6, 2, 6)  # 4x4 square, d = 1
    band = M.band_mask(gt)
    # dilation is the 6x6 square rows/cols 1..6, erosion the 2x2 square rows/cols 3..4
    assert band.sum() == 36 - 4
    assert band[1, 1] and band[2, 2] and not band[3, 3] and not band[0, 0]


def test_band_mask_ignores_image_border():
    gt = square((8, 8), 4, 8, 0, 8)  # bottom half: one real contour between rows 3 and 4
    band = M.band_mask(gt)
    assert band.sum() == 16
    assert band[3].all() and band[4].all()
    assert not M.band_mask(np.zeros((8, 8))).any()
    assert not M.band_mask(np.ones((8, 8))).any()


def test_mae_hand_counted():
    pred = np.array([[0.0, 0.5], [1.0, 1.0]], np.float32)
    gt = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    assert M.mae(pred, gt) == pytest.approx(1.5 / 4)
    mask = np.array([[True, True], [False, False]])
    assert M.mae(pred, gt, mask) == pytest.approx(0.25)
    assert math.isnan(M.mae(pred, gt, np.zeros((2, 2), bool)))
    assert M.mae((gt * 255).astype(np.uint8), gt) == 0.0


def test_band_mae_counts_only_band_errors():
    gt = square((8, 8), 2, 6, 2, 6)
    pred = gt.copy()
    pred[2, 2:6] = 0.0  # 4 errors of 1.0 on the contour (inside the band)
    pred[7, 7] = 1.0  # far from the contour: outside the band
    assert M.band_mae(pred, gt) == pytest.approx(4 / 32)
    assert M.mae(pred, gt) == pytest.approx(5 / 64)
    assert math.isnan(M.band_mae(pred, np.zeros((8, 8), np.float32)))


# --------------------------------------------------------------------------- dtssd


def test_dtssd_hand_counted():
    z = np.zeros((2, 2), np.float32)
    a1 = np.array([[1, 0], [0, 0]], np.float32)
    # t=1: sqrt(1/4) = 0.5; t=2: 0 -> mean 0.25
    assert M.dtssd([z, a1, a1], [z, z, z]) == pytest.approx(0.25)
    # the same change in the truth is no error; a constant offset is no error either
    assert M.dtssd([z, a1, a1], [z, a1, a1]) == 0.0
    assert M.dtssd([z + 0.1, a1 * 0.8 + 0.1], [z, a1 * 0.8]) == pytest.approx(0.0, abs=1e-7)
    # half the change: sqrt(0.25 / 4) = 0.25
    assert M.dtssd([z, a1 * 0.5], [z, a1]) == pytest.approx(0.25)


def test_dtssd_errors():
    z = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError):
        M.dtssd([z], [z])
    with pytest.raises(ValueError):
        M.dtssd([z, z], [z, z, z])


# --------------------------------------------------------------------------- flicker


def _toggle_clip(n=4, moving_block=True):
    """16x16 black frames; a 4x4 white block moves 4 px right per frame in rows 0..3
    (alpha 1 on it); alpha toggles 0/1 every frame at two far pixels."""
    frames, alphas = [], []
    for t in range(n):
        f = np.zeros((16, 16, 3), np.uint8)
        a = np.zeros((16, 16), np.float32)
        if moving_block:
            f[0:4, 4 * t : 4 * t + 4] = 255
            a[0:4, 4 * t : 4 * t + 4] = 1.0
        a[12, 12:14] = t % 2
        frames.append(f)
        alphas.append(a)
    return frames, alphas


def test_flicker_hand_counted_no_blur():
    frames, alphas = _toggle_clip()
    # each pair: 32 px changed (old and new block), 224 still; 2 of them change by 1
    assert M.flicker(alphas, frames, blur_sigma=0) == pytest.approx(2 / 224)


def test_flicker_excludes_moving_region_with_blur():
    frames, alphas = _toggle_clip()
    val = M.flicker(alphas, frames)
    assert 2 / 256 < val < 2 / 150
    # the block's alpha moves with the image: without toggles there is no flicker
    for a in alphas:
        a[12, 12:14] = 0
    assert M.flicker(alphas, frames) == 0.0
    # but counting every pixel as still, the block's alpha change is flicker
    assert M.flicker(alphas, still=np.ones((16, 16), bool)) == pytest.approx(32 / 256)


def test_flicker_static_scene_ignores_sensor_noise():
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, (48, 64, 3)).astype(np.float32)
    frames = [
        np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8) for _ in range(5)
    ]
    alphas = [np.zeros((48, 64), np.float32) for _ in range(5)]
    for t in range(5):
        alphas[t][10, 10:13] = 0.5 * (t % 2)  # 3 pixels change by 0.5 every pair
    assert M.flicker(alphas, frames) == pytest.approx(1.5 / (48 * 64))


def test_flicker_explicit_still_masks():
    _, alphas = _toggle_clip(n=3, moving_block=False)
    one = np.zeros((16, 16), bool)
    one[12:16, 12:16] = True  # 16 px containing both toggles
    assert M.flicker(alphas, still=one) == pytest.approx(2 / 16)
    per_pair = [one, np.zeros((16, 16), bool)]  # second pair has no still pixel: skipped
    assert M.flicker(alphas, still=per_pair) == pytest.approx(2 / 16)
    assert M.flicker(alphas, still=np.stack(per_pair)) == pytest.approx(2 / 16)
    assert math.isnan(M.flicker(alphas, still=np.zeros((16, 16), bool)))
    with pytest.raises(ValueError, match="one per frame pair"):
        M.flicker(alphas, still=[one])
    with pytest.raises(ValueError, match="frames"):
        M.flicker(alphas)


def test_still_pixels_noise_vs_edge():
    rng = np.random.default_rng(1)
    img = np.full((40, 40, 3), 100.0, np.float32)
    img[:, 20:] = 200.0
    a = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    b = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    assert M.still_pixels(a, b).mean() > 0.999
    shifted = np.roll(img, 1, axis=1)  # the edge moves by one pixel
    c = np.clip(shifted + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    s = M.still_pixels(a, c)
    assert not s[:, 19:22].any()
    assert s[:, 5:15].all() and s[:, 26:36].all()


# --------------------------------------------------------------------------- lag


def disc_clip(shift_frames: float = 0.0, n=30, start=6, stop=24, speed=2.0, size=(48, 80), r=9.0):
    """A disc moving right at ``speed`` px/frame on frames start..stop-1, still otherwise.

    Returns (preds, gts, moving) with pred_t = the disc where the truth was at
    t - shift_frames.
    """
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)

    def x_at(t: float) -> float:
        return 15.0 + speed * (min(max(t, start - 1), stop - 1) - (start - 1))

    def disc(x: float) -> np.ndarray:
        d = np.hypot(yy - size[0] / 2, xx - x)
        return np.clip(r - d + 0.5, 0, 1).astype(np.float32)

    gts = [disc(x_at(t)) for t in range(n)]
    preds = [disc(x_at(max(t - shift_frames, 0))) for t in range(n)]
    moving = [start <= t < stop for t in range(n)]
    return preds, gts, moving


def test_lag_perfect_is_zero():
    preds, gts, moving = disc_clip(0)
    assert M.lag(preds, gts, moving) == 0.0
    assert M.lag(preds, gts, moving, continuous=True) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("metric", ["iou", "boundary_iou"])
def test_lag_two_frames_behind(metric):
    preds, gts, moving = disc_clip(2)
    est = M.estimate_lag(preds, gts, moving, metric=metric)
    assert est.frames == 2
    assert est.subframe == pytest.approx(2.0, abs=0.1)
    assert list(est.shifts) == [-1, 0, 1, 2, 3, 4, 5]
    assert est.scores[3] == pytest.approx(1.0)  # shift 2 matches exactly
    assert M.lag(preds, gts, moving, metric=metric) == 2.0


def test_lag_continuous_between_frames():
    preds, gts, moving = disc_clip(1.5)
    est = M.estimate_lag(preds, gts, moving)
    assert est.frames in (1, 2)
    assert est.subframe == pytest.approx(1.5, abs=0.15)


def test_lag_errors():
    preds, gts, moving = disc_clip(0)
    with pytest.raises(ValueError, match="moving"):
        M.lag(preds, gts, [False] * len(gts))
    with pytest.raises(ValueError, match="metric"):
        M.lag(preds, gts, moving, metric="dice")
    with pytest.raises(ValueError, match="lengths"):
        M.lag(preds[:-1], gts, moving)


# --------------------------------------------------------------------------- summaries


def test_score_frame_and_summarize():
    gt = square((8, 8), 2, 6, 2, 6)
    s = M.score_frame(gt, gt)
    assert (s.iou, s.boundary_iou, s.mae, s.band_mae) == (1.0, 1.0, 0.0, 0.0)
    empty = M.score_frame(np.zeros((8, 8)), np.zeros((8, 8)))
    assert math.isnan(empty.band_mae)
    mean = M.summarize([s, M.FrameScores(0.5, 0.0, 0.2, math.nan), empty])
    assert mean.iou == pytest.approx(2.5 / 3)
    assert mean.band_mae == 0.0  # NaN ignored
    assert mean.mae == pytest.approx(0.2 / 3)
    assert math.isnan(M.summarize([]).iou)


def test_score_clip():
    preds, gts, moving = disc_clip(2)
    sc = M.score_clip(preds, gts, moving, still=np.ones(gts[0].shape, bool))
    assert sc.lag == pytest.approx(2.0, abs=0.1)
    assert sc.dtssd > 0
    assert sc.moving_frames.iou < sc.all_frames.iou < 1.0
    assert sc.flicker > 0
    perfect = M.score_clip(gts, gts, moving)
    assert perfect.dtssd == 0.0 and perfect.all_frames.iou == 1.0 and math.isnan(perfect.flicker)


def test_ghost_counts_haze_away_from_the_person_only():
    # 100x100, diagonal 141.4: d = round(0.02 * 141.4) = 3
    gt = square((100, 100), 40, 60, 40, 60)
    pred = gt.copy()
    pred[37:63, 37:63] = np.maximum(pred[37:63, 37:63], 0.5)  # a 3-px halo: inside the band
    assert M.ghost(pred, gt) == 0.0
    background = 100 * 100 - 26 * 26  # farther than d = 3 from the person
    assert M.ghost(pred, gt, dilation_ratio=0.0) == pytest.approx((26 * 26 - 400) / (10000 - 400))
    pred[0:10, 0:10] = 0.2  # a blob of haze in a corner
    assert M.ghost(pred, gt) == pytest.approx(100 / background)
    pred[0:10, 0:10] = 0.1  # not above the threshold
    assert M.ghost(pred, gt) == 0.0
    assert M.ghost((pred * 255).astype(np.uint8), (gt * 255).astype(np.uint8)) == 0.0


def test_ghost_leaves_out_soft_truth_and_has_no_background_to_score():
    gt = square((20, 20), 5, 15, 5, 15)
    gt[0, 0] = 0.01  # a trace of the person: not true background
    pred = np.zeros_like(gt)
    pred[0, 0] = 1.0
    assert M.ghost(pred, gt, dilation_ratio=0.0) == 0.0
    assert math.isnan(M.ghost(np.ones((8, 8), np.float32), np.ones((8, 8), np.float32)))
