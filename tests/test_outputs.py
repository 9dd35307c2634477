"""What the command line writes: never over an input or its own output, never through a
symlink, never a truncated file under the final name, one line for every bad file or
folder (issue 11 items 4, 5, 6, 10, 12; issue 15 items 7, 12, 13, 14, 16, 17).

A full disk and a read-only folder are real: a 1 MB tmpfs and a read-only bind mount in
a private mount namespace (``unshare``); the tests skip where namespaces are not allowed.
Without root, a read-only folder is a chmod 555 one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from livebg.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def _livebg(*args: str, prefix: str = "", timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m livebg ARGS``, after the shell command ``prefix`` when given."""
    cmd = " ".join(map(_q, [sys.executable, "-m", "livebg", *args]))
    return subprocess.run(["sh", "-c", f"{prefix} {cmd}" if prefix else cmd],
                          capture_output=True, text=True, timeout=timeout, env=ENV, check=False)


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _namespaces() -> bool:
    r = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False) \
        if shutil.which("unshare") else None
    return r is not None and r.returncode == 0


needs_ns = pytest.mark.skipif(not _namespaces(), reason="unshare -rm (mount namespaces) "
                              "not allowed here: cannot make a real full disk")


def _in_namespace(setup: str) -> str:
    """A command prefix: a private mount namespace, ``setup`` there, then the command."""
    script = setup + ' && exec "$0" "$@"'
    return f"unshare -rm sh -c {_q(script)}"


