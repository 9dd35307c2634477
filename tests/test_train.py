"""Tests for livebg's own net: the PyTorch module and the training script (models/).

CI never trains: the smoke test runs two training steps on four images made
from the shipped sample, so that models/train.py stays alive. Both tests need
torch (the ``train`` and ``test`` extras pin torch==2.13.0) and skip without it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
SAMPLE = REPO / "livebg" / "data" / "astronaut.jpg"
SAMPLE_ALPHA = REPO / "livebg" / "data" / "astronaut_alpha.png"

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e .[train])")
pytest.importorskip("onnx", reason="onnx is not installed (pip install -e .[train])")
ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(MODELS))
import selfie_net  # noqa: E402
import train  # noqa: E402


def _net_input(path: Path, w: int, h: int) -> np.ndarray:
    bgr = cv2.resize(cv2.imread(str(path)), (w, h), interpolation=cv2.INTER_AREA)
    return (bgr[:, :, ::-1].transpose(2, 0, 1)[None] / 255.0).astype(np.float32)


@pytest.mark.parametrize("name,h,w", [("selfie_segmentation_landscape", 144, 256),
                                      ("selfie_segmentation", 256, 256)])
def test_module_reproduces_the_onnx_graph(name: str, h: int, w: int, tmp_path: Path) -> None:
    """SelfieNet with the MediaPipe weights gives ONNX Runtime's outputs, and its export
    (weights perturbed, so that a mis-ordered copy would show) matches the module again."""
    torch.set_num_threads(1)
    path = MODELS / f"{name}.onnx"
    net = selfie_net.load_onnx_weights(selfie_net.SelfieNet(), path).eval()
    x = _net_input(SAMPLE, w, h)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    prob, feats = sess.run(["probability", "features"], {"image": x})
    with torch.no_grad():
        logits, f = net(torch.from_numpy(x))
    assert float(np.abs(torch.sigmoid(logits).numpy() - prob).max()) < 1e-4
    assert float(np.abs(f.numpy() - feats).max()) < 1e-3 * max(1.0, float(feats.max()))

    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1 + 0.01 * torch.randn_like(p))
        logits, _ = net(torch.from_numpy(x))
    out = tmp_path / "perturbed.onnx"
    selfie_net.export_onnx(net, path, out, {"test": "1"})
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        ["probability"], {"image": x})[0]
    assert float(np.abs(got - torch.sigmoid(logits).numpy()).max()) < 5e-4
    assert float(np.abs(got - prob).max()) > 1e-2  # the new weights really went in


def _tiny_dataset(root: Path) -> None:
    """Four pairs in the training layout, made from the shipped sample (crops and a flip)."""
    img, alpha = cv2.imread(str(SAMPLE)), cv2.imread(str(SAMPLE_ALPHA), cv2.IMREAD_GRAYSCALE)
    (root / "portraits" / "images").mkdir(parents=True)
    (root / "portraits" / "masks").mkdir(parents=True)
    h, w = alpha.shape
    views = [(img, alpha), (img[:, ::-1], alpha[:, ::-1]),
             (img[:, w // 8:], alpha[:, w // 8:]), (img[h // 10:], alpha[h // 10:])]
    for k, (i, a) in enumerate(views):
        cv2.imwrite(str(root / "portraits" / "images" / f"apm_{k:05d}.jpg"), i)
        cv2.imwrite(str(root / "portraits" / "masks" / f"apm_{k:05d}.png"),
                    np.where(a > 127, 255, 0).astype(np.uint8))


def test_two_training_steps_write_a_working_net(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _tiny_dataset(data)
    out.mkdir()
    onnx_path, manifest = out / "net.onnx", out / "manifest.json"
    rc = train.main(["--data", str(data), "--out", str(onnx_path), "--manifest", str(manifest),
                     "--data-manifest", str(out / "data.csv"), "--checkpoint",
                     str(out / "ck.pt"), "--epochs", "1", "--steps", "2", "--batch", "2",
                     "--val-fraction", "0.25", "--warmup", "1", "--lr", "0.01"])
    assert rc == 0
    rows = (out / "data.csv").read_text().splitlines()
    assert rows[0] == "folder,image,split,sha256" and len(rows) == 5
    assert sum(r.split(",")[2] == "val" for r in rows[1:]) == 1

    entry = json.loads(manifest.read_text())["models"]["livebg"]
    data_bytes = onnx_path.read_bytes()
    assert entry["onnx"]["sha256"] == hashlib.sha256(data_bytes).hexdigest()
    assert entry["trained"]["steps"] == 2 and entry["trained"]["options"]["seed"] > 0
    assert entry["trained"]["data_manifest_sha256"] == hashlib.sha256(
        (out / "data.csv").read_bytes()).hexdigest()

    ck = torch.load(out / "ck.pt", weights_only=False)
    assert ck["state"]["epoch"] == 1 and np.isfinite(ck["state"]["history"][0]["loss"])
    init = selfie_net.load_onnx_weights(selfie_net.SelfieNet(),
                                        MODELS / "selfie_segmentation_landscape.onnx")
    moved = max(float((ck["net"][k] - v).abs().max()) for k, v in init.state_dict().items())
    assert moved > 1e-4  # the two Adam steps changed the weights

    x = _net_input(SAMPLE, 256, 144)
    sess = ort.InferenceSession(data_bytes, providers=["CPUExecutionProvider"])
    prob = sess.run(["probability"], {"image": x})[0]
    trained = selfie_net.SelfieNet()
    trained.load_state_dict(ck["net"])
    with torch.no_grad():
        want = torch.sigmoid(trained.eval()(torch.from_numpy(x))[0]).numpy()
    assert float(np.abs(prob - want).max()) < 5e-3  # ONNX Runtime fuses ops: float error only


def test_a_square_teacher_sees_each_view_at_its_own_size() -> None:
    """The square net as teacher for 256x144 views: run at 256x256 on the stretched view,
    its probability comes back at 256x144 and matches running it by hand."""
    teacher = train.Teacher(MODELS / "selfie_segmentation.onnx")
    assert teacher.size == (256, 256)
    x = np.concatenate([_net_input(SAMPLE, 256, 144), _net_input(SAMPLE, 256, 144)[..., ::-1]])
    got = teacher(np.ascontiguousarray(x))
    assert got.shape == (2, 1, 144, 256) and got.dtype == np.float32
    square = _net_input(SAMPLE, 256, 256)
    sess = ort.InferenceSession(str(MODELS / "selfie_segmentation.onnx"),
                                providers=["CPUExecutionProvider"])
    want = sess.run(["probability"], {"image": square})[0][0, 0]
    want = cv2.resize(want, (256, 144), interpolation=cv2.INTER_AREA)
    # The sample stretched to 256x256 by the teacher and resized directly differ a little.
    assert float(np.abs(got[0, 0] - want).mean()) < 0.02
    assert float(np.abs(got[0, 0] - got[1, 0][:, ::-1]).mean()) < 0.05  # the flip is its own view
    assert got[0, 0].max() > 0.9 and got[0, 0].min() < 0.1


def test_closeup_views_are_16_9_crops_of_a_portraits_head() -> None:
    """A close-up is a 16:9 crop of 55-100% of a portrait's width from its upper part (the
    head, someone leaning in); make_view labels it with the mask cropped the same way, and
    full-body photos never get one."""
    import augment

    # A 300x400 head-and-shoulders portrait; the image's first channel holds row // 2.
    h, w = 400, 300
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (150, 160), (95, 130), 0, 0, 360, 1, -1)
    mask[300:, 20:280] = 1
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (np.arange(h) // 2)[:, None]
    portrait = augment.Sample(image=img, mask=mask, kind="portraits")
    rng = np.random.default_rng(3)
    for _ in range(50):
        crop, m = augment._closeup(portrait, rng)
        ch, cw = m.shape
        assert crop.shape[:2] == m.shape and ch == int(cw * 9 / 16) and cw >= 0.55 * w - 1
        assert 2 * int(crop[0, 0, 0]) <= 0.45 * (h - ch) + 1  # its top edge is high up

    view = augment.make_view(portrait, [portrait], np.random.default_rng(8), 256, 144,
                             closeup=1.0)
    rng = np.random.default_rng(8)
    rng.random()  # make_view's choice of framing
    _, m = augment._closeup(portrait, rng)
    want = cv2.resize(cv2.resize(m.astype(np.float32), (384, 216), interpolation=cv2.INTER_AREA),
                      (256, 144), interpolation=cv2.INTER_AREA)
    assert np.allclose(view.label, want) or np.allclose(view.label, want[:, ::-1])

    fullbody = augment.Sample(image=img, mask=mask, kind="fullbody")
    views = [augment.make_view(fullbody, [fullbody], np.random.default_rng(9), 256, 144,
                               closeup=c, canvas=0.0, wide=0.0) for c in (0.0, 1.0)]
    assert np.array_equal(views[0].label, views[1].label)


def test_distractors_go_behind_the_person_and_leave_the_label() -> None:
    """Things put in a view change background pixels only: the person stays exact, and
    make_view's label is the same with or without them."""
    import augment

    rng = np.random.default_rng(5)
    label = np.zeros((216, 384), np.float32)
    label[60:, 140:250] = 1.0
    img = np.full((216, 384, 3), 128, np.uint8)
    img[label > 0] = (20, 200, 40)
    pool = [augment.Sample(image=img, mask=(label > 0).astype(np.uint8), kind="portraits")]
    changed = np.zeros(label.shape, bool)
    for k in range(8):
        out = augment._distractors(img, label, pool, rng, near=float(k % 2))
        assert out.shape == img.shape and out.dtype == np.uint8
        assert np.array_equal(out[label > 0], img[label > 0])
        changed |= np.abs(out.astype(int) - img).max(2) > 10
    assert changed[label == 0].mean() > 0.1  # they really show
    views = [augment.make_view(pool[0], pool, np.random.default_rng(9), 256, 144,
                               distract=d, canvas=0.0, wide=0.0) for d in (0.0, 1.0)]
    assert np.array_equal(views[0].label, views[1].label)
