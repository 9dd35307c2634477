"""Compositor: exact pixels where the matte is hard, no halo, no fringe, geometry, video, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from livebg.stages.compose.backgrounds import VideoBackground, fit_image
from livebg.stages.compose.compose import MODES, Compositor

DATA = Path(__file__).resolve().parents[1] / "livebg" / "data"
ROCKET = DATA / "scene_rocket.jpg"

VIDEO_COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)]


def _write_image(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def _solid(h: int, w: int, color) -> np.ndarray:
    out = np.empty((h, w, 3), np.uint8)
    out[:] = color
    return out


@pytest.fixture(scope="module")
def color_video(tmp_path_factory) -> Path:
    """Five solid-colour frames, 64x48."""
    d = tmp_path_factory.mktemp("video")
    return _write_video(d / "colors.mp4", [_solid(48, 64, c) for c in VIDEO_COLORS])


@pytest.fixture
def textured():
    """A 90x160 noisy frame, its matte (disc, soft edge, with 0 and 1 regions) and a 90x160 PNG."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:90, 0:160]
    disc = (np.hypot(xx - 80, yy - 45) < 30).astype(np.float32)
    alpha = cv2.GaussianBlur(disc, (0, 0), 2).astype(np.float32)
    alpha[alpha < 0.01] = 0
    alpha[alpha > 0.99] = 1
    bg = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    return frame, alpha, bg


def _make(mode: str, tmp_path: Path, **kw) -> Compositor:
    if mode == "image" and "image" not in kw:
        kw["image"] = ROCKET
    if mode == "video" and "image" not in kw:
        frames = [_solid(48, 64, c) for c in VIDEO_COLORS]
        kw["image"] = _write_video(tmp_path / "v.mp4", frames)
    return Compositor(mode, **kw)


# -- exact pixels where the matte is hard -----------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_alpha_one_gives_the_frame_exactly(mode, tmp_path, textured):
    frame, alpha, _ = textured
    with _make(mode, tmp_path) as comp:
        out = comp.compose(frame, alpha)
        full = comp.compose(frame, np.ones(alpha.shape, np.float32))
    person = alpha == 1
    assert person.sum() > 1000
    np.testing.assert_array_equal(out[person][:, :3], frame[person])
    np.testing.assert_array_equal(full[..., :3], frame)
    if mode == "transparent":
        assert (full[..., 3] == 255).all()


def test_alpha_zero_gives_the_color_exactly(textured):
    frame, alpha, _ = textured
    with Compositor("color", color=(10, 20, 250)) as comp:
        out = comp.compose(frame, alpha)
        empty = comp.compose(frame, np.zeros_like(alpha))
    bg = alpha == 0
    assert (out[bg] == (10, 20, 250)).all()
    assert (empty == (10, 20, 250)).all()


def test_alpha_zero_gives_the_image_exactly(tmp_path, textured):
    frame, alpha, bg_image = textured
    path = _write_image(tmp_path / "bg.png", bg_image)  # PNG: lossless, same size as the frame
    with Compositor("image", image=path) as comp:
        out = comp.compose(frame, alpha)
    bg = alpha == 0
    np.testing.assert_array_equal(out[bg], bg_image[bg])


def test_alpha_zero_gives_the_resized_image_exactly(textured):
    frame, alpha, _ = textured
    expected = fit_image(cv2.imread(str(ROCKET)), 90, 160, fit="cover")
    with Compositor("image", image=ROCKET) as comp:
        out = comp.compose(frame, np.zeros_like(alpha))
    np.testing.assert_array_equal(out, expected)