def _readonly(folder: Path):
    """(shell prefix, cleanup) that makes ``folder`` read-only for the command."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return "", lambda: folder.chmod(0o755)
    if not _namespaces():
        pytest.skip("root without mount namespaces: cannot make a read-only folder")
    f = _q(str(folder))
    return _in_namespace(f"mount --bind {f} {f} && mount -o remount,bind,ro {f} {f}"), \
        lambda: None


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in r.stderr.splitlines() if " INFO " not in ln and " WARNING " not in ln]
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert lines[0].startswith("livebg: error:"), r.stderr
    return lines[0]


def _jpeg(path: Path, w=320, h=240, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (9, 9), 3)
    cv2.imwrite(str(path), img)
    return path


# -- 11.4: never over an input, an own output, or through a symlink ----------------------

def test_matte_refuses_names_that_collide_before_writing_anything(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    _jpeg(inp / "a.jpg")
    cv2.imwrite(str(inp / "a_cutout.png"), np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "out"
    assert main(["matte", str(inp), "--out", str(out), "--cutout", "--refine", "none"]) == 2
    err = capsys.readouterr().err
    assert "would both write" in err and "a_cutout.png" in err
    assert not out.exists() or not any(out.iterdir()), "nothing is written"


def test_matte_never_replaces_an_input_even_with_overwrite(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    src = np.full((40, 60, 3), 77, np.uint8)
    cv2.imwrite(str(inp / "p.png"), src)
    before = (inp / "p.png").read_bytes()
    assert main(["matte", str(inp), "--out", str(inp), "--overwrite", "--refine", "none"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert (inp / "p.png").read_bytes() == before


def test_matte_out_naming_a_file_is_one_line(tmp_path, capsys):
    img = _jpeg(tmp_path / "a.jpg")
    (tmp_path / "taken").write_text("mine")
    assert main(["matte", str(img), "--out", str(tmp_path / "taken"), "--refine", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and "\n" not in err
    assert (tmp_path / "taken").read_text() == "mine"


def test_matte_and_run_never_write_through_a_dangling_symlink(tmp_path, capsys):
    img = _jpeg(tmp_path / "a.jpg")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").symlink_to(outside / "victim.png")
    assert main(["matte", str(img), "--out", str(out), "--refine", "none"]) == 2
    assert "symlink" in capsys.readouterr().err
    assert main(["matte", str(img), "--out", str(out), "--refine", "none", "--overwrite"]) == 0
    assert not (outside / "victim.png").exists(), "the link is replaced, not written through"
    assert not (out / "a.png").is_symlink() and cv2.imread(str(out / "a.png")) is not None
    # run --output X.mp4 where X.mp4 is a dangling symlink
    video = tmp_path / "out.mp4"
    video.symlink_to(outside / "victim.mp4")
    assert main(["run", "--input", "sample", "--output", str(video), "--frames", "2",
                 "--refine", "none"]) == 2
    assert "symlink" in capsys.readouterr().err
    assert not (outside / "victim.mp4").exists()


# -- 11.5: a full disk while writing a video -------------------------------------------

@needs_ns
def test_full_disk_while_writing_a_video_fails_and_leaves_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    prefix = _in_namespace(f"mount -t tmpfs -o size=1m none {_q(str(disk))}")
    r = _livebg("run", "--input", "sample", "--output", str(disk / "out.mp4"), "--frames",
                "400", "--refine", "none", prefix=prefix)
    line = _one_error_line(r)
    assert "disk is full" in line and "nothing was saved" in line
    # the tmpfs vanished with the namespace; on the real folder nothing was created either
    assert list(disk.iterdir()) == []


def test_video_that_cannot_be_completed_is_not_saved(tmp_path):
    """Writes that fail without a full disk (a file-size limit, RLIMIT_FSIZE): the video is
    read back before it gets its name, so the run fails and leaves no file."""
    prog = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))\n"
            "from livebg.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "out.mp4"
    r = subprocess.run([sys.executable, "-c", prog, "run", "--input", "sample", "--output",
                        str(out), "--frames", "200", "--refine", "none"], capture_output=True,
                       text=True, timeout=240, env=ENV, check=False)
    assert r.returncode == 2, r.stderr
    assert "nothing was saved" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [], "no truncated file, no temporary file"


# -- 11.6: matte goes on past a bad file ------------------------------------------------

def test_matte_skips_unreadable_files_and_does_the_rest(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    _jpeg(inp / "a.jpg", seed=1)
    good = (inp / "a.jpg").read_bytes()
    (inp / "b.jpg").write_bytes(good[: len(good) // 2])   # truncated
    (inp / "c.jpg").write_bytes(b"")                       # empty
    _jpeg(inp / "d.jpg", seed=2)
    out = tmp_path / "out"
    assert main(["matte", str(inp), "--out", str(out), "--refine", "none"]) == 1
    cap = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "d.png"]
    skipped = [ln for ln in cap.err.splitlines() if "skipped" in ln]
    assert len(skipped) == 2 and "b.jpg" in skipped[0] and "c.jpg" in skipped[1]
    assert "2 matte(s) written" in cap.out and "2 file(s) skipped" in cap.out


# -- 11.10: bad files and folders -------------------------------------------------------

def _bad_media(tmp_path) -> dict[str, Path]:
    good = cv2.imencode(".jpg", np.full((90, 160, 3), 128, np.uint8))[1].tobytes()
    files = {"zero.jpg": b"", "truncated.jpg": good[: len(good) // 2],
             "random.jpg": np.random.default_rng(0).bytes(4000),
             "text.jpg": b"not a picture\n", "text.mp4": b"not a video\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {n: tmp_path / n for n in files}


def test_bad_background_files_are_one_line(tmp_path):
    from livebg.config import Config, set_values
    from livebg.factory import make_compositor
    from livebg.stages.compose.backgrounds import BackgroundError

    for name, path in _bad_media(tmp_path).items():
        mode = "video" if name.endswith(".mp4") else "image"
        cfg = set_values(Config(), {"background.mode": mode, "background.image": str(path)})
        with pytest.raises(BackgroundError) as e:
            make_compositor(cfg)
        assert name in str(e.value) and "\n" not in str(e.value)


def test_bad_background_through_run_is_exit_2(tmp_path, capsys):
    bad = _bad_media(tmp_path)["truncated.jpg"]
    assert main(["run", "--input", "sample", "--output", "null", "--frames", "1",
                 "--refine", "none", "--background", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "truncated JPEG" in err and "Traceback" not in err


def test_truncated_jpeg_input_is_refused_without_libjpeg_noise(tmp_path):
    bad = _bad_media(tmp_path)["truncated.jpg"]
    r = _livebg("run", "--input", str(bad), "--output", "null", "--frames", "1")
    assert "truncated JPEG" in _one_error_line(r)
    assert "Premature end" not in r.stderr


@pytest.mark.parametrize("command", ["run", "demo", "matte"])
def test_read_only_output_folder_is_one_line(tmp_path, command):
    ro = tmp_path / "ro"
    ro.mkdir()
    img = _jpeg(tmp_path / "a.jpg")
    args = {"run": ["run", "--input", "sample", "--output", str(ro / "out.mp4"),
                    "--frames", "2", "--refine", "none"],
            "demo": ["demo", "--out", str(ro), "--frames", "2", "--width", "160",
                     "--height", "96", "--refine", "none"],
            "matte": ["matte", str(img), "--out", str(ro), "--refine", "none"]}[command]
    prefix, cleanup = _readonly(ro)
    try:
        line = _one_error_line(_livebg(*args, prefix=prefix))
    finally:
        cleanup()
    assert str(ro) in line and ("read-only" in line or "permission" in line), line
    assert list(ro.iterdir()) == []


def test_closed_pipe_is_a_quiet_exit(tmp_path):
    """`livebg ... | head`: the reader is gone before we write (a pipe with no reader)."""
    r_fd, w_fd = os.pipe()
    os.close(r_fd)
    try:
        p = subprocess.run([sys.executable, "-m", "livebg", "run", "--help"], stdout=w_fd,
                           stderr=subprocess.PIPE, text=True, timeout=60, env=ENV, check=False)
    finally:
        os.close(w_fd)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_eval_into_a_closed_pipe_is_quiet(tmp_path):
    data = tmp_path / "photos"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(2):
        _jpeg(data / "images" / f"p{i}.jpg", seed=i)
        cv2.imwrite(str(data / "masks" / f"p{i}.png"), np.zeros((240, 320), np.uint8))
    r_fd, w_fd = os.pipe()
    os.close(r_fd)
    try:
        p = subprocess.run([sys.executable, "-m", "livebg", "eval", str(data), "--out",
                            str(tmp_path / "e"), "-q", "--refine", "none"], stdout=w_fd,
                           stderr=subprocess.PIPE, text=True, timeout=240, env=ENV, check=False)
    finally:
        os.close(w_fd)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "Broken" not in p.stderr, \
        p.stderr


# -- 11.12: huge images are scaled down once ---------------------------------------------

def test_huge_image_is_scaled_down_and_said_once(tmp_path, caplog):
    from livebg.stages.compose.backgrounds import ImageBackground
    from livebg.stages.imagefile import MAX_SIDE
    from livebg.stages.sources import ImageSource

    big = tmp_path / "big.jpg"
    img = np.zeros((8000, 9000), np.uint8)
    img[::50] = 255
    assert cv2.imwrite(str(big), img)
    del img
    with caplog.at_level(logging.WARNING):
        src = ImageSource(big)
    assert max(src.width, src.height) == MAX_SIDE and src.width > src.height
    warned = [r for r in caplog.records if "9000x8000" in r.getMessage()]
    assert len(warned) == 1 and "scaled down" in warned[0].getMessage()
    assert src.read().image.shape[:2] == (src.height, src.width)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        bg = ImageBackground(big)
    assert max(bg._image.shape[:2]) == MAX_SIDE
    assert sum("scaled down" in r.getMessage() for r in caplog.records) == 1


# -- 15.7: the demo --------------------------------------------------------------------

def test_demo_still_is_a_frame_of_the_clip_and_speed_is_wall_time(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--frames", "12", "--width", "320",
                 "--height", "180", "--refine", "none"]) == 0
    cap = capsys.readouterr()
    assert "livebg demo: 12 frames" in cap.err
    assert "for the whole clip" in cap.out and "start-up included" in cap.out
    video = cv2.VideoCapture(str(tmp_path / "livebg-demo.mp4"))
    frames = []
    while True:
        ok, f = video.read()
        if not ok:
            break
        frames.append(f)
    panel = cv2.imread(str(tmp_path / "livebg-demo.png"))
    out_panel = panel[:, 2 * 160:].astype(int)
    diffs = [np.abs(cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA).astype(int)
                    - out_panel).mean() for f in frames]
    assert int(np.argmin(diffs)) == 6, diffs   # the middle frame of the video itself


# -- 15.12: numbers on the command line ------------------------------------------------

@pytest.mark.parametrize("argv", [["run", "--frames", "0"], ["run", "--frames", "-5"],
                                  ["demo", "--frames", "0"], ["bench", "--frames", "0"]])
def test_frame_counts_must_be_positive(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "must be 1 or more" in capsys.readouterr().err


def test_threads_zero_is_refused_like_100(capsys):
    for n in ("0", "100"):
        assert main(["run", "--input", "sample", "--output", "null", "--threads", n]) == 2
        assert "model.threads = " + n + ": must be a whole number from 1 to 64" in \
            capsys.readouterr().err


# -- 15.13: output folders -------------------------------------------------------------

def test_output_in_a_missing_folder_is_refused_not_created(tmp_path, capsys):
    target = tmp_path / "no" / "such" / "out.mp4"
    assert main(["run", "--input", "sample", "--output", str(target), "--frames", "1",
                 "--refine", "none"]) == 2
    err = capsys.readouterr().err
    assert f"the folder {target.parent} does not exist" in err
    assert not (tmp_path / "no").exists()
    assert main(["run", "--input", "sample", "--output", str(tmp_path / "no" / "frames") + "/",
                 "--frames", "1", "--refine", "none"]) == 2
    assert not (tmp_path / "no").exists()


def test_transparent_into_mp4_warns_and_points_to_alpha_formats(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert main(["run", "--input", "sample", "--output", str(tmp_path / "o.mp4"),
                     "--frames", "1", "--refine", "none", "--background", "transparent"]) == 0
    msg = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "keeps no transparency" in msg and "PNG folder" in msg and "livebg process" in msg


# -- 15.14: eval and clips never overwrite without --overwrite -------------------------

def test_eval_does_not_overwrite_its_results(tmp_path, capsys):
    data = tmp_path / "photos"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    _jpeg(data / "images" / "p.jpg")
    cv2.imwrite(str(data / "masks" / "p.png"), np.zeros((240, 320), np.uint8))
    out = tmp_path / "e"
    out.mkdir()
    (out / "eval.json").write_text("mine")
    assert main(["eval", str(data), "--out", str(out), "-q", "--refine", "none"]) == 2
    assert "eval.json exists" in capsys.readouterr().err
    assert (out / "eval.json").read_text() == "mine"
    assert main(["eval", str(data), "--out", str(out), "-q", "--refine", "none",
                 "--overwrite"]) == 0
    assert json.loads((out / "eval.json").read_text())["kind"] == "photos"


def test_clips_do_not_overwrite_clips(tmp_path, portraits, capsys):
    out = tmp_path / "clips"
    args = ["clips", str(portraits), str(out), "--n", "1", "--size", "64x48", "--still", "1",
            "--move", "2"]
    assert main(args) == 0
    meta = next(out.glob("*/meta.json"))
    meta.write_text('{"mine": 1}')
    assert main(args) == 2
    assert "already holds 1 clip" in capsys.readouterr().err
    assert meta.read_text() == '{"mine": 1}'
    assert main([*args, "--overwrite"]) == 0 and "mine" not in meta.read_text()


# -- 15.16 and 15.17: help and the eval table ------------------------------------------

def _sub(name):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {o: a for a in sub.choices[name]._actions for o in a.option_strings}


def test_help_tells_every_output_and_lists_only_what_works():
    assert "overlay" in _sub("run")["--output"].help
    for cmd in ("demo", "bench"):
        for flag in ("--frames", "--width", "--height"):
            assert _sub(cmd)[flag].help, (cmd, flag)
    assert _sub("run")["--frames"].help
    assert "--temporal" not in _sub("matte") and "--background" not in _sub("matte")
    assert "--overwrite" not in _sub("bench")
    assert "--overwrite" in _sub("clips")


def test_eval_table_labels_the_median_and_histogram_counts_are_whole():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from livebg.eval.evaluate import EvalResult, format_table
    from livebg.eval.report import band_histogram

    items = [{"name": f"p{i}", "iou": 0.9, "boundary_iou": 0.7, "mae": 0.01,
              "band_mae": 0.05 + 0.01 * i, "ms": ms} for i, ms in enumerate([900.0, 10.0, 12.0])]
    summary = {"iou": 0.9, "boundary_iou": 0.7, "mae": 0.01, "band_mae": 0.06, "ms": 12.0,
               "items": 3, "frames": 3}
    result = EvalResult(kind="photos", data="x", items=items, summary=summary, settings={},
                        worst=[])
    lines = format_table(result).splitlines()
    mean = next(ln for ln in lines if ln.startswith("mean"))
    median = next(ln for ln in lines if ln.startswith("median"))
    assert mean.split()[-1] == "-" and median.split()[-1] == "12.0"
    fig, ax = plt.subplots()
    band_histogram(ax, items)
    fig.canvas.draw()
    ticks = ax.get_yticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    plt.close(fig)
