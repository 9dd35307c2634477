"""The daemon with real OpenCV sources, real threads, real files and signals.

What cannot be covered here: a real v4l2loopback device and a real webcam
(the test machine has neither). The virtual-camera path is tested up to the
device: the on-demand watcher follows a regular file standing in for the
device node, opened and closed by another process (inotify + /proc scan are
the same code); pyvirtualcam's own writing is not exercised.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import daemon_cfg as base_cfg
from conftest import start_thread as start
from conftest import wait_for, write_sample_clip

from livebg.engine import capture as capture_mod
from livebg.engine import ondemand as ondemand_mod
from livebg.engine.capture import PacedSource
from livebg.config import set_value
from livebg.engine.daemon import Daemon
from livebg.engine.frames import even_size, fit_frame, make_card
from livebg.system.devices import OpenWatcher, holders
from livebg.sinks.null import NullSink
from livebg.stages.sources import SourceError, VideoFileSource

W, H = 320, 180


@pytest.fixture(autouse=True)
def _private(private_dirs):
    """Every test gets its own runtime dir and config home (conftest.private_dirs)."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A real 320x180 MJPEG clip of the built-in sample, 30 frames."""
    return write_sample_clip(tmp_path_factory.mktemp("clip") / "clip.avi", W, H, 30)



class RecordingSink(NullSink):
    """A null sink that remembers when each frame came and its shape."""

    def __init__(self, width, height):
        super().__init__(width, height)
        self.times: list[float] = []
        self.shapes: set = set()
        self.closed = False

    def write(self, image):
        super().write(image)
        self.times.append(time.monotonic())
        self.shapes.add(image.shape)

    def close(self):
        self.closed = True

    def describe(self):
        return "recording"




def test_file_through_daemon_into_file_sink(clip, tmp_path):
    out = tmp_path / "out.avi"
    cfg = base_cfg(clip, **{"output.sinks": [str(out)], "background.mode": "color"})
    d = Daemon(cfg, control=False, watch_config=False)
    assert not d.live  # a file to a file is a batch: every frame, then the end
    assert d.run() == 0
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 30
    assert d.stats.frames == 30 and d.stats.dropped == 0
    assert "composite_pair" not in d.stats.summary(), "no sink wants alpha: no extra work"


def test_blurred_output_and_transparent_overlay_at_once(clip, tmp_path, monkeypatch):
    """Background blur into PNG frames and the overlay at once: the PNGs are the BGR
    blurred-background output, the overlay gets BGRA frames whose alpha is the matte."""
    from livebg.factory import make_processor
    from livebg.sinks.overlay import OverlaySink

    # As if a page watched (a batch run has no time to connect one): the overlay
    # asks for its cut-out only then (tests/test_overlay.py shows both cases).
    monkeypatch.setattr(OverlaySink, "wants_alpha", property(lambda self: True))

    n = 8
    out = tmp_path / "frames"
    cfg = base_cfg(clip, **{"output.sinks": [f"{out}/", "overlay"], "overlay.port": 0,
                            "background.mode": "blur"})
    d = Daemon(cfg, realtime=False, max_frames=n, control=False, watch_config=False)
    assert d.run() == 0
    overlay = next(s for s in d.sinks if isinstance(s, OverlaySink))
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == n and overlay.frames == n
    assert "composite_pair" in d.stats.summary()
    assert overlay.last_frame is d.output.last_alpha
    # The same frames through a fresh processor, in order, give the same mattes.
    proc = make_processor(cfg, W, H)
    with VideoFileSource(clip) as src:
        for i in range(n):
            image = src.read().image
            alpha = proc.alpha(image)
            want_bgr, want_bgra = proc.compose_outputs(image, alpha, with_alpha=True)
            png = cv2.imread(str(pngs[i]), cv2.IMREAD_UNCHANGED)
            assert png.shape == (H, W, 3)
            assert np.abs(png.astype(int) - want_bgr).max() <= 2, i
    assert want_bgra.shape == (H, W, 4)
    got = overlay.last_frame
    assert got.shape == (H, W, 4) and got.dtype == np.uint8
    matte = np.round(alpha * 255).astype(int)
    assert (matte == 0).mean() > 0.3 and (matte == 255).mean() > 0.05, "a real matte"
    assert np.abs(got[..., 3].astype(int) - matte).max() <= 1
    # Where the person is, the overlay shows the frame; the PNG's background is blurred.
    person, bg = matte == 255, matte == 0
    assert np.abs(got[..., :3][person].astype(int) - image[person]).max() <= 2
    assert np.abs(png[bg].astype(int) - image[bg]).mean() > 2


class FlakySource:
    """A real paced video file that can be 'unplugged': reads fail, reopening fails."""

    def __init__(self, clip, plug, size=None):
        self.plug = plug
        if not plug["in"]:
            raise SourceError("camera: cannot open it (unplugged)")
        self.src = PacedSource(VideoFileSource(clip, loop=True))
        self.width, self.height, self.fps = self.src.width, self.src.height, 30.0
        self.size = size

    def read(self):
        if not self.plug["in"]:
            if self.plug.get("mode") == "raise":
                raise OSError("device gone")
            return None
        frame = self.src.read()
        if self.size and frame is not None:
            frame = type(frame)(cv2.resize(frame.image, self.size), frame.timestamp, frame.index)
        return frame

    def describe(self):
        return "flaky"

    def close(self):
        self.src.close()


