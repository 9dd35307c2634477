"""Tests for the shipped segmentation models in models/ (see models/README.md).

The fast test checks the committed .onnx files against models/manifest.json
and runs them on one real photo. The slow, network test rebuilds them with
models/convert.py and checks the rebuild is byte-identical.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
PHOTO = "ccp_0001"  # a full-body street photo; the person fills the middle of the frame


def _manifest() -> dict[str, Any]:
    return json.loads((MODELS / "manifest.json").read_text())


def _data_dir() -> Path:
    return Path(os.environ.get("LIVEBG_TEST_DATA", REPO.parent / "shared" / "data" / "portraits"))


def _load_photo(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 NCHW [1,3,H,W] RGB in [0,1] stretched to the net size,
    ground-truth mask bool [h,w] at photo size); skips if the dev data is absent."""
    cv2 = pytest.importorskip("cv2")
    data = _data_dir()
    image_path, mask_path = data / "images" / f"{PHOTO}.jpg", data / "masks" / f"{PHOTO}.png"
    if not (image_path.is_file() and mask_path.is_file()):
        pytest.skip(f"dev photos not found at {data} (set LIVEBG_TEST_DATA to the portraits "
                    "folder holding images/ and masks/)")
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    small = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
    return rgb.transpose(2, 0, 1)[None], mask


@pytest.mark.parametrize("key", ["square", "landscape"])
def test_committed_model_matches_manifest_and_runs(key: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    entry = _manifest()["models"][key]
    path = MODELS / entry["onnx"]["file"]
    data = path.read_bytes()
    assert len(data) == entry["onnx"]["size"]
    assert hashlib.sha256(data).hexdigest() == entry["onnx"]["sha256"]

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for got, want in [(sess.get_inputs(), entry["inputs"]), (sess.get_outputs(), entry["outputs"])]:
        assert [(a.name, a.shape, a.type) for a in got] == [
            (w["name"], w["shape"], "tensor(float)") for w in want]
    assert [w["name"] for w in entry["inputs"]] == ["image"]
    assert [w["name"] for w in entry["outputs"]] == ["probability", "features"]

    _, _, height, width = entry["inputs"][0]["shape"]
    image, mask = _load_photo(height, width)
    prob, feats = sess.run(["probability", "features"], {"image": image})
    assert prob.dtype == np.float32 and list(prob.shape) == [1, 1, height, width]
    assert list(feats.shape) == entry["outputs"][1]["shape"]
    assert np.isfinite(feats).all()
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    # Sanity of the layout and colour order: the person is found (IoU 0.91-0.92 when built).
    cv2 = pytest.importorskip("cv2")
    pred = cv2.resize(prob[0, 0], (mask.shape[1], mask.shape[0])) > 0.5
    assert (pred & mask).sum() / (pred | mask).sum() > 0.8


@pytest.mark.slow
@pytest.mark.network
def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    for module in ("tflite", "onnx"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"models/convert.py needs the '{module}' package (dev-only dependency)")
    result = subprocess.run([sys.executable, str(MODELS / "convert.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    converted = {k: e for k, e in _manifest()["models"].items() if "tflite" in e}
    for name in [*(e["onnx"]["file"] for e in converted.values()), "LICENSE-mediapipe.txt"]:
        assert (tmp_path / name).read_bytes() == (MODELS / name).read_bytes(), name
    # The manifest also holds livebg's own net (written by models/train.py, not convert.py).
    rebuilt = json.loads((tmp_path / "manifest.json").read_text())
    assert rebuilt == {**_manifest(), "models": converted}


def test_livebg_net_matches_manifest_and_segments_the_sample() -> None:
    """livebg's own net (models/train.py): the committed file is the one the manifest records,
    with its training record, is in the wheel, and finds the person in the shipped sample."""
    cv2 = pytest.importorskip("cv2")
    from livebg.stages.segment import Segmenter

    entry = _manifest()["models"]["livebg"]
    data = (MODELS / entry["onnx"]["file"]).read_bytes()
    assert len(data) == entry["onnx"]["size"]
    assert hashlib.sha256(data).hexdigest() == entry["onnx"]["sha256"]
    trained = entry["trained"]
    data_manifest = (MODELS / trained["data_manifest"]).read_bytes()
    assert hashlib.sha256(data_manifest).hexdigest() == trained["data_manifest_sha256"]
    assert trained["options"]["seed"] and trained["epoch"] >= 1 and trained["wall_s"] > 0
    assert len(trained["commit"]) >= 40 and "Apache-2.0" in entry["license"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"models/{entry["onnx"]["file"]}" = "livebg/models/{entry["onnx"]["file"]}"' in pyproject

    image = cv2.imread(str(REPO / "livebg" / "data" / "astronaut.jpg"))
    truth = cv2.imread(str(REPO / "livebg" / "data" / "astronaut_alpha.png"),
                       cv2.IMREAD_GRAYSCALE) > 127
    seg = Segmenter("livebg", features=True).segment(image)
    assert seg.probability.shape == (144, 256) and seg.features.shape == (72, 128, 16)
    pred = cv2.resize(seg.probability, truth.shape[::-1]) > 0.5
    # The landscape net scores 0.937 here and the shipped livebg net 0.94 or more.
    assert (pred & truth).sum() / (pred | truth).sum() > 0.9
