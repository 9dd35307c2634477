"""The command line end to end, on the built-in sample and real photos."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from livebg.cli import background_overrides, main


def test_demo_writes_video_and_still(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--frames", "24", "--width", "640",
                 "--height", "360", "--refine", "none"]) == 0
    out = capsys.readouterr().out
    video, still = tmp_path / "livebg-demo.mp4", tmp_path / "livebg-demo.png"
    assert f"video: {video}" in out and f"still: {still}" in out and "frames/s" in out
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == 24 and frames[0].shape == (360, 640, 3)
    panel = cv2.imread(str(still))
    assert panel.shape == (180, 960, 3)  # input | matte | output, halved
    # A second run never overwrites the first: it picks a new name.
    assert main(["demo", "--out", str(tmp_path), "--frames", "4", "--width", "320",
                 "--height", "180", "--refine", "none"]) == 0
    assert (tmp_path / "livebg-demo-1.mp4").exists()


def test_run_file_to_file_changes_only_the_background(tmp_path):
    """The person stays, the background changes: compare with the sample's own cut-out."""
    from livebg.stages.sources import SampleSource

    src = SampleSource(width=640, height=360, count=10)
    inp = tmp_path / "in.avi"
    from livebg.sinks.files import VideoFileSink

    with VideoFileSink(inp, 640, 360, 30) as sink:
        for i in range(10):
            sink.write(src.render(i))
    out_dir = tmp_path / "frames"
    rc = main(["run", "--input", str(inp), "--output", f"{out_dir}/", "--background", "#0000ff",
               "--refine", "none"])
    assert rc == 0
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) == 10
    out = cv2.imread(str(pngs[5])).astype(int)
    frame = src.render(5).astype(int)
    # Ground truth of the sample: where its cut-out is.
    person = src.true_alpha(5)
    bg_px, fg_px = person < 0.02, person > 0.98
    blue = np.array([255, 0, 0])
    assert np.abs(out[bg_px] - blue).mean() < 25, "background must become the colour"
    assert np.abs(out[fg_px] - frame[fg_px]).mean() < 25, "the person must stay"


def test_matte_writes_one_png_per_photo(tmp_path, portraits):
    images = sorted((portraits / "images").glob("*.jpg"))[:3]
    inp = tmp_path / "in"
    inp.mkdir()
    for p in images:
        (inp / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "out"
    assert main(["matte", str(inp), "--out", str(out), "--cutout", "--refine", "none"]) == 0
    for p in images:
        a = cv2.imread(str(out / f"{p.stem}.png"), cv2.IMREAD_UNCHANGED)
        src = cv2.imread(str(p))
        assert a.dtype == np.uint8 and a.shape == src.shape[:2]
        gt = cv2.imread(str(portraits / "masks" / f"{p.stem}.png"), 0) > 127
        iou = ((a > 127) & gt).sum() / ((a > 127) | gt).sum()
        assert iou > 0.7
        cut = cv2.imread(str(out / f"{p.stem}_cutout.png"), cv2.IMREAD_UNCHANGED)
        assert cut.shape == src.shape[:2] + (4,) and (cut[..., 3] == a).all()
    # Existing mattes are not replaced without --overwrite.
    assert main(["matte", str(inp), "--out", str(out), "--refine", "none"]) == 2
    assert main(["matte", str(inp), "--out", str(out), "--refine", "none", "--overwrite"]) == 0


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["matte", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("livebg: error:") and "nope.jpg" in err and "\n" not in err
    assert main(["demo", "--out", str(tmp_path), "--set", "background.blur=7"]) == 2
    err = capsys.readouterr().err.strip()
    assert "background.blur = 7" in err and "\n" not in err


def test_background_flag():
    assert background_overrides("blur:0.8") == {"background.mode": "blur", "background.blur": "0.8"}
    assert background_overrides("#112233")["background.mode"] == "color"
    assert background_overrides("a.png")["background.mode"] == "image"
    assert background_overrides("a.mp4")["background.mode"] == "video"


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "livebg", "--version"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("livebg ")


def test_common_flags_exist_on_every_processing_command():
    """The README lists these as common options: each command that processes frames has them."""
    from livebg.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    # Only where they act: photos have no background or temporal stage, bench writes no file.
    absent = {"matte": {"--background", "--temporal"}, "bench": {"--overwrite"}}
    for name in ("run", "demo", "matte", "bench", "eval"):
        flags = {o for a in sub.choices[name]._actions for o in a.option_strings}
        for flag in {"--config", "--background", "--model", "--refine", "--temporal",
                     "--threads", "--set", "--overwrite"} - absent.get(name, set()):
            assert flag in flags, f"livebg {name} lacks {flag}"
        assert not absent.get(name, set()) & flags, f"livebg {name} lists a flag it ignores"


def test_run_leaves_at_once_when_a_stage_thread_lingers():
    """A stage thread that did not stop in time must not meet the interpreter's
    finalisation (one such exit was a segfault): `livebg run` leaves with its status."""
    code = ("import threading, time\n"
            "from livebg import cli\n"
            "threading.Thread(target=time.sleep, args=(60,), name='livebg-matte',"
            " daemon=True).start()\n"
            "cli._setup_logging('info')\n"
            "cli._leave_quickly(3)\n"
            "print('returned')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 3, p.stderr
    assert "returned" not in p.stdout
    assert "leaving with livebg-matte still running" in p.stderr


def test_ctl_takes_its_flags_before_the_file_too(tmp_path, capsys):
    """`ctl snapshot --overwrite FILE` (flag first) reaches the daemon's socket, as
    `ctl snapshot FILE --overwrite` does; argparse alone refused the file name."""
    sock = str(tmp_path / "none.sock")
    for argv in (["ctl", "snapshot", "--overwrite", str(tmp_path / "s.png"), "--socket", sock],
                 ["ctl", "snapshot", str(tmp_path / "s.png"), "--overwrite", "--socket", sock]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "not running" in err and "unrecognized" not in err, err
    with pytest.raises(SystemExit):
        main(["ctl", "status", "--bogus"])
