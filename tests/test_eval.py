"""``livebg eval`` and ``livebg clips`` end to end, on dev photos and a small generated clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from livebg.eval import evaluate

from livebg.eval import report
from livebg.cli import main

PHOTO_KEYS = {"iou", "boundary_iou", "mae", "band_mae", "ms"}
CLIP_KEYS = PHOTO_KEYS | {"dtssd", "flicker", "flicker_still", "lag", "moving_iou",
                          "moving_boundary_iou", "ghost", "ghost_max", "ghost_all"}


@pytest.fixture
def photos(tmp_path, portraits):
    """Three dev photos in their own images/ + masks/ folder."""
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for img in sorted((portraits / "images").glob("*.jpg"))[:3]:
        shutil.copy(img, root / "images" / img.name)
        shutil.copy(portraits / "masks" / f"{img.stem}.png", root / "masks" / f"{img.stem}.png")
    return root


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, portraits_module):
    """One short generated clip (160x96, 4 still + 8 moving + 4 still frames)."""
    out = tmp_path_factory.mktemp("clips")
    rc = main(["clips", str(portraits_module), str(out), "--n", "1", "--size", "160x96",
               "--still", "4", "--move", "8", "--jpeg", "80"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def portraits_module():
    from conftest import portraits_dir

    path = portraits_dir()
    if path is None:
        pytest.skip("dev photos not found")
    return path


def test_eval_photos_end_to_end(photos, tmp_path, capsys):
    out, alphas = tmp_path / "report", tmp_path / "alphas"
    rc = main(["eval", str(photos), "--refine", "none", "--out", str(out),
               "--save-alpha", str(alphas), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mean" in text and "IoU" in text and "bIoU" in text
    data = json.loads((out / "eval.json").read_text())
    assert data["kind"] == "photos"
    assert data["settings"]["refine"] == "none"
    assert PHOTO_KEYS <= set(data["summary"])
    assert len(data["items"]) == 3
    for item in data["items"]:
        assert PHOTO_KEYS <= set(item)
        assert 0.5 < item["iou"] <= 1.0
        image = cv2.imread(str(photos / "images" / f"{item['name']}.jpg"))
        alpha = cv2.imread(str(alphas / f"{item['name']}.png"), cv2.IMREAD_UNCHANGED)
        assert alpha.dtype == np.uint8 and alpha.shape == image.shape[:2]
    if report.available():
        assert (out / "eval.png").stat().st_size > 10_000
    else:
        assert "pip install" in text


def test_eval_clip_end_to_end(clip_dir, tmp_path, capsys):
    out, alphas = tmp_path / "report", tmp_path / "alphas"
    rc = main(["eval", str(clip_dir), "--refine", "none", "--temporal", "on", "--out",
               str(out), "--save-alpha", str(alphas), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "dtSSD%" in text and "temporal motion" in text
    data = json.loads((out / "eval.json").read_text())
    assert data["kind"] == "clips" and data["settings"]["temporal"] == "motion"
    assert CLIP_KEYS <= set(data["summary"])
    (item,) = data["items"]
    assert item["frames"] == 16
    assert len(item["per_frame"]["boundary_iou"]) == 16
    assert len(item["per_frame"]["ghost"]) == 16 and "ghost%" in text
    assert 0.0 <= item["ghost"] <= item["ghost_all"] <= 1.0
    assert data["summary"]["lag"] is not None and data["summary"]["lag"] <= 1.0
    (clip,) = [d for d in clip_dir.iterdir() if d.is_dir()]
    written = sorted((alphas / clip.name).glob("*.png"))
    assert [p.name for p in written] == sorted(p.name for p in (clip / "frames").glob("*.png"))
    assert cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED).shape == (96, 160)


def test_eval_temporal_off_and_limit(clip_dir, tmp_path, capsys):
    out = tmp_path / "r"
    rc = main(["eval", str(clip_dir), "--refine", "none", "--set", "temporal.mode=off",
               "--out", str(out), "--limit", "1", "-q"])
    assert rc == 0
    assert json.loads((out / "eval.json").read_text())["settings"]["temporal"] == "off"


def test_clip_without_meta_finds_the_moving_frames(clip_dir, tmp_path):
    (clip,) = [d for d in clip_dir.iterdir() if d.is_dir()]
    bare = tmp_path / "bare"
    shutil.copytree(clip / "frames", bare / "frames")
    shutil.copytree(clip / "masks", bare / "masks")
    kind, items = evaluate.find_dataset(tmp_path)
    assert kind == "clips" and items == [bare]
    loaded = evaluate.load_clip(bare)
    truth = json.loads((clip / "meta.json").read_text())["moving"]
    assert loaded.moving == truth


def test_report_missing_matplotlib_is_one_line(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report, "available", lambda: False)
    rc = main(["eval", str(photos), "--refine", "none", "--temporal", "off", "--out",
               str(tmp_path / "o"), "--limit", "1", "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "livebg[plot]" in text
    assert not (tmp_path / "o" / "eval.png").exists()
    assert (tmp_path / "o" / "eval.json").is_file()


def test_bad_data_folder_is_a_user_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "-q"]) == 2
    assert "livebg clips" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_all_dev_photos(portraits, tmp_path, capsys):
    """The whole dev set, refinement as configured by default."""
    rc = main(["eval", str(portraits), "--out", str(tmp_path), "-q"])
    assert rc == 0
    data = json.loads((tmp_path / "eval.json").read_text())
    assert data["summary"]["items"] == 60
    assert data["summary"]["iou"] > 0.8


@pytest.mark.slow
def test_eval_sample_scores_ghosts_against_the_true_alpha(tmp_path, capsys):
    """`livebg eval sample`: the built-in clip against its true alpha. An old hold froze
    the net's haze (ghost 0.20 of the background on average with the stage on, 0.03
    off); now the stage on leaves about half of what off leaves (1.60 % against 3.28 %
    on 2026-12-02: the background memory waits for 10 sure frames, so that it never
    clears a still person, and the net's own cup-rim false positive stays)."""
    scores = {}
    for mode in ("on", "off"):
        rc = main(["eval", "sample", "--temporal", mode, "--out", str(tmp_path / mode), "-q"])
        assert rc == 0
        data = json.loads((tmp_path / mode / "eval.json").read_text())
        (item,) = data["items"]
        assert item["name"] == "sample" and item["frames"] == 150
        scores[mode] = item
    assert "ghost%" in capsys.readouterr().out
    assert scores["on"]["ghost"] < 0.6 * scores["off"]["ghost"]
    assert scores["on"]["ghost"] < 0.02
    assert scores["on"]["iou"] >= scores["off"]["iou"]


def test_default_out_is_one_folder_per_data_set(tmp_path, monkeypatch, capsys):
    """README walk: the four eval commands in a row must not refuse each other's output."""
    from livebg.cli import default_eval_out

    assert default_eval_out("sample") == Path("livebg-eval/sample")
    assert default_eval_out("clips/") == Path("livebg-eval/clips")
    assert default_eval_out("../shared/data/portraits") == Path("livebg-eval/portraits")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "livebg-eval" / "clips").mkdir(parents=True)
    (tmp_path / "livebg-eval" / "clips" / "eval.json").write_text("{}")
    (tmp_path / "livebg-eval" / "sample").mkdir()
    (tmp_path / "livebg-eval" / "sample" / "eval.json").write_text("{}")
    assert main(["eval", "sample", "-q"]) == 2  # the same set again still asks
    assert "livebg-eval/sample/eval.json exists" in capsys.readouterr().err


def test_default_out_folder_is_made_in_a_fresh_folder(tmp_path, monkeypatch, capsys):
    """README walk: in a fresh folder `livebg eval DATA` must not ask for ./livebg-eval."""
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "empty", "-q"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" not in err and "livebg clips" in err, err
    assert (tmp_path / "livebg-eval").is_dir()