@pytest.mark.parametrize("mode", ["none", "raise"])
def test_vanishing_source_is_reopened_while_output_keeps_coming(clip, mode):
    plug = {"in": True, "mode": mode, "opens": 0}
    sinks: list[RecordingSink] = []

    def factory(cfg, live):
        plug["opens"] += 1
        # After the first reopen the 'camera' gives another size: it is fitted.
        return FlakySource(clip, plug, size=(640, 360) if plug["opens"] > 1 else None)

    d = Daemon(base_cfg(clip), realtime=True, control=False, watch_config=False,
               source_factory=factory,
               sink_factory=lambda c, w, h, f: sinks.append(RecordingSink(w, h)) or sinks)
    t = start(d)
    try:
        assert wait_for(lambda: d.stats.frames >= 10, 20.0)
        sink = sinks[0]
        plug["in"] = False
        assert wait_for(lambda: d.state() == "unavailable", 20.0)
        frames_before = d.stats.frames
        t0 = time.monotonic()
        # Fill-in frames keep coming while the camera is away (their rate is the
        # bench's business, not this test's).
        assert wait_for(lambda: len([x for x in sink.times if x > t0]) >= 20, 30.0)
        assert d.status()["camera"]["problem"]
        plug["in"] = True
        assert wait_for(lambda: d.stats.frames >= frames_before + 10, 15.0)
        assert d.state() == "running" and plug["opens"] >= 2
        assert sink.shapes == {(H, W, 3)}, "the output size never changes"
    finally:
        d.stop()
        t.join(2)
    assert not t.is_alive() and sinks[0].closed


def test_camera_absent_at_start_is_retried(clip, monkeypatch):
    """A camera input that cannot be opened does not stop the daemon: it shows a card."""
    plug = {"in": False}
    cfg = base_cfg(clip, **{"input": "camera", "camera.width": 321, "camera.height": 181})
    sinks: list[RecordingSink] = []
    d = Daemon(cfg, realtime=True, control=False, watch_config=False,
               source_factory=lambda c, live: FlakySource(clip, plug),
               sink_factory=lambda c, w, h, f: sinks.append(RecordingSink(w, h)) or sinks)
    t = start(d)
    try:
        assert wait_for(lambda: sinks and len(sinks[0].times) >= 5, 20)
        assert d.size == (320, 180)  # widths and heights stay even
        assert d.state() == "unavailable"
        plug["in"] = True
        assert wait_for(lambda: d.stats.frames >= 5, 15)
    finally:
        d.stop()
        t.join(2)


def test_reload_applies_good_changes_and_keeps_old_on_bad(clip, tmp_path, caplog):
    path = tmp_path / "config.yaml"
    path.write_text("background:\n  blur: 0.5\n")
    opens = []

    def factory(cfg, live):
        opens.append(cfg.camera.fps)
        return PacedSource(VideoFileSource(clip, loop=True))

    d = Daemon(base_cfg(clip), config_path=path, realtime=True, control=False,
               overrides={"input": str(clip), "output.sinks": "[null]", "refine.mode": "none",
                          "model.name": "landscape"},
               source_factory=factory)
    t = start(d)
    try:
        assert wait_for(lambda: d.stats.frames >= 5, 20.0)
        seg = d.processor.segmenter
        comp = d.processor.compositor
        # A bad value: logged with file, key and what is allowed; the old config stays.
        path.write_text("background:\n  blur: 3\n")
        assert wait_for(lambda: any(str(path) in r.message and "background.blur = 3" in r.message
                                    and "from 0 to 1" in r.message for r in caplog.records), 20.0)
        assert d.cfg.background.blur == 0.5 and d.processor.compositor is comp
        # A good one: applied; only the compositor is rebuilt.
        frames = d.stats.frames
        path.write_text("background:\n  blur: 0.9\n")
        assert wait_for(lambda: d.cfg.background.blur == 0.9, 20.0)
        assert d.processor.compositor is not comp and d.processor.segmenter is seg
        assert wait_for(lambda: d.stats.frames > frames + 5)
        assert len(opens) == 1, "a background change does not reopen the source"
        # A camera change reopens the source.
        path.write_text("background:\n  blur: 0.9\ncamera:\n  fps: 15\n")
        assert wait_for(lambda: len(opens) == 2 and opens[-1] == 15, 20.0)
        # The command-line overrides survive reloads.
        assert d.cfg.output.sinks == ["null"]
    finally:
        d.stop()
        t.join(2)