def test_alpha_zero_gives_the_video_frame_exactly(tmp_path, textured):
    frame, alpha, _ = textured
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(3)]
    frames = [cv2.GaussianBlur(f, (0, 0), 3) for f in noise]
    path = _write_video(tmp_path / "noise.mp4", frames)
    cap = cv2.VideoCapture(str(path))
    decoded = [cap.read()[1] for _ in range(3)]
    cap.release()
    with Compositor("video", image=path) as comp:
        outs = [comp.compose(frame, alpha) for _ in range(4)]
    bg = alpha == 0
    for out, want in zip(outs, decoded + decoded[:1]):
        np.testing.assert_array_equal(out[bg], want[bg])


def test_blur_of_a_flat_background_is_that_colour_exactly(textured):
    _, alpha, _ = textured
    alpha = (alpha > 0.5).astype(np.float32)  # hard edge: no pixel mixes the two colours
    frame = _solid(90, 160, (37, 99, 201))
    frame[alpha > 0] = (250, 250, 250)  # the person: must not leak into the blur
    for strength in (0.0, 0.5, 1.0):
        with Compositor("blur", blur=strength) as comp:
            out = comp.compose(frame, alpha)
        assert (out[alpha == 0] == (37, 99, 201)).all(), strength


def test_transparent_alpha_channel_is_rounded_alpha(textured):
    frame, _, _ = textured
    rng = np.random.default_rng(2)
    alpha = rng.random((90, 160), dtype=np.float32)
    # Exact ties and out-of-range values: round half to even, clip to [0, 1].
    alpha.flat[:8] = [0.5 / 255, 1.5 / 255, 2.5 / 255, 254.5 / 255, 0, 1, -0.3, 1.7]
    with Compositor("transparent") as comp:
        assert comp.output_channels == 4
        out = comp.compose(frame, alpha)
    expected = np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 3], expected)


def test_out_of_range_alpha_is_clipped(textured):
    frame, _, _ = textured
    alpha = np.full((90, 160), -0.5, np.float32)
    alpha[:, 80:] = 1.5
    with Compositor("color", color=(1, 2, 3)) as comp:
        out = comp.compose(frame, alpha)
    assert (out[:, :80] == (1, 2, 3)).all()
    np.testing.assert_array_equal(out[:, 80:], frame[:, 80:])


def test_nan_alpha_counts_as_background(textured):
    frame, alpha, _ = textured
    alpha = alpha.copy()
    alpha[:10] = np.nan  # whole blocks
    alpha[40, 50] = np.nan  # one pixel in a soft block
    with Compositor("color", color=(1, 2, 3)) as comp:
        out = comp.compose(frame, alpha)
    assert (out[:10] == (1, 2, 3)).all() and (out[40, 50] == (1, 2, 3)).all()
    with Compositor("transparent") as comp:
        out = comp.compose(frame, alpha)
    assert (out[:10, :, 3] == 0).all() and out[40, 50, 3] == 0


def test_none_returns_the_frame_itself(textured):
    frame, alpha, _ = textured
    with Compositor("none") as comp:
        assert comp.compose(frame, alpha) is frame


# -- shapes ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_shape_and_dtype_for_odd_sizes_and_size_changes(mode, tmp_path):
    rng = np.random.default_rng(3)
    with _make(mode, tmp_path) as comp:
        for h, w in [(721, 1279), (90, 160), (5, 3), (1, 1), (721, 1279)]:
            frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            alpha = rng.random((h, w), dtype=np.float32)
            out = comp.compose(frame, alpha)
            assert out.shape == (h, w, comp.output_channels)
            assert out.dtype == np.uint8
            assert out.flags.c_contiguous
    assert comp.output_channels == (4 if mode == "transparent" else 3)


def test_non_contiguous_inputs_are_accepted(textured):
    frame, alpha, _ = textured
    with Compositor("color") as comp:
        a = comp.compose(frame, alpha)
        b = comp.compose(np.asfortranarray(frame), alpha[:, ::-1][:, ::-1])
    np.testing.assert_array_equal(a, b)


# -- geometry ----------------------------------------------------------------


