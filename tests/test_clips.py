"""Synthetic clip generator: determinism, structure, exact ground truth, files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livebg.eval import clips as C
from livebg.eval import metrics as M

SIZE = (160, 90)  # (W, H): small and fast
N_STILL, N_MOVE, N_END = 5, 12, 6


def figure(h=300, w=160, color=None, seed=0):
    """A full-body 'person': head, torso and legs on a textured or uniform photo.

    Returns (bgr uint8 (h, w, 3), mask uint8 (h, w) 255 = person).
    """
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, 40), (18, 24), 0, 0, 360, 255, -1)  # head
    cv2.ellipse(mask, (w // 2, 120), (45, 60), 0, 0, 360, 255, -1)  # torso
    cv2.rectangle(mask, (w // 2 - 30, 150), (w // 2 + 30, h - 15), 255, -1)  # legs
    if color is None:
        img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        img = np.empty((h, w, 3), np.uint8)
        img[:] = color
    return img, mask


def background(color=None):
    if color is not None:
        bg = np.empty((120, 200, 3), np.uint8)
        bg[:] = color
        return bg
    y, x = np.mgrid[0:120, 0:200]
    return np.stack([x, y * 2, (x + y) % 256], axis=2).astype(np.uint8)


def composite(m, fg, bg):
    """m * fg + (1 - m) * bg for uniform colours: float32 (H, W, 3)."""
    m3 = m[..., None]
    return m3 * np.array(fg, np.float32) + (1 - m3) * np.array(bg, np.float32)


def make(**kw):
    img, mask = figure()
    args = dict(size=SIZE, n_still=N_STILL, n_move=N_MOVE, n_still_end=N_END, seed=1)
    args.update(kw)
    return C.generate_clip(img, mask, background(), **args)


def test_deterministic_for_a_seed():
    a, b, c = make(), make(), make(seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))
    assert a.moving == b.moving and a.params == b.params
    assert not np.array_equal(a.masks[-1], c.masks[-1])
    assert not np.array_equal(a.frames[0], c.frames[0])


def test_noise_does_not_change_geometry():
    a, b = make(noise_sigma=2.0), make(noise_sigma=0.0)
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))


def test_shapes_dtypes_and_moving_flags():
    clip = make()
    n = N_STILL + N_MOVE + N_END
    assert len(clip) == len(clip.masks) == len(clip.moving) == n
    w, h = SIZE
    for f, m in zip(clip.frames, clip.masks):
        assert f.shape == (h, w, 3) and f.dtype == np.uint8
        assert m.shape == (h, w) and m.dtype == np.float32
        assert 0.0 <= m.min() and m.max() <= 1.0
    assert clip.moving == [False] * N_STILL + [True] * N_MOVE + [False] * N_END


def test_still_masks_identical_moving_masks_change():
    clip = make()
    for t in range(1, len(clip)):
        same = np.array_equal(clip.masks[t], clip.masks[t - 1])
        assert same == (not clip.moving[t]), t
    # the motion is real but smooth: a few pixels per frame, not a jump
    for t in range(1, len(clip)):
        if clip.moving[t]:
            assert 0.8 < M.iou(clip.masks[t], clip.masks[t - 1]) < 1.0
    # the person ends somewhere else than it started
    assert M.iou(clip.masks[0], clip.masks[-1]) < 0.97


def test_still_frames_differ_only_by_noise():
    clip = make(noise_sigma=2.0, exposure=0.0)
    d = clip.frames[1].astype(np.float64) - clip.frames[0]
    # difference of two N(0, 2^2) draws (rounded): std about 2 * sqrt(2)
    assert abs(d.mean()) < 0.1
    assert 2.5 < d.std() < 3.2
    clean = make(noise_sigma=0.0, exposure=0.0)
    assert np.array_equal(clean.frames[0], clean.frames[1])


def test_ground_truth_matches_composite():
    fg, bg = (200, 40, 90), (10, 220, 30)
    img, mask = figure(color=fg)
    clip = C.generate_clip(
        img,
        mask,
        background(bg),
        size=SIZE,
        n_still=2,
        n_move=6,
        n_still_end=2,
        noise_sigma=0.0,
        exposure=0.0,
    )
    for f, m in zip(clip.frames, clip.masks):
        expected = composite(m, fg, bg)
        assert np.abs(f - expected).max() <= 0.51
        assert np.all(f[m == 1] == fg) and np.all(f[m == 0] == bg)
        assert ((m > 0) & (m < 1)).any()  # edges are soft (sub-pixel warp)


def test_ground_truth_with_noise_and_exposure():
    fg, bg = (200, 40, 90), (10, 220, 30)
    img, mask = figure(color=fg)
    clip = C.generate_clip(
        img, mask, background(bg), size=SIZE, n_still=2, n_move=6, n_still_end=4, seed=3
    )
    gains = clip.params["gains"]
    assert gains[0] == 1.0 and gains[-1] != 1.0 and abs(gains[-1] - 1) <= 0.12 + 1e-9
    res = []
    for f, m, g in zip(clip.frames, clip.masks, gains):
        expected = g * composite(m, fg, bg)
        inside = (expected > 10) & (expected < 245)  # away from saturation
        res.append((f - expected)[inside])
    res = np.concatenate(res)
    assert abs(res.mean()) < 0.1
    assert 1.8 < res.std() < 2.2  # noise_sigma = 2


def test_jpeg_changes_frames_not_masks():
    a, b = make(), make(jpeg_quality=70)
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))
    diff = np.abs(a.frames[0].astype(int) - b.frames[0])
    assert 0 < diff.mean() < 20


def test_webcam_framing():
    clip = make()
    m = clip.masks[0] > 0.5
    h, w = m.shape
    assert m[-1].any()  # the torso rises from the bottom edge
    rows = np.nonzero(m.any(axis=1))[0]
    assert 0.0 <= rows[0] / h < 0.3  # head near the top
    assert 0.1 < m.mean() < 0.6


def test_still_masks_for_flicker():
    clip = make()
    still = clip.still_masks()
    assert len(still) == len(clip) - 1
    for t, s in enumerate(still, start=1):
        if not clip.moving[t]:
            assert s.all()
        else:
            assert not s[clip.masks[t] > 0].any() and not s[clip.masks[t - 1] > 0].any()
            assert s.any()
    # the ground truth itself does not flicker
    assert M.flicker(clip.masks, still=still) == 0.0


def test_generated_clip_metrics_sanity():
    """The truth is perfect; a prediction frozen at frame t-1 lags by one frame."""
    clip = make(n_move=16)
    assert M.dtssd(clip.masks, clip.masks) == 0.0
    delayed = [clip.masks[0]] + clip.masks[:-1]
    assert M.lag(delayed, clip.masks, clip.moving) == 1.0


def test_input_validation():
    img, mask = figure()
    with pytest.raises(ValueError, match="empty"):
        C.generate_clip(img, np.zeros_like(mask), background())
    with pytest.raises(TypeError):
        C.generate_clip(img.astype(np.float32), mask, background())
    with pytest.raises(ValueError, match="shape"):
        C.generate_clip(img, mask[:-1], background())


def test_fit_background_covers_frame():
    bg = background()
    out = C.fit_background(bg, (320, 90))
    assert out.shape == (90, 320, 3) and out.dtype == np.uint8
    out2 = C.fit_background(bg, (50, 50), np.random.default_rng(0))
    assert out2.shape == (50, 50, 3)


def test_write_read_round_trip(tmp_path):
    clip = make()
    d = C.write_clip(clip, tmp_path / "c")
    assert (d / "meta.json").is_file() and (d / "frames" / "00000.png").is_file()
    back = C.read_clip(d)
    assert back.name == clip.name and back.moving == clip.moving and back.params == clip.params
    assert all(np.array_equal(x, y) for x, y in zip(back.frames, clip.frames))
    for x, y in zip(back.masks, clip.masks):
        assert x.dtype == np.float32
        assert np.abs(x - y).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(FileNotFoundError):
        C.read_clip(tmp_path / "nothing")


def test_generate_clips_from_dataset(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(2):
        img, mask = figure(seed=i)
        cv2.imwrite(str(data / "images" / f"p{i}.png"), img)
        cv2.imwrite(str(data / "masks" / f"p{i}.png"), mask)
    cv2.imwrite(str(data / "images" / "orphan.png"), figure()[0])  # no mask: skipped
    bgdir = tmp_path / "bgs"
    bgdir.mkdir()
    cv2.imwrite(str(bgdir / "b.png"), background())
    kw = dict(n_clips=3, size=SIZE, seed=5, backgrounds=bgdir, n_still=2, n_move=3, n_still_end=2)
    dirs = C.generate_clips_from_dataset(data, tmp_path / "out", **kw)
    assert len(dirs) == 3 and len({d.name for d in dirs}) == 3
    clip = C.read_clip(dirs[0])
    assert len(clip) == 7 and clip.frames[0].shape == (90, 160, 3)
    again = next(C.generate_clips(data, **kw))
    assert again.name == clip.name and np.array_equal(again.frames[3], clip.frames[3])


def test_real_photo_clip(portraits):
    """One dev photo (conftest's ``portraits`` fixture skips when they are absent)."""
    img_path, mask_path = C.load_pairs(portraits)[0]
    bg = cv2.imread(str(C.default_backgrounds()[0]))
    person = cv2.imread(str(img_path))
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    clip = C.generate_clip(person, mask, bg, n_still=3, n_move=8, n_still_end=3)
    m = clip.masks[0] > 0.5
    assert m[-1].any() and not m[0].all()
    assert 0.08 < m.mean() < 0.6
    assert sum(clip.moving) == 8


def test_default_backgrounds_shipped():
    paths = C.default_backgrounds()
    assert [p.name for p in paths] == list(C.DEFAULT_BACKGROUNDS)
    for p in paths:
        img = cv2.imread(str(p))
        assert img is not None and img.ndim == 3