def test_sighup_reloads_and_sigterm_stops_cleanly(clip, tmp_path, private_dirs):
    env = {**os.environ, "XDG_RUNTIME_DIR": str(private_dirs),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    p = subprocess.Popen([sys.executable, "-m", "livebg", "run", "--input", str(clip),
                          "--output", "null", "--realtime", "--refine", "none"],
                         stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    ready = threading.Event()

    def reader():
        for line in p.stderr:
            lines.append(line)
            if "running:" in line:
                ready.set()

    threading.Thread(target=reader, daemon=True).start()
    try:
        assert ready.wait(30), "".join(lines)
        sock = private_dirs / "livebg" / "control.sock"
        assert sock.exists()
        p.send_signal(signal.SIGHUP)  # reload: the file is absent, nothing changes
        assert wait_for(lambda: any("configuration unchanged" in x for x in lines), 30)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)  # how fast is the soak's and the bench's business
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 0, "".join(lines)
    assert any("stopped" in x for x in lines), "a clean shutdown, not a kill"
    assert not sock.exists(), "the control socket is removed on exit"


class ConsumerSink(RecordingSink):
    """Stands in for the virtual camera: its 'device node' is a regular file."""

    def __init__(self, width, height, device):
        super().__init__(width, height)
        self.on_demand_device = str(device)


def _open_in_child(path: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c",
                          f"import sys, time; f = open({str(path)!r}); print('open', flush=True); "
                          "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "open"
    return p


def test_open_watcher_follows_another_process(tmp_path):
    """inotify + /proc: the watcher sees a process open and close a file, ours excluded."""
    node = tmp_path / "video10"
    node.write_bytes(b"")
    mine = open(node)  # our own descriptor never counts
    try:
        with OpenWatcher(node, rescan=5.0) as w:
            assert w.consumers == []
            child = _open_in_child(node)
            try:
                assert wait_for(lambda: [h.pid for h in w.consumers] == [child.pid], 20.0)
                assert holders(node, exclude={os.getpid()})[0].name.startswith("python")
            finally:
                child.kill()
                child.wait()
            assert wait_for(lambda: w.consumers == [], 20.0)
    finally:
        mine.close()


def test_on_demand_pauses_without_consumers_and_resumes_on_open(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(ondemand_mod, "IDLE_GRACE", 0.3)
    node = tmp_path / "video10"
    node.write_bytes(b"")
    opens = []

    def factory(cfg, live):
        opens.append(time.monotonic())
        return PacedSource(VideoFileSource(clip, loop=True))

    d = Daemon(base_cfg(clip), realtime=True, control=False, watch_config=False,
               source_factory=factory,
               sink_factory=lambda c, w, h, f: [ConsumerSink(w, h, node)])
    t = start(d)
    try:
        assert wait_for(lambda: d.state() == "idle", 20.0)
        assert wait_for(lambda: d.capture.source is None, 20.0), "the camera is released"
        frames = d.stats.frames
        time.sleep(0.5)
        assert d.stats.frames == frames, "no processing while nobody watches"
        child = _open_in_child(node)
        try:
            assert wait_for(lambda: d.stats.frames > frames, 20.0), "resumes when an app opens it"
            assert d.status()["consumers"][0].endswith(f"(pid {child.pid})")
        finally:
            child.kill()
            child.wait()
        assert wait_for(lambda: d.state() == "idle", 20.0)
        # on_demand off: runs regardless of consumers.
        d.apply(set_value(d.cfg, "daemon.on_demand", False))
        assert wait_for(lambda: d.state() == "running", 20.0)
    finally:
        d.stop()
        t.join(2)


def test_fit_even_and_card():
    assert even_size(1279, 721) == (1278, 720)
    img = np.zeros((721, 1279, 3), np.uint8)
    assert fit_frame(img, (1278, 720)).shape == (720, 1278, 3)
    assert fit_frame(np.zeros((480, 640, 3), np.uint8), (1280, 720)).shape == (720, 1280, 3)
    card = make_card((320, 180), "camera unavailable", np.full((180, 320, 4), 200, np.uint8))
    assert card.shape == (180, 320, 3) and card.dtype == np.uint8 and card.max() > card.min()


def test_busy_camera_names_the_holder(clip, tmp_path, monkeypatch, caplog):
    """The device node is a regular file here; the holder is found by the same /proc scan."""
    node = tmp_path / "video0"
    node.write_bytes(b"")
    monkeypatch.setattr(capture_mod, "camera_device", lambda cfg: str(node))
    d = Daemon(base_cfg(clip, input="camera"), realtime=True, control=False, watch_config=False)
    child = _open_in_child(node)
    try:
        d.capture.note_fault(SourceError("camera 0: cannot open it"))
    finally:
        child.kill()
        child.wait()
    assert f"{node} is busy: held by" in d.capture.problem
    assert f"(pid {child.pid})" in d.capture.problem
    assert sum("is busy" in r.message for r in caplog.records) == 1
    d.capture.note_fault(SourceError("camera 0: cannot open it"))  # gone now: a plain line
    monkeypatch.setattr(capture_mod, "camera_device", lambda cfg: str(tmp_path / "nope"))
    d.capture.note_fault(SourceError("x"))
    assert "not found (unplugged?)" in d.capture.problem