def _stripe_image() -> np.ndarray:
    """200x100 (2:1) grey image with 10 px green stripes at the left and right edges."""
    img = _solid(100, 200, (128, 128, 128))
    img[:, :10] = (0, 255, 0)
    img[:, -10:] = (0, 255, 0)
    return img


def test_cover_fills_the_frame_and_crops_the_sides(tmp_path):
    path = _write_image(tmp_path / "wide.png", _stripe_image())
    # 16:9 frame: the 2:1 image is scaled to 180x90 and 10 px are cropped on each side.
    frame = np.zeros((90, 160, 3), np.uint8)
    with Compositor("image", image=path, fit="cover", color=(0, 0, 255)) as comp:
        out = comp.compose(frame, np.zeros((90, 160), np.float32)).astype(int)
    assert not (out == (0, 0, 255)).all(axis=2).any()  # no padding
    assert (np.abs(out[:, 1:-1] - 128) <= 2).all()  # the stripes were cropped away
    assert out[:, [0, -1], 1].max() < 200  # at most a blend of the stripe at the very edge


def test_fit_keeps_the_whole_image_and_pads_with_the_colour(tmp_path):
    path = _write_image(tmp_path / "wide.png", _stripe_image())
    # The image becomes 160x80: 5 rows of padding at the top and the bottom.
    frame = np.zeros((90, 160, 3), np.uint8)
    with Compositor("image", image=path, fit="fit", color=(0, 0, 255)) as comp:
        out = comp.compose(frame, np.zeros((90, 160), np.float32)).astype(int)
    assert (out[:5] == (0, 0, 255)).all() and (out[-5:] == (0, 0, 255)).all()
    inner = out[5:-5]
    assert not (inner == (0, 0, 255)).all(axis=2).any()
    # The stripes are kept.
    assert (inner[:, :6] == (0, 255, 0)).all() and (inner[:, -6:] == (0, 255, 0)).all()
    assert (np.abs(inner[:, 12:-12] - 128) <= 2).all()


def test_fit_image_portrait_source_on_landscape_frame():
    img = _solid(200, 100, (9, 9, 9))
    out = fit_image(img, 90, 160, fit="fit", color=(1, 2, 3))  # scaled to 45x90, centred at x = 57
    assert out.shape == (90, 160, 3)
    assert (out[:, :57] == (1, 2, 3)).all() and (out[:, 102:] == (1, 2, 3)).all()
    assert (out[:, 57:102] == 9).all()
    out = fit_image(img, 90, 160, fit="cover")
    assert (out == 9).all()


# -- quality -------------------------------------------------------------------


def test_blur_has_no_halo():
    """A bright person on a dark room must not glow into the blurred room."""
    h, w = 360, 640
    dark, bright = 20, 235
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - w / 2, yy - h / 2)
    alpha = np.clip((100 - r) / 3 + 0.5, 0, 1).astype(np.float32)  # 3 px soft edge
    frame = _solid(h, w, (dark,) * 3)
    frame[r < 101] = bright
    with Compositor("blur", blur=1.0) as comp:
        out = comp.compose(frame, alpha).astype(np.float64)
    ring = (r > 103) & (r < 115)
    assert (alpha[ring] == 0).all()
    ours = np.abs(out[ring] - dark).mean()
    sigma = 0.10 * h  # what blur=1 means; any sigma this wide halos the same way
    naive = cv2.GaussianBlur(frame, (0, 0), sigma).astype(np.float64)
    naive_err = np.abs(naive[ring] - dark).mean()
    assert naive_err > 40  # the naive blur does glow...
    assert ours < 3 and ours < 0.05 * naive_err  # ...ours does not


def test_blur_fills_a_hole_in_a_frame_filling_person_without_garbage():
    frame = _solid(90, 160, (200, 200, 200))
    frame[40:48, 100:108] = (10, 60, 110)
    alpha = np.ones((90, 160), np.float32)
    alpha[40:48, 100:108] = 0
    with Compositor("blur", blur=1.0) as comp:
        out = comp.compose(frame, alpha).astype(int)
    hole = out[40:48, 100:108]
    assert (np.abs(hole - (10, 60, 110)) <= 3).all()


