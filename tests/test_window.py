"""The preview window (``--output window``) on a real X server (Xvfb), with real screenshots.

The window is OpenCV's HighGUI (the Qt build of the opencv-python wheel). The
engine opens sinks on its main thread and writes from its output thread; a
window that only worked from the thread that created it showed black and
printed ``No such method GuiReceiver::showImage`` for every frame. Each test
runs the window in a subprocess (cv2's Qt must not share a process with the
tray tests' PySide6) and looks at the screen with ImageMagick's ``import``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from _xvfb import ARTIFACTS, REPO, Xvfb, wait_until

TITLE = "livebg preview"


@pytest.fixture
def xvfb():
    x = Xvfb()
    yield x
    x.close()


def _env(xvfb, extra: dict | None = None) -> dict:
    env = xvfb.env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **(extra or {})}


def _centre(image: np.ndarray, half: int = 20) -> np.ndarray:
    h, w = image.shape[:2]
    return image[h // 2 - half:h // 2 + half, w // 2 - half:w // 2 + half].astype(np.float32)


def _shot_showing_a_picture(xvfb, path, timeout: float = 120.0) -> np.ndarray:
    """The window's screenshot once its centre shows a picture (bright and textured).

    A window that is mapped but not yet repainted is black: under load 4 one capture
    right after the 30th frame was (CI, 2026-12-02). Fails after ``timeout`` seconds.
    """
    def shot():
        image = cv2.imread(str(xvfb.screenshot(path, TITLE)))
        if image is None:
            return None
        c = _centre(image)
        return (image,) if c.mean() > 15 and c.std() > 8 else None

    (image,) = wait_until(shot, timeout, "the window to show a picture", 0.5)
    return image


# Opens the sink on the main thread and writes from another, as the engine does.
WRITER = textwrap.dedent("""
    import sys, threading, time
    from livebg.stages.sources import SampleSource
    from livebg.sinks.window import WindowSink

    src = SampleSource(width=640, height=360, count=1)
    frame = src.read().image
    src.close()
    sink = WindowSink(640, 360)
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            sink.write(frame)
            time.sleep(1 / 30)

    t = threading.Thread(target=feed, name="livebg-output")
    t.start()
    deadline = time.monotonic() + 60
    while sink.shown < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    print("shown", sink.shown, flush=True)
    sys.stdin.readline()
    stop.set()
    t.join()
    sink.close()
    print("closed", flush=True)
""")


@pytest.mark.timeout(180)
def test_window_shows_frames_written_from_another_thread(xvfb, tmp_path):
    from livebg.stages.sources import SampleSource

    src = SampleSource(width=640, height=360, count=1)
    frame = src.read().image
    src.close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER], env=_env(xvfb), cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line[:1] == ["shown"] and int(line[1]) >= 10, (line, proc.stderr.read())
        # What is on the screen is the frame itself, not a black or empty window.
        shot = _shot_showing_a_picture(xvfb, ARTIFACTS / "window-thread.png")
        assert shot.shape[:2] == (360, 640), "the window has the frame's size"
        assert np.abs(_centre(shot) - _centre(frame)).mean() < 8
        assert np.abs(shot.astype(np.float32) - frame).mean() < 8
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "closed"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert "No such method" not in err and "invokeMethod" not in err, err[-2000:]
    assert not xvfb.window_exists(TITLE), "close() takes the window down"


def test_window_without_display_is_one_clear_error(monkeypatch):
    from livebg.sinks.base import SinkError
    from livebg.sinks.window import WindowSink

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError, match="no display for a preview window.*--output null"):
        WindowSink(640, 360)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_run_sample_to_window_shows_the_output(xvfb, tmp_path):
    """``livebg run --input sample --output window``, as the README says, on a real X display."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    env = _env(xvfb, {"XDG_RUNTIME_DIR": str(run_dir),
                      "XDG_CONFIG_HOME": str(tmp_path / "config")})
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "livebg", "run", "--input", "sample",
                                 "--output", "window", "--set", "camera.width=640",
                                 "--set", "camera.height=360"], env=env, cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        def frames() -> int:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            r = subprocess.run([sys.executable, "-m", "livebg", "ctl", "status", "--json"],
                               check=False, env=env, capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0:
                return 0
            import json

            return json.loads(r.stdout).get("frames") or 0

        wait_until(lambda: frames() >= 30, 300, "30 frames through the daemon", 1.0)
        # The sample's person is in the centre: bright and textured, not black and
        # not the flat grey "starting" card.
        shot = _shot_showing_a_picture(xvfb, ARTIFACTS / "window-run.png")
        xvfb.screenshot(ARTIFACTS / "window-run-screen.png")
        assert shot.shape[:2] == (360, 640)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert "No such method" not in text and "invokeMethod" not in text, text[-3000:]
