"""Refinement: contract, edge accuracy, confidence, warm start, reset, real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livebg.stages.refine import make_refiner as make_runtime_refiner
from livebg.stages.refine.experimental import make_refiner



def soft_edge_scene(h: int = 360, w: int = 640, edge: float = 300.3):
    """A frame with a vertical colour edge at x = ``edge`` (1-pixel ramp), and a net-like
    probability: the true edge blurred by a ramp and shifted 4 px to the right, at 1/5
    of the resolution."""
    x = np.arange(w, dtype=np.float32) + 0.5
    true = np.clip(edge - x + 0.5, 0.0, 1.0)           # 1 left of the edge (person), 0 right
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (40 + 160 * (1 - true))[None, :, None].astype(np.uint8)
    img[..., 1] = np.clip(img[..., 1].astype(int) + 30 * (true[None, :] > 0.5), 0, 255)
    rng = np.random.default_rng(0)
    img = np.clip(img.astype(int) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
    ph, pw = h // 5, w // 5
    xs = (np.arange(pw, dtype=np.float32) + 0.5) * (w / pw)
    prob = 1.0 / (1.0 + np.exp((xs - (edge + 4.0)) / 4.0))
    prob = np.repeat(prob[None, :], ph, axis=0).astype(np.float32)
    return img, prob, edge


def edge_position(alpha: np.ndarray) -> float:
    """Mean x (pixel centres) where each row crosses 0.5."""
    pos = []
    for row in alpha:
        k = int(np.argmax(row < 0.5))
        if k == 0:
            continue
        a, b = row[k - 1], row[k]
        pos.append(k - 0.5 + (a - 0.5) / (a - b))
    return float(np.mean(pos))


GRID = {"superpixels": "grid", "non_local": 0.0}
SLIC = {"superpixels": "slic", "non_local": 0.0}
# every option of the sss refiner, alone and together
OPTIONS = {
    "none": ("none", {}),
    "guided": ("guided", {}),
    "sss": ("sss", {}),
    "grid": ("sss", GRID),
    "grid+semantic": ("sss", {**GRID, "semantic": True}),
    "slic": ("sss", SLIC),
    "slic-soft": ("sss", {**SLIC, "soft_tau": 32.0}),
    "slic+semantic": ("sss", {**SLIC, "semantic": True}),
    "slic+nonlocal": ("sss", {**SLIC, "non_local": 0.05, "non_local_band": 1.0}),
    "slic+eigen": ("sss", {**SLIC, "eigen": 8}),
    "slic-eigen-only": ("sss", {**SLIC, "eigen": 8, "eigen_only": True}),
    "slic+all": ("sss", {**SLIC, "semantic": True, "non_local": 0.05, "eigen": 8}),
}


def make(variant):
    mode, opts = OPTIONS[variant]
    return make_refiner(mode, **opts)


SMALL = [(37, 53), (8, 8), (240, 180)]
LARGE = [(720, 1280), (721, 1279)]


# Every option on small frames; on 720p frames a few variants are enough.
LARGE_VARIANTS = ("none", "guided", "sss", "slic", "slic+all")
CONTRACT_CASES = ([(v, s) for v in sorted(OPTIONS) for s in SMALL]
                  + [(v, s) for v in LARGE_VARIANTS for s in LARGE])


@pytest.mark.parametrize("variant, shape", CONTRACT_CASES)
def test_output_contract(variant, shape):
    mode, opts = OPTIONS[variant]
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    prob = rng.random((36, 64), dtype=np.float32)
    feats = rng.random((18, 32, 16), dtype=np.float32)
    r = make_refiner(mode, **opts)
    for _ in range(3):  # cold, then warm
        a = r.refine(img, prob, feats)
        assert a.shape == shape and a.dtype == np.float32
        assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
    assert isinstance(r.timings(), dict)
    a = r.refine(img, prob, None)  # features are optional for every option
    assert a.shape == shape and np.isfinite(a).all()


def test_bad_options():
    with pytest.raises(ValueError, match="slic"):
        make_refiner("sss", superpixels="hexagons")
    with pytest.raises(ValueError, match="eigen"):
        make_refiner("sss", eigen_only=True)


def test_unknown_mode():
    with pytest.raises(ValueError, match="sss"):
        make_refiner("magic")


# The guided filter only sharpens inside its window; the graph solves move the edge.
@pytest.mark.parametrize("variant, gain", [("guided", 0.8), ("sss", 0.5), ("slic", 0.5),
                                           ("slic+nonlocal", 0.5), ("slic+eigen", 0.5)])
def test_edge_moves_towards_true_edge(variant, gain):
    img, prob, edge = soft_edge_scene()
    base = make_refiner("none").refine(img, prob)
    a = make(variant).refine(img, prob)
    err_in = abs(edge_position(base) - edge)
    assert err_in > 3.0  # the scene is built so that the net is off by ~4 px
    assert abs(edge_position(a) - edge) < gain * err_in


@pytest.mark.parametrize("variant", ["grid+semantic", "slic+semantic"])
def test_semantic_features_accepted(variant):
    img, prob, edge = soft_edge_scene()
    feats = np.zeros((36, 64, 16), np.float32)
    feats[:, :30, :] = 1.0
    a = make(variant).refine(img, prob, feats)
    assert abs(edge_position(a) - edge) < 3.0


def test_confident_regions_preserved():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)  # texture everywhere
    prob = np.zeros((36, 64), np.float32)
    prob[:, :30] = 1.0
    a = make_refiner("sss").refine(img, prob)
    assert a[:, :240].min() > 0.97   # far inside: still person
    assert a[:, 400:].max() < 0.03   # far outside: still background


def test_slic_warm_start_converges():
    img, prob, _ = soft_edge_scene()
    r = make_refiner("sss", superpixels="slic")
    first = r.refine(img, prob)
    for _ in range(5):
        warm = r.refine(img, prob)
    assert r.state.changed < 0.01       # labels settle on a repeated frame
    assert r.state.residual < 1e-2
    assert np.abs(warm - first).mean() < 0.01


def test_warm_start_converges_to_cold():
    img, prob, _ = soft_edge_scene()
    cold = make_refiner("sss").refine(img, prob)
    exact = make_refiner("sss", iters=400).refine(img, prob)
    warm_r = make_refiner("sss")
    warm_r.refine(img, prob)
    for _ in range(10):
        warm = warm_r.refine(img, prob)
    # a repeated frame keeps converging: towards the exact solve, never away from the cold one
    assert np.abs(warm - exact).max() <= np.abs(cold - exact).max() + 1e-4
    assert np.abs(warm - cold).mean() < 2e-3
    assert warm_r.state.residual < 1e-3


@pytest.mark.parametrize("variant", ["grid", "slic+all"])
def test_reset_equals_fresh(variant):
    img, prob, _ = soft_edge_scene()
    feats = np.random.default_rng(3).random((18, 32, 16), dtype=np.float32)
    other = np.ascontiguousarray(img[:, ::-1])
    r = make(variant)
    r.refine(other, prob[:, ::-1].copy(), feats)
    r.refine(other, prob[:, ::-1].copy(), feats)
    r.reset()
    assert r.state.alpha_nodes is None and r.state.centres is None
    assert r.state.eigvecs is None and r.state.knn is None
    np.testing.assert_array_equal(r.refine(img, prob, feats),
                                  make(variant).refine(img, prob, feats))


@pytest.mark.parametrize("variant, extra", [("grid", set()), ("slic", {"superpixels"}),
                                            ("slic+eigen", {"superpixels", "eigen"})])
def test_timings_report_substeps(variant, extra):
    img, prob, _ = soft_edge_scene()
    r = make(variant)
    r.refine(img, prob)
    assert set(r.timings()) == {"downsample", "graph", "solve", "upsample"} | extra


# ---------------------------------------------------------------------------
# The parts: superpixels, graphs, solves, eigenvectors


def slic_scene(h=90, w=160, n=300, iters=4):
    from livebg.stages.refine import superpixels as spx
    from livebg.stages.refine.guided import downsample

    img, prob, _ = soft_edge_scene()
    rng = np.random.default_rng(4)
    stripes = (np.indices(img.shape[:2]).sum(0) % 97 < 40)[..., None]
    img = np.clip(img.astype(int) + (rng.random((1, 1, 3)) * 60).astype(int) * stripes,
                  0, 255).astype(np.uint8)
    lab = cv2.cvtColor(downsample(img, (w, h)), cv2.COLOR_BGR2Lab)
    p = cv2.resize(prob, (w, h))
    gy, gx = spx.cell_grid(h, w, n)
    cen = spx.init_centres(lab, gy, gx)
    labels = np.full((h, w), -1, np.int32)
    m2 = np.float32((10.0 / np.sqrt(h * w / (gy * gx))) ** 2)
    pbar, count, changed = spx.slic(lab, p, cen, gy, gx, m2, iters, labels)
    return lab, p, cen, labels, pbar, count, (gy, gx, m2)


def test_slic_labels_cover_the_frame():
    lab, p, cen, labels, pbar, count, (gy, gx, _) = slic_scene()
    n = gy * gx
    assert 250 <= n <= 350
    assert labels.min() >= 0 and labels.max() < n
    assert count.sum() == labels.size
    assert np.array_equal(np.bincount(labels.ravel(), minlength=n), count)
    assert (count > 0).mean() > 0.95          # almost no superpixel is empty
    assert ((pbar >= 0) & (pbar <= 1)).all()
    # every superpixel's centre sits among its own pixels' positions
    ys, xs = np.indices(labels.shape)
    k = int(np.argmax(count))
    assert abs(ys[labels == k].mean() - cen[k, 3]) < 1e-3


def test_slic_warm_start_on_the_same_frame_converges():
    from livebg.stages.refine import superpixels as spx

    lab, p, cen, labels, _, _, (gy, gx, m2) = slic_scene(iters=4)
    changes = []
    for _ in range(6):  # warm iterations on the same frame
        before = labels.copy()
        _, _, changed = spx.slic(lab, p, cen, gy, gx, m2, 1, labels)
        changes.append(changed)
        assert changed == int((before != labels).sum())
    assert changes[-1] <= changes[0]
    assert changes[-1] < 0.005 * labels.size  # labels stay put


def test_slic_soft_assignment_interpolates():
    from livebg.stages.refine import superpixels as spx

    lab, _, cen, labels, _, _, (gy, gx, m2) = slic_scene()
    a_nodes = np.random.default_rng(5).random(gy * gx).astype(np.float32)
    out = np.empty(labels.shape, np.float32)
    hard = spx.hard_assign(labels, a_nodes, out.copy())
    np.testing.assert_array_equal(hard, a_nodes[labels])
    nearly_hard = spx.soft_assign(lab, cen, gy, gx, m2, np.float32(1e-4), a_nodes, out.copy())
    # the nearest (moved) centre: labels were assigned before the last centre update
    assert (np.abs(nearly_hard - hard) < 1e-4).mean() > 0.95
    soft = spx.soft_assign(lab, cen, gy, gx, m2, np.float32(1e4), a_nodes, out.copy())
    assert soft.min() >= a_nodes.min() - 1e-6 and soft.max() <= a_nodes.max() + 1e-6
    assert soft.std() < hard.std()


def _dense(csr, n):
    import scipy.sparse as sp

    return sp.csr_matrix((csr[2], csr[1], csr[0]), shape=(n, n)).toarray()


def slic_graph(non_local=True):
    from livebg.stages.refine import superpixels as spx
    from livebg.stages.refine.graph import build_csr, slot_weights
    from livebg.stages.refine.nonlocal_edges import colour_knn, knn_weights

    lab, p, cen, labels, pbar, _, (gy, gx, _) = slic_scene()
    h, w = labels.shape
    slots = slot_weights(cen, spx.boundary_slots(labels, gx), gx, np.float32(4.0),
                         np.float32(np.sqrt(h * w / (gy * gx))))
    idx = np.full((gy * gx, 4), -1, np.int32)
    if non_local:
        colour_knn(cen, gy, gx, h, w, np.float32(0.2), idx, np.arange(gy * gx))
    csr = build_csr(slots, gx, idx, knn_weights(cen, idx, np.float32(4.0), np.float32(0.05)))
    return csr, pbar, cen, (gy, gx, h, w), idx


def test_graph_is_symmetric_with_non_local_edges():
    csr, pbar, cen, (gy, gx, h, w), idx = slic_graph()
    n = gy * gx
    m = _dense(csr, n)
    np.testing.assert_allclose(m, m.T, atol=1e-7)
    assert np.all(np.diag(m) == 0) and m.min() >= 0
    # the non-local lists: within the radius, not self, nearest in colour first
    for a in range(0, n, 7):
        got = [b for b in idx[a] if b >= 0]
        assert a not in got
        for b in got:
            assert np.hypot(*(cen[a, 3:] - cen[b, 3:])) <= 0.2 * max(h, w) + 1e-3
        d = [np.sum((cen[a, :3] - cen[b, :3]) ** 2) for b in got]
        assert d == sorted(d)
    assert (idx >= 0).any()


def test_csr_solve_matches_grid_stencil():
    from livebg.stages.refine import superpixels as spx
    from livebg.stages.refine.graph import build_csr, grid_weights
    from livebg.stages.refine.solve import solve_confidence, solve_confidence_csr

    rng = np.random.default_rng(6)
    lab = (rng.random((20, 30, 3)) * 50).astype(np.float32)
    p = rng.random((20, 30)).astype(np.float32)
    conf = (np.abs(2 * p - 1) ** 4).astype(np.float32)
    wgt = grid_weights(lab, np.zeros((1, 1, 0), np.float32), np.float32(20.0), np.float32(1.0),
                       np.float32(np.sqrt(0.5)))
    no = (np.zeros((0, 0), np.int32), np.zeros((0, 0), np.float32))
    csr = build_csr(spx.grid_slots(wgt), 30, *no)
    a1, _ = solve_confidence(wgt, conf, p, p, 1.0, 40)
    a2, _ = solve_confidence_csr(*csr, conf.ravel(), p.ravel(), p.ravel(), np.float32(1.0), 40)
    np.testing.assert_allclose(a1.ravel(), a2, atol=1e-4)
    # extra (non-local) edges: stencil + sparse part == one general CSR graph
    idx = rng.integers(0, 600, (600, 3)).astype(np.int32)
    idx[idx == np.arange(600)[:, None]] = -1
    wts = (rng.random((600, 3)) * 0.1).astype(np.float32)
    extra = build_csr(np.zeros((600, 0), np.float32), 30, idx, wts)
    full = build_csr(spx.grid_slots(wgt), 30, idx, wts)
    a3, _ = solve_confidence(wgt, conf, p, p, 1.0, 60, extra)
    a4, _ = solve_confidence_csr(*full, conf.ravel(), p.ravel(), p.ravel(), np.float32(1.0), 60)
    np.testing.assert_allclose(a3.ravel(), a4, atol=1e-4)
    assert np.abs(a3 - a1).max() > 1e-3  # the extra edges do something


def test_tracked_eigenvectors():
    from livebg.stages.refine.experimental import eigen as eg

    csr, pbar, _, (gy, gx, _, _), _ = slic_graph()
    n, k = gy * gx, 8
    v_true, lam_true = eg.fresh_eigenvectors(*csr, k)
    assert lam_true[0] < 1e-6 and np.all(np.diff(lam_true) >= -1e-9)
    # the next frame: the same graph, slightly perturbed; track from the old vectors
    rng = np.random.default_rng(7)
    data2 = (csr[2] * (1 + 0.05 * rng.random(csr[2].shape))).astype(np.float32)
    m = _dense((csr[0], csr[1], data2), n)
    m = 0.5 * (m + m.T)
    import scipy.sparse as sp

    s = sp.csr_matrix(m)
    csr2 = (s.indptr.astype(np.int64), s.indices.astype(np.int32), s.data.astype(np.float32))
    v_fresh, lam_fresh = eg.fresh_eigenvectors(*csr2, k)
    v, lam = v_true, None
    for _ in range(3):  # three frames of tracking
        v, lam = eg.track_eigenvectors(*csr2, v)
    np.testing.assert_allclose(v.T @ v, np.eye(k), atol=1e-8)       # orthonormal
    np.testing.assert_allclose(lam, lam_fresh, atol=2e-3)           # same eigenvalues
    sv = np.linalg.svd(v_fresh[:, :k - 1].T @ v, compute_uv=False)  # same subspace
    assert sv.min() > 0.99
    # the fit reproduces a probability that the eigenvectors can draw
    dis = eg.degree_scale(csr2[0], csr2[2])
    target = np.clip((v_fresh * dis[:, None])[:, :3] @ np.array([0.5, 2.0, -1.0]), 0, 1)
    fit = eg.fit_to_probability(v, dis, target, np.ones(n, np.float32))
    assert np.abs(fit - target).mean() < 0.02


def test_the_deadband_makes_faint_alpha_exact_and_keeps_the_middle():
    """apply_coefficients: values within d of 0 or 1 become exactly 0 or 1, the
    middle is stretched continuously (0.5 stays 0.5), nothing moves by more than d."""
    from livebg.stages.refine.guided import apply_coefficients

    img = np.zeros((8, 64, 3), np.uint8)
    coef = np.zeros((2, 16, 4), np.float32)
    coef[..., 3] = np.linspace(-0.1, 1.1, 16, dtype=np.float32)[None, :]  # b only: q = b
    plain = apply_coefficients(img, coef)
    d = 1 / 64
    band = apply_coefficients(img, coef, deadband=d)
    assert np.all(band[plain <= d] == 0.0) and np.all(band[plain >= 1 - d] == 1.0)
    assert np.abs(band - plain).max() <= d + 1e-6
    mid = (plain > 0.3) & (plain < 0.7)
    assert np.allclose(band[mid] - 0.5, (plain[mid] - 0.5) / (1 - 2 * d), atol=1e-5)
    assert np.all(np.diff(band, axis=1) >= -1e-6), "not monotone: the ramp must stay continuous"
    with pytest.raises(ValueError):
        apply_coefficients(img, coef, deadband=0.5)


def test_refined_alpha_has_no_faint_haze_on_a_noisy_frame():
    """The refiners' default deadband: sensor noise around a sure mask leaves no
    faint values (the guided fit follows the noise; each such pixel is a blend)."""
    rng = np.random.default_rng(3)
    img = np.full((360, 640, 3), 90, np.uint8)
    img[:, :300] = 200
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    prob = np.zeros((36, 64), np.float32)
    prob[:, :30] = 1.0
    for mode in ("guided", "sss"):
        a = make_runtime_refiner(mode).refine(img, prob)
        faint = (a > 0) & (a < 0.01) | (a > 0.99) & (a < 1)
        assert np.count_nonzero(faint) < 0.001 * a.size, mode


def test_sss_beats_none_on_dev_photos(portraits):
    from livebg.eval.metrics import boundary_iou, iou
    from livebg.stages.segment import Segmenter

    net = Segmenter("square")
    files = sorted((portraits / "images").glob("*.jpg"))[::3]  # 20 photos: keep it fast
    scores = {"none": [], "sss": []}
    for f in files:
        img = cv2.imread(str(f))
        gt = cv2.imread(str(portraits / "masks" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        prob = net.segment(img).probability
        for mode in scores:
            a = make_refiner(mode).refine(img, prob)
            scores[mode].append((boundary_iou(a, gt), iou(a, gt)))
    none = np.mean(scores["none"], axis=0)
    sss = np.mean(scores["sss"], axis=0)
    assert sss[0] > none[0]          # boundary IoU
    assert sss[1] >= none[1] - 1e-3  # IoU not lower


@pytest.mark.parametrize("mode, superpixels, semantic, features", [
    ("sss", "grid", False, False), ("sss", "slic", True, True),
    ("guided", "grid", True, False), ("none", "slic", False, False)])
def test_config_builds_refiner_and_asks_for_features_only_when_used(
        monkeypatch, mode, superpixels, semantic, features):
    import livebg.factory as build
    from livebg.config import Config

    cfg = Config()
    cfg.refine.mode, cfg.refine.superpixels, cfg.refine.semantic = mode, superpixels, semantic
    asked = {}
    monkeypatch.setattr(build, "Segmenter", lambda name, **kw: asked.update(kw) or object())
    build.make_segmenter(cfg, 1280, 720)
    assert asked["features"] is features
    r = build.make_refiner(cfg)
    assert r.name == mode
    if mode == "sss":
        assert (r.opt.superpixels, r.opt.semantic) == (superpixels, semantic)


def test_config_defaults_match_refiner_defaults():
    from livebg.config import Config
    from livebg.stages.refine.sss import SSSRefiner

    cfg, r = Config().refine, SSSRefiner()
    assert (cfg.superpixels, cfg.semantic) == (r.opt.superpixels, r.opt.semantic)


def test_runtime_refiners_take_one_options_dataclass():
    """Issue 12: one frozen options dataclass per refiner; the research options are apart."""
    import dataclasses

    from livebg.stages.refine.guided import GuidedOptions
    from livebg.stages.refine.sss import SSSOptions

    r = make_runtime_refiner("sss", SSSOptions(superpixels="slic", semantic=True))
    assert (r.opt.superpixels, r.opt.semantic) == ("slic", True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.opt.sigma = 1.0
    with pytest.raises(TypeError):
        make_runtime_refiner("sss", GuidedOptions())
    with pytest.raises(TypeError):
        SSSOptions(eigen=8)  # research-only: not an option of the runtime refiner
    assert make_runtime_refiner("guided", GuidedOptions(radius=3)).radius == 3


@pytest.mark.parametrize("superpixels", ["grid", "slic"])
def test_experimental_refiner_with_defaults_is_the_runtime_refiner(superpixels):
    """The ablation script's refiner, research options off, gives the runtime's matte."""
    from livebg.stages.refine.sss import SSSOptions

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    prob = rng.random((36, 64), dtype=np.float32)
    runtime = make_runtime_refiner("sss", SSSOptions(superpixels=superpixels))
    research = make_refiner("sss", superpixels=superpixels)
    for _ in range(3):  # cold, then warm
        np.testing.assert_array_equal(runtime.refine(img, prob), research.refine(img, prob))