def _ramp_scene(h=180, w=320, width=12):
    """I = a F + (1 - a) B_old with constant F, B_old and a horizontal soft ramp."""
    f_col = np.array([40, 200, 60], np.float64)
    b_old = np.array([220, 30, 200], np.float64)
    x = np.arange(w, dtype=np.float64)
    a = np.clip((x - (w / 2 - width / 2)) / width, 0, 1)
    alpha = np.repeat(a[None, :], h, 0).astype(np.float32)
    a3 = alpha[..., None].astype(np.float64)
    frame = np.rint(a3 * f_col + (1 - a3) * b_old).astype(np.uint8)
    return frame, alpha, f_col


def test_no_fringe_at_soft_edges():
    frame, alpha, f_col = _ramp_scene()
    b_new = np.array([255, 0, 0], np.float64)
    with Compositor("color", color=(255, 0, 0)) as comp:
        out = comp.compose(frame, alpha).astype(np.float64)
    a3 = alpha[..., None].astype(np.float64)
    truth = a3 * f_col + (1 - a3) * b_new
    naive = a3 * frame + (1 - a3) * b_new
    ramp = (alpha > 0) & (alpha < 1)
    err = np.abs(out - truth)[ramp].mean()
    naive_err = np.abs(naive - truth)[ramp].mean()
    assert naive_err > 20
    assert err < 0.1 * naive_err


def test_transparent_colour_is_the_person_colour_at_soft_edges():
    frame, alpha, f_col = _ramp_scene()
    with Compositor("transparent") as comp:
        out = comp.compose(frame, alpha).astype(np.float64)
    ramp = (alpha > 0.05) & (alpha < 1)
    err = np.abs(out[..., :3] - f_col)[ramp].mean()
    naive_err = np.abs(frame.astype(np.float64) - f_col)[ramp].mean()
    assert naive_err > 50
    assert err < 0.1 * naive_err


# -- video ---------------------------------------------------------------------


def _mean_colors(comp: Compositor, n: int, h=48, w=64) -> list[np.ndarray]:
    frame = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.float32)
    return [comp.compose(frame, alpha).reshape(-1, 3).mean(axis=0) for _ in range(n)]


def _nearest(color: np.ndarray) -> int:
    return int(np.argmin([np.abs(color - c).sum() for c in VIDEO_COLORS]))


def test_video_advances_one_frame_per_call_and_loops(color_video):
    with Compositor("video", image=color_video) as comp:
        seq = [_nearest(c) for c in _mean_colors(comp, 13)]
    assert seq == [i % 5 for i in range(13)]


@pytest.mark.parametrize("cache_bytes", [0, 10**9])
def test_video_loops_with_and_without_the_memory_cache(color_video, cache_bytes):
    video = VideoBackground(color_video, max_cache_bytes=cache_bytes)
    try:
        seq = [_nearest(video.frame(48, 64).reshape(-1, 3).mean(axis=0)) for _ in range(12)]
        assert seq == [i % 5 for i in range(12)]
        assert video.length == 5
        assert video.cached == (cache_bytes > 0)
        # A new output size continues where playback was, at the new size.
        f = video.frame(30, 40)
        assert f.shape == (30, 40, 3) and _nearest(f.reshape(-1, 3).mean(axis=0)) == 2
        assert _nearest(video.frame(30, 40).reshape(-1, 3).mean(axis=0)) == 3
    finally:
        video.close()


def test_close_releases_the_video(color_video):
    comp = Compositor("video", image=color_video)
    comp.compose(np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64), np.float32))
    comp.close()
    comp.close()  # idempotent
    with pytest.raises(RuntimeError):
        comp.compose(np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64), np.float32))


