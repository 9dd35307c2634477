"""``subject: main``: the main person kept whole, people behind them faded out.

Real net on real photos: a portrait framed like a webcam user with a second,
smaller person pasted into the background (:mod:`livebg.eval.crowd`).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livebg import config
from livebg.eval.crowd import generate_crowd_clip
from livebg.factory import make_processor
from livebg.stages.subject import SubjectFilter, make_subject


def blob(h, w, x0, x1, y0, y1, value=0.95):
    p = np.zeros((h, w), np.float32)
    p[y0:y1, x0:x1] = value
    return p


def test_all_is_no_stage_and_bad_mode_is_refused():
    assert make_subject("all") is None
    assert isinstance(make_subject("main"), SubjectFilter)
    with pytest.raises(ValueError, match="all, main"):
        make_subject("everyone")


def test_small_far_blob_fades_over_frames_and_main_stays_whole():
    f = SubjectFilter()
    p = blob(144, 256, 90, 170, 30, 144) + blob(144, 256, 220, 235, 60, 100)
    outs = [f.update(p) for _ in range(8)]
    side = [float(o[80, 227]) for o in outs]
    assert side[0] > 0.7 and 0 < side[2] < side[0] and side[-1] == 0.0  # a fade, not a pop
    for o in outs:
        assert np.array_equal(o[30:144, 90:170], p[30:144, 90:170])
    f.reset()
    assert f.state.labels is None and not f.state.tracks


def test_large_near_second_person_is_kept_after_staying():
    f = SubjectFilter()
    p = blob(144, 256, 20, 110, 25, 144) + blob(144, 256, 150, 235, 35, 144)
    outs = [f.update(p) for _ in range(40)]
    assert min(float(o[100, 190]) for o in outs) > 0.9  # held while deciding, then kept
    assert any(t.kind == "companion" for t in f.state.tracks.values())


def test_passer_by_entering_later_is_never_shown():
    f = SubjectFilter()
    main = blob(144, 256, 90, 170, 30, 144)
    for _ in range(5):
        f.update(main)
    for x in range(0, 60, 3):  # walks in from the left, small and far
        o = f.update(main + blob(144, 256, x, x + 12, 50, 90))
        assert float(o[70, x + 6]) == 0.0
        assert np.array_equal(o[30:144, 90:170], main[30:144, 90:170])


@pytest.fixture(scope="module")
def pair(portrait_pairs):
    """Two dev photos whose second person the net does find when pasted behind (most small
    full-body people it misses altogether, and then there is nothing to remove)."""
    (a_img, a_mask, _), (b_img, b_mask, _) = portrait_pairs[2], portrait_pairs[30]
    return a_img, a_mask, b_img, b_mask


@pytest.mark.parametrize("case", ["behind_still", "cross"])
def test_real_net_main_drops_the_other_person_and_keeps_the_main_one(pair, case):
    a_img, a_mask, b_img, b_mask = pair
    bg = cv2.imread(str(config.Path(__file__).resolve().parent.parent / "livebg" / "data"
                        / "scene_rocket.jpg"))
    clip = generate_crowd_clip(a_img, a_mask, b_img, b_mask, bg, case=case, size=(640, 360),
                               n_frames=40, seed=3)
    other = [(m_all > 0.5) & (m < 0.05) for m, m_all in zip(clip.masks, clip.masks_all)]
    found = {}
    for mode in ("all", "main"):
        proc = make_processor(config.set_values(config.Config(), {"subject": mode}), 640, 360)
        found[mode] = [proc.alpha(f) for f in clip.frames]
    # frames where the net sees the other person (with subject: all), and they have been
    # well apart from the main person (40 px) for the last 6 frames (a fade takes 5)
    kernel = np.ones((81, 81), np.uint8)
    apart = [not np.any(cv2.dilate(o.astype(np.uint8), kernel) & (m > 0.05))
             for o, m in zip(other, clip.masks)]
    seen = [t for t in range(10, 40) if other[t].sum() > 200 and all(apart[t - 5:t + 1])
            and (found["all"][t][other[t]] > 0.5).mean() > 0.5]
    assert seen, "the net should see the second person in some frames"
    for t in seen:
        assert (found["main"][t][other[t]] > 0.5).mean() < 0.1, t
    for t in range(40):
        person = clip.masks[t] > 0.5
        kept_all = found["all"][t][person] > 0.5
        kept_main = found["main"][t][person] > 0.5
        assert (kept_all & ~kept_main).mean() < 0.002, t  # nothing of the main person cut


def test_crowd_clips_from_the_cli_are_scored_against_both_truths(portraits, tmp_path):
    from livebg.cli import main
    from livebg.eval.evaluate import evaluate

    out = tmp_path / "crowd"
    assert main(["clips", str(portraits), str(out), "--crowd", "--n", "1", "--size", "256x144",
                 "--still", "5", "--move", "10"]) == 0
    (clip,) = out.iterdir()
    assert len(list((clip / "masks_all").glob("*.png"))) == 20
    everyone = cv2.imread(str(clip / "masks_all" / "00010.png"), 0)
    main_only = cv2.imread(str(clip / "masks" / "00010.png"), 0)
    assert (everyone > 127).sum() > (main_only > 127).sum() + 100  # the second person is in it
    for mode in ("all", "main"):
        cfg = config.set_values(config.Config(), {"subject": mode, "refine.mode": "none"})
        res = evaluate(out, lambda w, h, c=cfg: make_processor(c, w, h), progress=False)
        row = res.items[0]
        assert row["case"] == "behind_still" and row["frames"] == 20
        assert 0 <= row["iou_all"] <= 1 and row["main_cut"] == 0
        assert res.summary["main_cut"] == 0


def test_a_subject_change_swaps_only_that_stage():
    """What `livebg ctl set subject all` does in the daemon (engine.reconfig.plan)."""
    from livebg.engine.reconfig import plan
    from livebg.stats import StageStats

    old = config.Config()
    proc = make_processor(old, 256, 144)
    assert isinstance(proc.subject, SubjectFilter)
    new = config.set_value(old, "subject", "all", source="control")
    change = plan(old, new, proc, (256, 144), StageStats())
    assert change.changed == ["subject"] and not change.reopen and not change.restart
    assert change.processor.subject is None
    assert change.processor.segmenter is proc.segmenter  # the net is not reloaded
    back = plan(new, old, change.processor, (256, 144), StageStats())
    assert isinstance(back.processor.subject, SubjectFilter)


def test_fade_goes_on_while_the_image_is_still(pair):
    """The still gate skips the net on still frames; a fade under way must not freeze."""
    a_img, a_mask, b_img, b_mask = pair
    bg = cv2.imread(str(config.Path(__file__).resolve().parent.parent / "livebg" / "data"
                        / "scene_rocket.jpg"))
    clip = generate_crowd_clip(a_img, a_mask, b_img, b_mask, bg, case="behind_still",
                               size=(640, 360), n_frames=1, seed=3, noise_sigma=0)
    frame = clip.frames[0]
    other = (clip.masks_all[0] > 0.5) & (clip.masks[0] < 0.05)
    proc = make_processor(config.Config(), 640, 360)
    assert proc.still is not None and isinstance(proc.subject, SubjectFilter)
    outs = [proc.alpha(frame) for _ in range(12)]
    assert (outs[0][other] > 0.5).mean() > 0.5  # shown at the start, then fading
    assert (outs[-1][other] > 0.5).mean() < 0.1
    assert not proc.subject.fading


# The compiled kernels must give exactly what the OpenCV calls they replaced give
# (the stage's output is compared bit for bit with the older code by
# scripts/subject_cost.py --baseline; these pin the pieces on random inputs).

def _random_tracks(rng, h=72, w=128, n=5):
    """int32 (h, w) track ids 0..n made of random rectangles and specks."""
    labels = np.zeros((h, w), np.int32)
    for tid in range(1, n + 1):
        y0, x0 = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        labels[y0:y0 + int(rng.integers(2, 40)), x0:x0 + int(rng.integers(2, 50))] = tid
    labels[rng.random((h, w)) < 0.01] = int(rng.integers(1, n + 1))
    return labels


def test_halo_kernel_is_cv2_erode_with_the_ellipse_and_1_next_to_the_main_person():
    from livebg.stages.subject import _element_half, _halo

    rng = np.random.default_rng(4)
    for r in (0, 3, 6):
        half = _element_half(r)
        ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        for i in range(30):
            labels = _random_tracks(rng)
            comp = (labels > 0).astype(np.int32)
            lut = np.ones(8, np.float32)
            lut[1:6] = rng.choice([0.0, 0.2, 0.6, 1.0], 5)
            own = lut[labels]
            want = np.where(comp > 0, own, cv2.erode(own, ellipse))
            main, keep = (0, 2) if i % 3 == 0 else (int(rng.integers(1, 6)), i % 4)
            if main:
                square = np.ones((2 * keep + 1, 2 * keep + 1), np.uint8)
                near = cv2.dilate((labels == main).astype(np.uint8), square) > 0
                want = np.where(comp > 0, own, np.where(near, np.float32(1), want))
            x0, y0 = int(rng.integers(0, 100)), int(rng.integers(0, 60))
            box = (x0, y0, int(rng.integers(x0 + 1, 129)), int(rng.integers(y0 + 1, 73)))
            out = np.empty((box[3] - box[1], box[2] - box[0]), np.float32)
            _halo(labels, comp, lut, box, half, main, keep, out)
            assert np.array_equal(out, want[box[1]:box[3], box[0]:box[2]]), (r, box, main, keep)


def test_grown_kernel_is_cv2_dilate_on_the_blobs():
    from livebg.stages.subject import _blobs, _grown

    rng = np.random.default_rng(5)
    for r in (1, 2, 3):
        for _ in range(20):
            prev = _random_tracks(rng)
            mask = (_random_tracks(rng, n=4) > 0).astype(np.uint8)
            n, comp = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
            n, box = _blobs(comp, n, 1)
            got = np.zeros(prev.shape, np.int32)
            _grown(prev, n, box, r, got)
            want = cv2.dilate(prev.astype(np.float32), np.ones((2 * r + 1, 2 * r + 1), np.uint8))
            on = comp > 0
            assert on.any() and np.array_equal(got[on], want.astype(np.int32)[on]), r


@pytest.mark.parametrize("size", [(144, 256), (72, 128), (145, 255)])
def test_weights_scaled_only_around_the_box_equal_the_whole_resize(size):
    from livebg.stages.subject import _scaled

    rng = np.random.default_rng(6)
    grid = (72, 128)
    full = rng.random(size).astype(np.float32)
    for box in [(0, 0, 128, 72), (3, 5, 20, 30), (100, 40, 128, 72), (0, 60, 10, 72)]:
        x0, y0, x1, y1 = box
        sub = rng.random((y1 - y0, x1 - x0)).astype(np.float32)
        whole = np.ones(grid, np.float32)
        whole[y0:y1, x0:x1] = sub
        want = full * (whole if size == grid else
                       cv2.resize(whole, size[::-1], interpolation=cv2.INTER_LINEAR))
        assert np.array_equal(_scaled(full, grid, sub, box), want), box


def test_renumbering_the_tracks_changes_nothing(monkeypatch):
    """Track ids are renumbered past COMPACT_AT; their order, hence every result, is kept."""
    from livebg.stages import subject

    main = blob(144, 256, 90, 170, 30, 144)
    frames = [main + blob(144, 256, (7 * i) % 240, (7 * i) % 240 + 12, 20 + i % 7, 60)
              + (blob(144, 256, 200, 230, 40, 144) if i % 9 < 5 else 0) for i in range(60)]
    frames = [np.minimum(f, 1.0) for f in frames]
    plain = SubjectFilter()
    want = [plain.update(f).copy() for f in frames]
    monkeypatch.setattr(subject, "COMPACT_AT", 4)
    small = SubjectFilter()
    got = [small.update(f).copy() for f in frames]
    assert plain.state.next_id > 8 and small.state.next_id <= 8
    for a, b in zip(want, got):
        assert np.array_equal(a, b)


def test_state_weight_is_what_the_probability_was_multiplied_by():
    """livebg eval counts the frames cutting the main person from ``state.weight``."""
    f = SubjectFilter()
    p = blob(144, 256, 90, 170, 30, 144) + blob(144, 256, 220, 235, 60, 100, 0.8)
    for _ in range(3):
        out = f.update(p)
    assert f.state.weight is not None and f.state.weight.shape == p.shape
    assert np.array_equal(out, p * f.state.weight)
    assert f.state.weight[80, 227] < 1.0 and f.state.weight[100, 130] == 1.0
    f.update(blob(144, 256, 90, 170, 30, 144))  # the other one gone: nothing faded
    assert f.state.weight is None


@pytest.mark.parametrize("margin", [0.5, 1.0, 1.5, 1.9])
def test_margin_test_without_a_distance_map_matches_the_distance_transform(margin):
    from livebg.stages.subject import _CHAMFER, _resolve, _resolve_near

    side, corner, two = _CHAMFER
    m = np.float32(margin)
    assert m < two  # else the stage makes the distance map
    rng = np.random.default_rng(7)
    for _ in range(20):
        prev = _random_tracks(rng, n=3)
        comp = np.zeros(prev.shape, np.int32)
        comp[10:60, 20:110] = 1
        box = np.array([[0, 0, 0, 0], [20, 10, 110, 60]], np.int64)
        split = np.array([False, True])
        open_ = np.where(rng.random(prev.shape) < 0.3, -2, 1).astype(np.int32) * comp
        dist = cv2.distanceTransform((prev != 1).astype(np.uint8), cv2.DIST_L2, 3)
        want, got = open_.copy(), open_.copy()
        _resolve(comp, 2, box, split, dist, m, 1, want)
        _resolve_near(comp, 2, box, split, prev, 1, side <= m, corner <= m, got)
        assert (open_ < 0).any() and np.array_equal(got, want)


def test_passer_by_crossing_close_behind_never_cuts_the_main_persons_edge():
    # The main person's right edge (column 170) half covers a working-grid pixel (columns
    # 170-171 at grid 2), whose mean is under the threshold: it is off every blob. A passer-by
    # who walks in from the right, along and behind them and out on the left must not take
    # that edge with them (the old halo gave it the passer-by's weight 0, and the weight's
    # bilinear resize then cut column 170: 0.95 * 0.25), and must still be faded away from them.
    f = SubjectFilter()
    main = blob(144, 256, 90, 171, 30, 144)
    for _ in range(20):
        f.update(main)
    for x in range(244, 60, -2):  # one grid pixel a frame
        p = np.maximum(main, blob(144, 256, x, min(256, x + 12), 50, 90))
        o = f.update(p)
        assert (o[30:144, 90:171] > 0.5).all(), x  # nothing of the main person cut
        if x >= 171 + 8:  # 4 grid pixels clear of the main person, entering: never shown
            assert float(o[70, x + 6]) == 0.0, x