# -- errors --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["image", "video"])
def test_missing_file_is_a_value_error_naming_the_path(mode, tmp_path):
    path = tmp_path / "nope" / "missing.file"
    with pytest.raises(ValueError, match="missing.file") as e:
        Compositor(mode, image=path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mode", ["image", "video"])
def test_directory_is_a_value_error_naming_the_path(mode, tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path.name)):
        Compositor(mode, image=tmp_path)


@pytest.mark.parametrize("mode", ["image", "video"])
def test_unreadable_file_is_a_value_error_naming_the_path(mode, tmp_path):
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"this is not an image or a video" * 10)
    with pytest.raises(ValueError, match="garbage.jpg"):
        Compositor(mode, image=path)


@pytest.mark.parametrize("mode", ["image", "video"])
def test_image_and_video_modes_need_a_path(mode):
    with pytest.raises(ValueError, match="image="):
        Compositor(mode)


@pytest.mark.parametrize(
    "kw",
    [
        {"mode": "sepia"},
        {"mode": "blur", "blur": 1.5},
        {"mode": "blur", "blur": -0.1},
        {"mode": "blur", "blur": "strong"},
        {"mode": "color", "color": (0, 0, 256)},
        {"mode": "color", "color": (0, 0)},
        {"mode": "color", "color": (0.5, 0, 0)},
        {"mode": "color", "fit": "stretch"},
    ],
)
def test_bad_options_are_value_errors(kw):
    mode = kw.pop("mode")
    with pytest.raises(ValueError):
        Compositor(mode, **kw)


@pytest.mark.parametrize("mode", MODES)
def test_wrong_dtype_is_a_type_error(mode, tmp_path):
    frame = np.zeros((8, 8, 3), np.uint8)
    alpha = np.zeros((8, 8), np.float32)
    with _make(mode, tmp_path) as comp:
        with pytest.raises(TypeError, match="frame"):
            comp.compose(frame.astype(np.float32), alpha)
        with pytest.raises(TypeError, match="alpha"):
            comp.compose(frame, alpha.astype(np.float64))
        with pytest.raises(TypeError, match="alpha"):
            comp.compose(frame, (alpha * 255).astype(np.uint8))
        with pytest.raises(TypeError):
            comp.compose(frame.tolist(), alpha)


@pytest.mark.parametrize("mode", MODES)
def test_wrong_shape_is_a_value_error(mode, tmp_path):
    frame = np.zeros((8, 8, 3), np.uint8)
    alpha = np.zeros((8, 8), np.float32)
    with _make(mode, tmp_path) as comp:
        for bad_frame, bad_alpha in [
            (frame[..., 0], alpha),  # grey frame
            (np.zeros((8, 8, 4), np.uint8), alpha),  # BGRA frame
            (frame, alpha[:7]),  # size mismatch
            (frame, alpha[..., None]),  # (H, W, 1)
            (np.zeros((0, 8, 3), np.uint8), alpha[:0]),  # empty
        ]:
            with pytest.raises(ValueError):
                comp.compose(bad_frame, bad_alpha)


def test_compose_pair_matches_two_compositors():
    """compose_pair's output equals compose's, and its cut-out equals a transparent compositor's."""
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    alpha = np.zeros((90, 160), np.float32)
    cv2.circle(alpha, (80, 45), 30, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 3)
    for mode in ("blur", "color", "none"):
        with Compositor(mode) as pair, Compositor(mode) as one, \
                Compositor("transparent") as cut:
            out, cutout = pair.compose_pair(frame, alpha)
            assert np.array_equal(out, one.compose(frame, alpha)), mode
            assert np.array_equal(cutout, cut.compose(frame, alpha)), mode
    with Compositor("transparent") as t:
        out, cutout = t.compose_pair(frame, alpha)
        assert out is cutout and out.shape == (90, 160, 4)
